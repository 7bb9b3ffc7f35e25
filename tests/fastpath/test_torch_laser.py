"""Torch LASER fast path (SDPA on exp(V − m) + exact log-domain fallback) vs the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_laser
from attnlab.fastpath.torch.laser import laser_attention, underflow_threshold
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import laser_attention as reference
from attnlab.reference import laser_attention_global_shift
from attnlab.registry import Shape, get_form
from attnlab.validation import reference_precision

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4), id="B1-H2-n1-d8"),
    pytest.param(Shape(batch=2, heads=4, kv_heads=2, n=63, d=16, d_v=8, causal=True), id="B2-H4-Hkv2-n63-causal"),
    pytest.param(
        Shape(batch=1, heads=2, kv_heads=2, n=100, m=37, d=8, d_v=4, causal=True, masked=True),
        id="B1-H2-n100-m37-causal-mask",
    ),
    pytest.param(
        Shape(batch=1, heads=4, kv_heads=1, n=64, m=128, d=8, d_v=4, causal=True), id="B1-H4-Hkv1-n64-m128-causal"
    ),
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=128, d=16, d_v=4, masked=True), id="B1-H2-n128-mask"),
]
GRAD_CASES = [CASES[1], CASES[2]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("laser").make_sample(seed, shape)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(f"laser {shape.label()}", laser_attention, composed_laser, reference, s.args, s.kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", GRAD_CASES)
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(f"laser {shape.label()}", laser_attention, composed_laser, s.args, s.kwargs, dtype, (0, 1, 2))


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=4, m=5, d=3, d_v=2, causal=True, masked=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(0, 1, 2))
    assert torch.autograd.gradcheck(lambda q, k, v: composed_laser(q, k, v, **kwargs), args)


def _underflow_inputs(jump: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal inputs whose late values sit ``jump`` above the early ones: a global column shift
    underflows every early row."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((2, 1, 2, 48, 8))
    v = rng.standard_normal((1, 2, 48, 3))
    v[..., 40:, :] += jump
    return q, k, v


@pytest.mark.parametrize(
    ("dtype", "jump"),
    [
        pytest.param("float32", 150.0, id="float32-jump150"),
        pytest.param("bfloat16", 150.0, id="bfloat16-jump150"),
        pytest.param("float64", 900.0, id="float64-jump900"),
    ],
)
def test_underflow_guard_recomputes_rows(dtype: str, jump: float) -> None:
    q, k, v = _underflow_inputs(jump)
    with np.errstate(divide="ignore"), reference_precision(np.float64 if dtype == "float64" else np.float32):
        naive = laser_attention_global_shift(q, k, v, causal=True)
    assert np.isneginf(naive[..., :40, :]).any(), "the inputs must make the global shift underflow"
    check_forward(
        f"laser underflow {dtype}", laser_attention, composed_laser, reference, (q, k, v), {"causal": True}, dtype
    )


def test_underflow_guard_gradients_are_finite() -> None:
    q, k, v = _underflow_inputs(150.0)
    args, _ = to_torch_sample((q, k, v), {}, "float32", requires_grad=(0, 1, 2))
    out = laser_attention(*args, causal=True)
    out.sum().backward()
    assert all(bool(torch.isfinite(a.grad).all()) for a in args)
    check_gradients(
        "laser underflow", laser_attention, composed_laser, (q, k, v), {"causal": True}, "float32", (0, 1, 2)
    )


def test_threshold_is_far_above_subnormals() -> None:
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        info = torch.finfo(dtype)
        assert underflow_threshold(dtype) > info.tiny / info.eps


def test_fully_masked_rows_are_zero() -> None:
    rng = np.random.default_rng(6)
    q, k, v = (torch.tensor(rng.standard_normal(s)) for s in ((1, 1, 5, 4), (1, 1, 5, 4), (1, 1, 5, 2)))
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[2] = False
    out = laser_attention(q, k, v, mask=mask)
    assert torch.equal(out[..., 2, :], torch.zeros(1, 1, 2))
    assert bool(torch.isfinite(out).all())


def test_bad_inputs() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    with pytest.raises(TypeError, match=r"\bv\b.*torch.Tensor"):
        laser_attention(q, k, v.numpy())
    with pytest.raises(ValueError, match=r"\bv\b.*NaN"):
        laser_attention(q, k, v.masked_fill(v > 0, float("inf")))
    with pytest.raises(ValueError, match=r"\bmask\b"):
        laser_attention(q, k, v, mask=np.ones((2, 2), bool))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    q, k, v = _underflow_inputs(150.0)
    check_forward(
        "laser cuda", laser_attention, composed_laser, reference, (q, k, v), {"causal": True}, dtype, device="cuda"
    )
    s = _sample(Shape(batch=1, heads=4, kv_heads=2, n=100, m=37, d=8, d_v=4, causal=True, masked=True))
    check_gradients("laser cuda", laser_attention, composed_laser, s.args, s.kwargs, dtype, (0, 1, 2), device="cuda")
