"""Linear attention: the three evaluations agree and the query-side normaliser cancels."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference import linear_attention, linear_attention_chunked, linear_attention_recurrent
from attnlab.reference.linear import elu_plus_one

rng = np.random.default_rng(4)


@pytest.mark.parametrize("n", [1, 63, 100, 128])
def test_chunked_equals_recurrent_equals_quadratic(n: int) -> None:
    q, k, v = rng.standard_normal((2, n, 8)), rng.standard_normal((2, n, 8)), rng.standard_normal((2, n, 4))
    quadratic = linear_attention(q, k, v, causal=True)
    np.testing.assert_allclose(linear_attention_recurrent(q, k, v, causal=True), quadratic, atol=1e-12)
    np.testing.assert_allclose(linear_attention_chunked(q, k, v, chunk_size=16), quadratic, atol=1e-12)


def test_global_feature_scale_cancels_without_eps() -> None:
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    base = linear_attention(q, k, v, eps=0.0, causal=True)

    def scaled(x: np.ndarray) -> np.ndarray:
        return 7.5 * elu_plus_one(x)

    np.testing.assert_allclose(linear_attention(q, k, v, feature_map=scaled, eps=0.0, causal=True), base, atol=1e-13)


def test_reweighting_one_key_changes_the_output() -> None:
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    k2 = k.copy()
    k2[2] += 3.0  # phi(k_2) grows: key 2 gains weight in every row
    assert not np.allclose(linear_attention(q, k2, v), linear_attention(q, k, v))


def test_feature_map_elu1_is_strictly_positive() -> None:
    x = np.linspace(-50, 50, 1001)
    assert np.all(elu_plus_one(x) > 0)
