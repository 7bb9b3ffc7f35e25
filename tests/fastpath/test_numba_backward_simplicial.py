"""Numba 2-simplicial-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.numba.backward.simplicial import simplicial_vjp
from attnlab.fastpath.numba.backward.tensor import tensor_vjp
from attnlab.fastpath.numba.simplicial import simplicial_attention
from attnlab.fastpath.torch.composed import composed_simplicial

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (n, d, d_v, window1, window2, kv_bias)
CASES = [
    pytest.param((1, 4, 3, 1, 1, False), id="n1"),
    pytest.param((1, 4, 3, 2, 3, True), id="n1-kv_bias"),
    pytest.param((12, 6, 4, 1, 1, False), id="n12-w1-w1"),
    pytest.param((12, 6, 4, 3, 5, False), id="n12-w3-w5"),
    pytest.param((16, 8, 4, 4, 2, True), id="n16-w4-w2-kv_bias"),
    pytest.param((20, 4, 4, 32, 7, True), id="n20-w32-w7-kv_bias"),
]


def _sample(case: tuple, seed: int = 0) -> list[np.ndarray]:
    n, d, d_v = case[:3]
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((2, 2, n, d)),
        rng.standard_normal((2, 1, n, d)),
        rng.standard_normal((1, 2, n, d)),
        rng.standard_normal((2, 2, n, d_v)),
        rng.standard_normal((2, 2, n, d_v)),
    ]


def _options(case: tuple) -> dict:
    return {"window1": case[3], "window2": case[4], "kv_bias": case[5]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_simplicial_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    check_vjp("simplicial", simplicial_vjp, composed_simplicial, _sample(case), _options(case), dtype)


def test_simplicial_vjp_explicit_scale() -> None:
    case = (9, 4, 3, 3, 4, True)
    check_vjp("simplicial", simplicial_vjp, composed_simplicial, _sample(case, 2), {**_options(case), "scale": 0.4},
              "float64")


def test_full_windows_equal_the_causal_tensor_vjp() -> None:
    """Windows of at least ``n`` see every causal pair: the gradients are causal tensor attention's."""
    arrays = _sample((10, 4, 3, 10, 10, False), seed=3)
    grad = np.random.default_rng(4).standard_normal((2, 2, 10, 3))
    got = simplicial_vjp(grad, *arrays, window1=10, window2=25, scale=0.25)
    want = tensor_vjp(grad, *arrays, scale=0.25, causal=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_simplicial_vjp_is_a_directional_derivative_of_the_forward() -> None:
    """⟨dO, J·δ⟩ from the VJP equals the central difference of the Numba forward along δ (kv_bias on)."""
    arrays = _sample((8, 4, 3, 3, 2, True), seed=5)
    options = {"window1": 3, "window2": 2, "kv_bias": True}
    rng = np.random.default_rng(6)
    grad = rng.standard_normal((2, 2, 8, 3))
    directions = [rng.standard_normal(a.shape) for a in arrays]
    eps = 1e-5
    plus = simplicial_attention(*(a + eps * t for a, t in zip(arrays, directions)), **options)
    minus = simplicial_attention(*(a - eps * t for a, t in zip(arrays, directions)), **options)
    numeric = float(np.sum(grad * (plus - minus)) / (2 * eps))
    analytic = sum(float(np.sum(g * t)) for g, t in zip(simplicial_vjp(grad, *arrays, **options), directions))
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


def test_simplicial_vjp_rejects_bad_inputs() -> None:
    arrays = _sample((5, 4, 3, 2, 2, False))
    with pytest.raises(ValueError, match=r"grad_out.*\(2, 2, 5, 3\)"):
        simplicial_vjp(np.ones((2, 2, 5, 4)), *arrays, window1=2, window2=2)
    with pytest.raises(ValueError, match="window2"):
        simplicial_vjp(np.ones((2, 2, 5, 3)), *arrays, window1=2, window2=0)
    with pytest.raises(TypeError, match=r"\bv1\b"):
        simplicial_vjp(np.ones((2, 2, 5, 3)), *arrays[:3], "v1", arrays[4], window1=2, window2=2)


def test_registry_mapping_names_simplicial() -> None:
    assert VJPS["simplicial"] is simplicial_vjp
