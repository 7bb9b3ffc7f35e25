"""Torch Hamming-attention fast path (SDPA on ±1 codes; top-N with ties) vs the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_hamming
from attnlab.fastpath.torch.hamming import hamming_attention, hamming_scores, sign_code
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import hamming_attention as reference
from attnlab.reference import hamming_scores as reference_scores
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4), id="B1-H2-n1-d8"),
    pytest.param(Shape(batch=2, heads=4, kv_heads=2, n=63, d=16, d_v=8, causal=True), id="B2-H4-Hkv2-n63-causal"),
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=100, m=37, d=8, d_v=8, causal=True), id="B1-H2-n100-m37-causal"),
    pytest.param(Shape(batch=1, heads=4, kv_heads=1, n=128, d=32, d_v=8, causal=True), id="B1-H4-Hkv1-n128-causal"),
    pytest.param(Shape(batch=1, heads=2, kv_heads=2, n=64, d=8, d_v=4, masked=True), id="B1-H2-n64-topN"),
    pytest.param(
        Shape(batch=1, heads=2, kv_heads=1, n=100, d=6, d_v=4, causal=True, masked=True),
        id="B1-H2-Hkv1-n100-causal-topN",
    ),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("hamming").make_sample(seed, shape)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(f"hamming {shape.label()}", hamming_attention, composed_hamming, reference, s.args, s.kwargs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[1], CASES[5]])
def test_gradient_parity_in_values(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(f"hamming {shape.label()}", hamming_attention, composed_hamming, s.args, s.kwargs, dtype, (2,))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_scores_are_exact_integers(dtype: str) -> None:
    s = _sample(Shape(batch=1, heads=4, kv_heads=2, n=50, d=300, d_v=2), seed=4)
    (q, k, _), _ = to_torch_sample(s.args, {}, dtype)
    scores = hamming_scores(q, k, scale=1.0).double().numpy()
    want = reference_scores(*s.args[:2], scale=1.0)
    if dtype == "bfloat16":  # bf16 holds integers exactly only up to 256 in magnitude
        want = torch.tensor(want).to(torch.bfloat16).double().numpy()
    assert np.array_equal(scores, want)


def test_sign_of_zero_is_plus_one() -> None:
    x = torch.tensor([[-2.0, 0.0, 3.0, -0.0]])
    assert torch.equal(sign_code(x), torch.tensor([[-1.0, 1.0, 1.0, 1.0]]))


def test_top_n_keeps_ties() -> None:
    # every key has the same code, so all logits tie: top_n = 1 must keep every key
    q = torch.ones(1, 1, 3, 4)
    k = torch.ones(1, 1, 5, 4)
    v = torch.arange(10.0).reshape(1, 1, 5, 2)
    assert torch.allclose(hamming_attention(q, k, v, top_n=1), v.mean(dim=-2, keepdim=True).expand(1, 1, 3, 2))


def test_composed_gradcheck_in_values() -> None:
    s = _sample(Shape(batch=1, heads=2, kv_heads=1, n=4, m=5, d=3, d_v=2, causal=True), seed=2)
    args, kwargs = to_torch_sample(s.args, s.kwargs, "float64", requires_grad=(2,))
    q, k, v = args
    assert torch.autograd.gradcheck(lambda v: composed_hamming(q, k, v, **kwargs), (v,))


def test_bad_inputs() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match=r"\btop_n\b"):
        hamming_attention(q, k, v, top_n=0)
    with pytest.raises(TypeError, match=r"\btop_n\b"):
        hamming_attention(q, k, v, top_n=2.5)
    with pytest.raises(ValueError, match=r"\bk\b.*d_k"):
        hamming_attention(q, k[..., :2], v)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[3], CASES[5]])
def test_cuda_parity(shape: Shape, dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sample(shape)
    check_forward(
        "hamming cuda", hamming_attention, composed_hamming, reference, s.args, s.kwargs, dtype, device="cuda"
    )
    check_gradients("hamming cuda", hamming_attention, composed_hamming, s.args, s.kwargs, dtype, (2,), device="cuda")
