"""Torch windowed 2-simplicial fast path (unfolded windows, O(n·w1·w2)) vs the float64 reference."""

from __future__ import annotations

import pytest
import torch

from attnlab.fastpath.torch.composed import composed_simplicial
from attnlab.fastpath.torch.simplicial import simplicial_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import simplicial_attention as reference

torch.set_num_threads(1)


def _inputs(n: int, d: int = 8, d_v: int = 4, heads: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    qk = [torch.randn(1, heads, n, d, generator=gen, dtype=torch.float64) for _ in range(3)]
    vs = [torch.randn(1, heads, n, d_v, generator=gen, dtype=torch.float64) for _ in range(2)]
    return tuple(t.numpy() for t in (*qk, *vs))


CASES = [
    pytest.param(1, 1, 1, False, id="n1-w1x1"),
    pytest.param(63, 8, 16, False, id="n63-w8x16"),
    pytest.param(100, 5, 3, True, id="n100-w5x3-kvbias"),
    pytest.param(64, 64, 64, False, id="n64-full-windows"),
    pytest.param(16, 40, 2, True, id="n16-w40x2-window-exceeds-n"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize(("n", "w1", "w2", "kv_bias"), CASES)
def test_forward_parity(n: int, w1: int, w2: int, kv_bias: bool, dtype: str) -> None:
    kwargs = {"window1": w1, "window2": w2, "kv_bias": kv_bias}
    check_forward(f"simplicial n{n}", simplicial_attention, composed_simplicial, reference, _inputs(n), kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("n", "w1", "w2", "kv_bias"), [CASES[1], CASES[2]])
def test_gradient_parity(n: int, w1: int, w2: int, kv_bias: bool, dtype: str) -> None:
    kwargs = {"window1": w1, "window2": w2, "kv_bias": kv_bias}
    check_gradients(
        f"simplicial n{n}",
        simplicial_attention,
        composed_simplicial,
        _inputs(n, seed=1),
        kwargs,
        dtype,
        (0, 1, 2, 3, 4),
    )


def test_composed_gradcheck() -> None:
    args, kwargs = to_torch_sample(
        _inputs(5, d=2, d_v=2, heads=1, seed=2),
        {"window1": 3, "window2": 2, "kv_bias": True},
        "float64",
        requires_grad=(0, 1, 2, 3, 4),
    )
    assert torch.autograd.gradcheck(lambda *a: composed_simplicial(*a, **kwargs), args)


def test_bad_inputs() -> None:
    q = torch.randn(1, 4, 3)
    v = torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match=r"\bwindow1\b"):
        simplicial_attention(q, q, q, v, v, window1=0, window2=2)
    with pytest.raises(TypeError, match=r"\bwindow2\b"):
        simplicial_attention(q, q, q, v, v, window1=2, window2=2.5)
    with pytest.raises(TypeError, match=r"\bkv_bias\b"):
        simplicial_attention(q, q, q, v, v, window1=2, window2=2, kv_bias="on")
    with pytest.raises(ValueError, match=r"\bq/k1/k2\b"):
        simplicial_attention(q, q[..., :3, :], q[..., :3, :], v[..., :3, :], v[..., :3, :], window1=2, window2=2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    kwargs = {"window1": 5, "window2": 3, "kv_bias": True}
    check_forward(
        "simplicial cuda",
        simplicial_attention,
        composed_simplicial,
        reference,
        _inputs(100),
        kwargs,
        dtype,
        device="cuda",
    )
    check_gradients(
        "simplicial cuda",
        simplicial_attention,
        composed_simplicial,
        _inputs(100),
        kwargs,
        dtype,
        (0, 1, 2, 3, 4),
        device="cuda",
    )
