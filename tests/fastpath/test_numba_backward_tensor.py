"""Numba tensor-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.numba.backward.tensor import tensor_vjp
from attnlab.fastpath.numba.tensor import tensor_attention
from attnlab.fastpath.torch.composed import composed_tensor

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (n, m1, m2, d, d_v, causal); the leading dims broadcast: k1 is shared by the heads, k2 by the batch.
CASES = [
    pytest.param((1, 1, 1, 4, 3, False), id="n1"),
    pytest.param((1, 1, 1, 4, 3, True), id="n1-causal"),
    pytest.param((9, 12, 7, 6, 4, False), id="n9-m12-m7"),
    pytest.param((16, 16, 16, 8, 4, True), id="n16-causal"),
    pytest.param((24, 24, 24, 4, 4, True), id="n24-causal"),
]


def _sample(case: tuple, seed: int = 0) -> list[np.ndarray]:
    n, m1, m2, d, d_v, _ = case
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((2, 2, n, d)),
        rng.standard_normal((2, 1, m1, d)),
        rng.standard_normal((1, 2, m2, d)),
        rng.standard_normal((2, 2, m1, d_v)),
        rng.standard_normal((2, 2, m2, d_v)),
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_tensor_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    check_vjp("tensor", tensor_vjp, composed_tensor, _sample(case), {"causal": case[-1]}, dtype)


def test_tensor_vjp_explicit_scale() -> None:
    check_vjp("tensor", tensor_vjp, composed_tensor, _sample((7, 5, 6, 4, 3, False), seed=2), {"scale": 0.7}, "float64")


def test_tensor_vjp_is_a_directional_derivative_of_the_forward() -> None:
    """⟨dO, J·δ⟩ from the VJP equals the central difference of the Numba forward along δ."""
    arrays = _sample((6, 6, 6, 4, 3, True), seed=3)
    rng = np.random.default_rng(4)
    grad = rng.standard_normal((2, 2, 6, 3))
    directions = [rng.standard_normal(a.shape) for a in arrays]
    eps = 1e-5
    plus = tensor_attention(*(a + eps * t for a, t in zip(arrays, directions)), causal=True)
    minus = tensor_attention(*(a - eps * t for a, t in zip(arrays, directions)), causal=True)
    numeric = float(np.sum(grad * (plus - minus)) / (2 * eps))
    analytic = sum(float(np.sum(g * t)) for g, t in zip(tensor_vjp(grad, *arrays, causal=True), directions))
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


def test_tensor_vjp_rejects_bad_inputs() -> None:
    arrays = _sample((5, 5, 5, 4, 3, False))
    with pytest.raises(ValueError, match=r"grad_out.*\(2, 2, 5, 3\)"):
        tensor_vjp(np.ones((2, 2, 5, 4)), *arrays)
    with pytest.raises(TypeError, match=r"\bk2\b"):
        tensor_vjp(np.ones((2, 2, 5, 3)), *arrays[:2], "k2", *arrays[3:])
    uneven = _sample((5, 6, 5, 4, 3, False))
    with pytest.raises(ValueError, match="n == m1 == m2"):
        tensor_vjp(np.ones((2, 2, 5, 3)), *uneven, causal=True)


def test_registry_mapping_names_tensor() -> None:
    assert VJPS["tensor"] is tensor_vjp
