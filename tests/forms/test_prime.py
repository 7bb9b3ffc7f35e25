"""PRIME: filters given as one (n, m, d) map per pair, without batch or head axes."""

from __future__ import annotations

import numpy as np

from attnlab.forms.prime import brute_force
from attnlab.reference.prime import prime_attention


def test_three_axis_filters_apply_to_unbatched_inputs_and_broadcast_over_heads() -> None:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((5, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    f, g = rng.uniform(0.5, 1.5, (5, 6, 4)), rng.uniform(0.5, 1.5, (5, 6, 3))
    single = prime_attention(q, k, v, f, g, causal=True)
    np.testing.assert_allclose(single, brute_force(q, k, v, f, g, causal=True), rtol=0, atol=1e-13)
    heads = [np.stack([x, 2.0 * x]) for x in (q, k, v)]  # two heads sharing the filters
    both = prime_attention(*heads, f, g, causal=True)
    np.testing.assert_allclose(both[0], single, rtol=0, atol=1e-13)
    np.testing.assert_allclose(both[1], prime_attention(2 * q, 2 * k, 2 * v, f, g, causal=True), rtol=0, atol=1e-13)
