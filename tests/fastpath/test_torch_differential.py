"""Torch differential-attention fast path (two SDPA calls) vs the float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_differential
from attnlab.fastpath.torch.differential import differential_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import differential_attention as reference
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4), id="B1-H2-n1-d8"),
    pytest.param(Shape(batch=2, heads=4, kv_heads=2, n=63, d=16, d_v=8, causal=True), id="B2-H4-Hkv2-n63-causal"),
    pytest.param(
        Shape(batch=1, heads=2, kv_heads=2, n=100, m=37, d=8, d_v=8, causal=True, masked=True),
        id="B1-H2-n100-m37-causal-mask",
    ),
    pytest.param(Shape(batch=1, heads=4, kv_heads=1, n=128, d=8, d_v=8, causal=True), id="B1-H4-Hkv1-n128-causal"),
]
GRAD_CASES = [CASES[1], CASES[2]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("differential").make_sample(seed, shape)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(
        f"differential {shape.label()}",
        differential_attention,
        composed_differential,
        reference,
        s.args,
        s.kwargs,
        dtype,
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", GRAD_CASES)
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(
        f"differential {shape.label()}",
        differential_attention,
        composed_differential,
        s.args,
        s.kwargs,
        dtype,
        (0, 1, 2, 3, 4),
    )


def test_per_token_lambda_parity_and_gradient() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=33, d=8, d_v=4, causal=True), seed=2)
    lam = np.random.default_rng(3).uniform(0.0, 1.0, (1, 2, 33, 1))
    check_forward(
        "differential lambda(t,h)",
        differential_attention,
        composed_differential,
        reference,
        s.args,
        {**s.kwargs, "lam": lam},
        "float32",
    )
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64")
    lam_t = torch.tensor(lam, requires_grad=True)
    differential_attention(*args, **{**kwargs, "lam": lam_t}).sum().backward()
    assert lam_t.grad is not None and bool(torch.isfinite(lam_t.grad).all()) and bool(lam_t.grad.abs().sum() > 0)


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=4, m=5, d=3, d_v=2, causal=True, masked=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(0, 1, 2, 3, 4))
    assert torch.autograd.gradcheck(lambda *a: composed_differential(*a, **kwargs), args)


def test_bad_inputs() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    with pytest.raises(TypeError, match=r"\blam\b"):
        differential_attention(q, k, q, k, v, lam=None)
    with pytest.raises(ValueError, match=r"\blam\b"):
        differential_attention(q, k, q, k, v, lam=float("nan"))
    with pytest.raises(ValueError, match=r"\blam\b"):
        differential_attention(q, k, q, k, v, lam=np.ones((5, 3, 7)))
    with pytest.raises(ValueError, match=r"\bk2/v\b.*length"):
        differential_attention(q, k, q, k[..., :3, :], v, lam=0.5)
    with pytest.raises(ValueError, match=r"\bq2\b"):
        differential_attention(q, k, q[..., :3], k, v, lam=0.5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sample(Shape(batch=1, heads=4, kv_heads=2, n=100, m=37, d=8, d_v=8, causal=True, masked=True))
    check_forward(
        "differential cuda",
        differential_attention,
        composed_differential,
        reference,
        s.args,
        s.kwargs,
        dtype,
        device="cuda",
    )
    check_gradients(
        "differential cuda",
        differential_attention,
        composed_differential,
        s.args,
        s.kwargs,
        dtype,
        (0, 1, 2, 3, 4),
        device="cuda",
    )
