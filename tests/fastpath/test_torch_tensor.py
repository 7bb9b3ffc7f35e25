"""Torch tensor-attention fast path (query-blocked, O(n²) memory per block) vs the float64 reference."""

from __future__ import annotations

import pytest
import torch

import attnlab.fastpath.torch.tensor as tensor_module
from attnlab.fastpath.torch.composed import composed_tensor
from attnlab.fastpath.torch.tensor import tensor_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import tensor_attention as reference
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

# the registry's tensor sample caps lengths at 12, so longer cases build their own inputs
CASES = [
    pytest.param(Shape(batch=1, heads=2, n=1, d=4, d_v=3), id="B1-H2-n1"),
    pytest.param(Shape(batch=2, heads=2, n=12, d=6, d_v=4, causal=True), id="B2-H2-n12-causal"),
    pytest.param(Shape(batch=1, heads=2, n=9, m=12, d=5, d_v=3), id="B1-H2-n9-m12-m2_11"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("tensor").make_sample(seed, shape)


def _long(n: int, causal: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, k1, k2 = (torch.randn(1, 2, n, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    v1, v2 = (torch.randn(1, 2, n, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    return tuple(t.numpy() for t in (q, k1, k2, v1, v2)), {"causal": causal}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(f"tensor {shape.label()}", tensor_attention, composed_tensor, reference, s.args, s.kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("n", "causal"), [pytest.param(63, True, id="n63-causal"), pytest.param(64, False, id="n64")])
def test_forward_parity_long(n: int, causal: bool, dtype: str) -> None:
    args, kwargs = _long(n, causal)
    check_forward(f"tensor n{n}", tensor_attention, composed_tensor, reference, args, kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[1], CASES[2]])
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(
        f"tensor {shape.label()}", tensor_attention, composed_tensor, s.args, s.kwargs, dtype, (0, 1, 2, 3, 4)
    )


def test_blocking_and_checkpointing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks (several query blocks, each checkpointed) give the same values and gradients."""
    args, kwargs = _long(20, True, seed=3)
    check_gradients("tensor unblocked", tensor_attention, composed_tensor, args, kwargs, "float32", (0, 1, 2, 3, 4))
    monkeypatch.setattr(tensor_module, "BLOCK_ELEMENTS", 2 * 20 * 20 * 3)  # three queries per block
    check_forward("tensor blocked", tensor_attention, composed_tensor, reference, args, kwargs, "float32")
    check_gradients("tensor blocked", tensor_attention, composed_tensor, args, kwargs, "float32", (0, 1, 2, 3, 4))


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=1, n=4, d=2, d_v=2, causal=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(0, 1, 2, 3, 4))
    assert torch.autograd.gradcheck(lambda *a: composed_tensor(*a, **kwargs), args)


def test_bad_inputs() -> None:
    q, k1, k2, v1, v2 = (
        torch.randn(1, 4, 3),
        torch.randn(1, 5, 3),
        torch.randn(1, 6, 3),
        torch.randn(1, 5, 2),
        torch.randn(1, 6, 2),
    )
    with pytest.raises(ValueError, match=r"\bq/k1/k2\b.*causal"):
        tensor_attention(q, k1, k2, v1, v2, causal=True)
    with pytest.raises(ValueError, match=r"\bk1/v1\b"):
        tensor_attention(q, k1, k2, v2, v2)
    with pytest.raises(ValueError, match=r"\bk2\b"):
        tensor_attention(q, k1, k2[..., :2], v1, v2)
    with pytest.raises(TypeError, match=r"\bq/k1/k2/v1/v2\b.*one dtype"):
        tensor_attention(q.double(), k1, k2, v1, v2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    args, kwargs = _long(63, True)
    check_forward("tensor cuda", tensor_attention, composed_tensor, reference, args, kwargs, dtype, device="cuda")
    check_gradients(
        "tensor cuda", tensor_attention, composed_tensor, args, kwargs, dtype, (0, 1, 2, 3, 4), device="cuda"
    )
