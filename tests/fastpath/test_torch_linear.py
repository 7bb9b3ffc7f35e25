"""Torch linear-attention fast path (chunked causal form) vs the float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_linear
from attnlab.fastpath.torch.linear import linear_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import linear_attention as reference
from attnlab.reference import linear_attention_recurrent
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4, causal=True), id="B1-H2-n1-causal"),
    pytest.param(Shape(batch=2, heads=4, kv_heads=2, n=63, d=16, d_v=8, causal=True), id="B2-H4-Hkv2-n63-causal"),
    pytest.param(Shape(batch=1, heads=2, kv_heads=1, n=100, d=8, d_v=8, causal=True), id="B1-H2-Hkv1-n100-causal"),
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=128, d=16, d_v=8, causal=True), id="B1-H2-n128-causal"),
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=64, m=100, d=8, d_v=4), id="B1-H2-n64-m100"),
]
GRAD_CASES = [CASES[1], CASES[2], CASES[4]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("linear").make_sample(seed, shape)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(f"linear {shape.label()}", linear_attention, composed_linear, reference, s.args, s.kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", GRAD_CASES)
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(f"linear {shape.label()}", linear_attention, composed_linear, s.args, s.kwargs, dtype, (0, 1, 2))


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=5, d=3, d_v=2, causal=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(0, 1, 2))
    assert torch.autograd.gradcheck(lambda q, k, v: composed_linear(q, k, v, **kwargs), args)


@pytest.mark.parametrize("chunk", [pytest.param(c, id=f"C{c}") for c in (1, 7, 64, 200)])
def test_chunk_size_does_not_change_the_operator(chunk: int) -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=2, n=100, d=8, d_v=4, causal=True), seed=3)
    (q, k, v), _ = to_torch_sample(s.args, {}, "float64")
    got = linear_attention(q, k, v, causal=True, chunk_size=chunk)
    want = linear_attention_recurrent(*s.args, causal=True)
    assert np.max(np.abs(got.numpy() - want)) < 1e-12


@pytest.mark.parametrize("feature_map", ["relu", "elu1"])
def test_feature_maps(feature_map: str) -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=2, n=40, d=8, d_v=4, causal=True), seed=4)
    kwargs = {"causal": True, "feature_map": feature_map}
    check_forward(f"linear {feature_map}", linear_attention, composed_linear, reference, s.args, kwargs, "float32")


def test_bad_inputs() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match=r"\bq/k\b.*lengths"):
        linear_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match=r"\bfeature_map\b"):
        linear_attention(q, k, v, feature_map="cosine")
    with pytest.raises(ValueError, match=r"\bchunk_size\b"):
        linear_attention(q, k[..., :4, :], v[..., :4, :], causal=True, chunk_size=0)
    with pytest.raises(ValueError, match=r"\beps\b"):
        linear_attention(q, k, v, eps=-1.0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sample(Shape(batch=2, heads=4, kv_heads=2, n=100, d=16, d_v=8, causal=True))
    check_forward("linear cuda", linear_attention, composed_linear, reference, s.args, s.kwargs, dtype, device="cuda")
    check_gradients("linear cuda", linear_attention, composed_linear, s.args, s.kwargs, dtype, (0, 1, 2), device="cuda")
