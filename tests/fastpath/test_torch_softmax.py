"""Torch softmax fast path (SDPA) vs the float64 NumPy reference: forward, gradients, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_softmax
from attnlab.fastpath.torch.softmax import softmax_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import softmax_attention as reference
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4), id="B1-H2-n1-d8"),
    pytest.param(Shape(batch=2, heads=4, kv_heads=2, n=63, d=16, d_v=8, causal=True), id="B2-H4-Hkv2-n63-causal"),
    pytest.param(
        Shape(batch=1, heads=2, kv_heads=2, n=100, m=37, d=8, d_v=8, causal=True, masked=True),
        id="B1-H2-n100-m37-causal-mask",
    ),
    pytest.param(
        Shape(batch=1, heads=4, kv_heads=1, n=64, m=128, d=8, d_v=8, causal=True), id="B1-H4-Hkv1-n64-m128-causal"
    ),
    pytest.param(Shape(batch=2, heads=2, kv_heads=2, n=128, d=32, d_v=16, masked=True), id="B2-H2-n128-mask"),
]
GRAD_CASES = [CASES[1], CASES[2], CASES[3]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("softmax").make_sample(seed, shape)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(f"softmax {shape.label()}", softmax_attention, composed_softmax, reference, s.args, s.kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", GRAD_CASES)
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(f"softmax {shape.label()}", softmax_attention, composed_softmax, s.args, s.kwargs, dtype, (0, 1, 2))


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=4, m=5, d=3, d_v=2, causal=True, masked=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(0, 1, 2))
    assert torch.autograd.gradcheck(lambda q, k, v: composed_softmax(q, k, v, **kwargs), args)


def test_bottom_right_causal_alignment() -> None:
    rng = np.random.default_rng(3)
    q, k, v = (torch.tensor(rng.standard_normal(s)) for s in ((1, 2, 5, 4), (1, 2, 9, 4), (1, 2, 9, 3)))
    explicit = torch.ones(5, 9, dtype=torch.bool).tril(diagonal=4)
    got = softmax_attention(q, k, v, causal=True)
    assert torch.equal(got, softmax_attention(q, k, v, mask=explicit))
    # the last query sees every key: equals the unmasked row
    assert torch.allclose(got[..., -1, :], softmax_attention(q, k, v)[..., -1, :], rtol=0, atol=1e-14)


def test_fully_masked_rows_are_zero_with_finite_gradients() -> None:
    rng = np.random.default_rng(4)
    q, k, v = (
        torch.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 2, 6, 4), (1, 2, 6, 4), (1, 2, 6, 3))
    )
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[[1, 4]] = False
    out = softmax_attention(q, k, v, mask=mask)
    assert torch.equal(out[..., [1, 4], :], torch.zeros_like(out[..., [1, 4], :]))
    out.sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all())
    grad = q.grad
    assert grad is not None
    assert torch.equal(grad[..., [1, 4], :], torch.zeros_like(grad[..., [1, 4], :]))


def test_causal_with_more_queries_than_keys_zeroes_early_rows() -> None:
    s = _sample(Shape(batch=1, heads=1, kv_heads=1, n=8, m=3, d=4, d_v=2, causal=True))
    (q, k, v), _ = to_torch_sample(s.args, {}, "float32")
    out = softmax_attention(q, k, v, causal=True)
    assert torch.equal(out[..., :5, :], torch.zeros(1, 1, 5, 2))
    assert bool(torch.isfinite(out).all())


def _qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)


BAD_INPUTS = [
    pytest.param(lambda q, k, v: (q.numpy(), k, v), {}, TypeError, r"\bq\b.*torch.Tensor", id="numpy-q"),
    pytest.param(lambda q, k, v: (q, k[..., :3], v), {}, ValueError, r"\bk\b.*d_k", id="k-head-dim"),
    pytest.param(lambda q, k, v: (q, k, v[..., :2, :]), {}, ValueError, r"\bk/v\b", id="kv-length"),
    pytest.param(
        lambda q, k, v: (q, torch.cat([k] * 3, -3), torch.cat([v] * 3, -3)),
        {},
        ValueError,
        r"\bk\b.*heads",
        id="kv-heads-not-dividing",
    ),
    pytest.param(lambda q, k, v: (q.int(), k, v), {}, TypeError, r"\bq\b.*dtype", id="int-q"),
    pytest.param(lambda q, k, v: (q, k.double(), v), {}, TypeError, r"\bq/k/v\b.*one dtype", id="mixed-dtypes"),
    pytest.param(lambda q, k, v: (q.masked_fill(q > 1, float("nan")), k, v), {}, ValueError, r"\bq\b.*NaN", id="nan-q"),
    pytest.param(lambda q, k, v: (q, k, v), {"causal": "yes"}, TypeError, r"\bcausal\b", id="causal-string"),
    pytest.param(
        lambda q, k, v: (q, k, v),
        {"mask": np.ones((3, 7), bool)},
        ValueError,
        r"\bmask\b.*broadcastable",
        id="mask-shape",
    ),
    pytest.param(
        lambda q, k, v: (q, k, v), {"mask": np.ones((4, 5))}, TypeError, r"\bmask\b.*boolean", id="mask-float"
    ),
    pytest.param(lambda q, k, v: (q, k, v), {"scale": -1.0}, ValueError, r"\bscale\b", id="scale-negative"),
]


@pytest.mark.parametrize(("mutate", "kwargs", "error", "match"), BAD_INPUTS)
def test_bad_inputs(mutate, kwargs, error, match) -> None:
    q, k, v = _qkv()
    q[0, 0, 0, 0] = 2.0  # so the NaN case has an entry above 1
    with pytest.raises(error, match=match):
        softmax_attention(*mutate(q, k, v), **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[2], CASES[3]])
def test_cuda_parity(shape: Shape, dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sample(shape)
    check_forward(
        f"softmax cuda {shape.label()}",
        softmax_attention,
        composed_softmax,
        reference,
        s.args,
        s.kwargs,
        dtype,
        device="cuda",
    )
    check_gradients(
        f"softmax cuda {shape.label()}",
        softmax_attention,
        composed_softmax,
        s.args,
        s.kwargs,
        dtype,
        (0, 1, 2),
        device="cuda",
    )
