"""Tensor and 2-simplicial attention: long sequences, broadcast factors, blocking, directional derivatives,
and the polynomial method's fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab.fastpath.torch.tensor as torch_tensor_module
from attnlab.core import SampleInput
from attnlab.fastpath.numba.backward.simplicial import simplicial_vjp
from attnlab.fastpath.numba.backward.tensor import tensor_vjp
from attnlab.fastpath.numba.simplicial import simplicial_attention as numba_simplicial
from attnlab.fastpath.numba.tensor import tensor_attention as numba_tensor
from attnlab.fastpath.numba.tensor import tensor_attention_poly
from attnlab.fastpath.torch.simplicial import simplicial_attention as torch_simplicial
from attnlab.fastpath.torch.tensor import tensor_attention as torch_tensor
from attnlab.reference.tensor_poly import tensor_attention_poly as poly_reference
from attnlab.testing import check_path

torch.set_num_threads(1)


def _five(n: int, m1: int, m2: int, d: int, d_v: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Leading dims broadcast: k1 is shared by the heads, k2 by the batch."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((2, 2, n, d)),
        rng.standard_normal((2, 1, m1, d)),
        rng.standard_normal((1, 2, m2, d)),
        rng.standard_normal((2, 2, m1, d_v)),
        rng.standard_normal((2, 2, m2, d_v)),
    )


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize(("n", "causal"), [pytest.param(63, True, id="n63-causal"), pytest.param(64, False, id="n64")])
def test_tensor_long_sequences(path: str, n: int, causal: bool) -> None:
    check_path("tensor", path, SampleInput(_five(n, n, n, 8, 4), {"causal": causal}), "float32")


TENSOR_VJP_CASES = [
    pytest.param((1, 1, 1, 4, 3, False), id="n1"),
    pytest.param((1, 1, 1, 4, 3, True), id="n1-causal"),
    pytest.param((9, 12, 7, 6, 4, False), id="n9-m12-m7"),
    pytest.param((16, 16, 16, 8, 4, True), id="n16-causal"),
    pytest.param((24, 24, 24, 4, 4, True), id="n24-causal"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", TENSOR_VJP_CASES)
def test_tensor_vjp_with_broadcast_factors(case: tuple, dtype: str) -> None:
    check_path("tensor", "numba", SampleInput(_five(*case[:5]), {"causal": case[5]}), dtype, grad=True)


def test_tensor_vjp_explicit_scale() -> None:
    check_path("tensor", "numba", SampleInput(_five(7, 5, 6, 4, 3, seed=2), {"scale": 0.7}), "float64", grad=True)


def _directional(forward, vjp, arrays, options) -> None:
    """⟨dO, J·δ⟩ from the VJP equals the central difference of the forward along δ."""
    rng = np.random.default_rng(4)
    out = forward(*arrays, **options)
    grad = rng.standard_normal(out.shape)
    directions = [rng.standard_normal(a.shape) for a in arrays]
    eps = 1e-5
    plus = forward(*(a + eps * t for a, t in zip(arrays, directions)), **options)
    minus = forward(*(a - eps * t for a, t in zip(arrays, directions)), **options)
    numeric = float(np.sum(grad * (plus - minus)) / (2 * eps))
    analytic = sum(float(np.sum(g * t)) for g, t in zip(vjp(grad, *arrays, **options), directions))
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


def test_tensor_vjp_is_a_directional_derivative_of_the_forward() -> None:
    _directional(numba_tensor, tensor_vjp, _five(6, 6, 6, 4, 3, seed=3), {"causal": True})


def test_simplicial_vjp_is_a_directional_derivative_of_the_forward() -> None:
    _directional(
        numba_simplicial, simplicial_vjp, _five(8, 8, 8, 4, 3, seed=5), {"window1": 3, "window2": 2, "kv_bias": True}
    )


def test_tensor_vjp_rejects_bad_inputs() -> None:
    arrays = _five(5, 5, 5, 4, 3)
    with pytest.raises(TypeError, match=r"\bk2\b"):
        tensor_vjp(np.ones((2, 2, 5, 3)), *arrays[:2], "k2", *arrays[3:])
    with pytest.raises(ValueError, match="n == m1 == m2"):
        tensor_vjp(np.ones((2, 2, 5, 3)), *_five(5, 6, 5, 4, 3), causal=True)


def test_torch_tensor_blocking_and_checkpointing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks (several query blocks, each checkpointed) give the same values and gradients."""
    sample = SampleInput(_five(20, 20, 20, 8, 4, seed=3), {"causal": True})
    check_path("tensor", "torch", sample, "float32", grad=True)
    monkeypatch.setattr(torch_tensor_module, "BLOCK_ELEMENTS", 2 * 20 * 20 * 3)  # three queries per block
    check_path("tensor", "torch", sample, "float32", grad=True)


def test_torch_tensor_bad_inputs() -> None:
    q, k1, k2, v1, v2 = (
        torch.randn(1, 4, 3),
        torch.randn(1, 5, 3),
        torch.randn(1, 6, 3),
        torch.randn(1, 5, 2),
        torch.randn(1, 6, 2),
    )
    with pytest.raises(ValueError, match=r"\bq/k1/k2\b.*causal"):
        torch_tensor(q, k1, k2, v1, v2, causal=True)
    with pytest.raises(TypeError, match=r"\bq/k1/k2/v1/v2\b.*one dtype"):
        torch_tensor(q.double(), k1, k2, v1, v2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("degree", [0, 2, 3, 6])
def test_numba_tensor_poly_parity(degree: int, dtype: str) -> None:
    rng = np.random.default_rng(5)
    arrays = [
        0.6 * rng.standard_normal(s)
        for s in ((2, 2, 12, 4), (2, 2, 11, 4), (2, 2, 11, 4), (2, 2, 11, 3), (2, 2, 11, 3))
    ]
    got = tensor_attention_poly(*(a.astype(dtype) for a in arrays), degree=degree)
    want = poly_reference(*arrays, degree=degree)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, atol=1e-4 if dtype == "float32" else 1e-12)


def test_numba_tensor_poly_long_sequence() -> None:
    """Linear-time path on a length the exact form could not afford (n = m1 = m2 = 4096)."""
    rng = np.random.default_rng(0)
    args = [0.5 * rng.standard_normal((1, 4096, 4)) for _ in range(5)]
    np.testing.assert_allclose(tensor_attention_poly(*args, degree=4), poly_reference(*args, degree=4), atol=1e-12)


SIMPLICIAL_CASES = [
    pytest.param(63, 8, 16, False, id="n63-w8x16"),
    pytest.param(100, 5, 3, True, id="n100-w5x3-kvbias"),
    pytest.param(64, 64, 64, False, id="n64-full-windows"),
    pytest.param(16, 40, 2, True, id="n16-w40x2-window-exceeds-n"),
]


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize(("n", "w1", "w2", "kv_bias"), SIMPLICIAL_CASES)
def test_simplicial_long_sequences(path: str, n: int, w1: int, w2: int, kv_bias: bool) -> None:
    rng = np.random.default_rng(0)
    arrays = tuple(rng.standard_normal((1, 2, n, d)) for d in (8, 8, 8, 4, 4))
    check_path("simplicial", path, SampleInput(arrays, {"window1": w1, "window2": w2, "kv_bias": kv_bias}), "float32")


SIMPLICIAL_VJP_CASES = [
    pytest.param((1, 4, 3, 2, 3, True), id="n1-kv_bias"),
    pytest.param((12, 6, 4, 1, 1, False), id="n12-w1-w1"),
    pytest.param((12, 6, 4, 3, 5, False), id="n12-w3-w5"),
    pytest.param((16, 8, 4, 4, 2, True), id="n16-w4-w2-kv_bias"),
    pytest.param((20, 4, 4, 32, 7, True), id="n20-w32-w7-kv_bias"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", SIMPLICIAL_VJP_CASES)
def test_simplicial_vjp_with_broadcast_factors(case: tuple, dtype: str) -> None:
    n, d, d_v, w1, w2, kv_bias = case
    sample = SampleInput(_five(n, n, n, d, d_v), {"window1": w1, "window2": w2, "kv_bias": kv_bias})
    check_path("simplicial", "numba", sample, dtype, grad=True)
    check_path("simplicial", "torch", sample, dtype, grad=True)


def test_full_windows_equal_the_causal_tensor_vjp() -> None:
    """Windows of at least ``n`` see every causal pair: the gradients are causal tensor attention's."""
    arrays = _five(10, 10, 10, 4, 3, seed=3)
    grad = np.random.default_rng(4).standard_normal((2, 2, 10, 3))
    got = simplicial_vjp(grad, *arrays, window1=10, window2=25, scale=0.25)
    want = tensor_vjp(grad, *arrays, scale=0.25, causal=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_torch_simplicial_bad_inputs() -> None:
    q, v = torch.randn(1, 4, 3), torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match=r"\bq/k1/k2\b"):
        torch_simplicial(q, q[..., :3, :], q[..., :3, :], v[..., :3, :], v[..., :3, :], window1=2, window2=2)
