"""Numba Hamming-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.hamming import hamming_vjp
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.torch.composed import composed_hamming

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (batch, heads, kv_heads, n, m, d, d_v, causal, masked, top_n)
CASES = [
    pytest.param((1, 2, 2, 1, 1, 8, 4, False, False, None), id="n1"),
    pytest.param((1, 2, 1, 63, 63, 16, 8, True, False, None), id="n63-causal-gqa"),
    pytest.param((2, 4, 2, 100, 100, 8, 8, False, True, None), id="n100-mask-empty-row-gqa"),
    pytest.param((1, 2, 2, 64, 80, 32, 16, True, False, 7), id="n64-m80-causal-top7"),
    pytest.param((1, 1, 1, 128, 128, 64, 8, False, False, None), id="n128"),
    pytest.param((1, 2, 2, 40, 40, 6, 4, False, True, 3), id="n40-d6-mask-top3-ties"),
]


def _sample(case: tuple, seed: int = 0) -> tuple[list[np.ndarray], dict]:
    batch, heads, kv_heads, n, m, d, d_v, causal, masked, top_n = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d))
    q[..., ::3, 0] = 0.0  # sign(0) = +1
    k = rng.standard_normal((batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    kwargs: dict = {"causal": causal}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False
        kwargs["mask"] = mask
    if top_n is not None:
        kwargs["top_n"] = top_n
    return [q, k, v], kwargs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_hamming_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    arrays, kwargs = _sample(case)
    check_vjp("hamming", hamming_vjp, composed_hamming, arrays, kwargs, dtype)


def test_hamming_value_gradient_ignores_query_magnitude() -> None:
    # positive rescaling of q leaves the codes, hence P and dV, unchanged
    (q, k, v), kwargs = _sample((1, 2, 2, 30, 30, 8, 4, True, False, None), seed=2)
    grad = np.random.default_rng(3).standard_normal((1, 2, 30, 4))
    base = hamming_vjp(grad, q, k, v, **kwargs)[2]
    scaled = hamming_vjp(grad, q * 7.5, k, v, **kwargs)[2]
    np.testing.assert_array_equal(base, scaled)


def test_registry_mapping_names_hamming() -> None:
    assert VJPS["hamming"] is hamming_vjp
