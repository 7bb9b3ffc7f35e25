"""Torch MLA fast path (absorbed form, one MQA SDPA call over the latent) vs the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_mla
from attnlab.fastpath.torch.mla import TorchMLAWeights, mla_attention
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import MLAWeights
from attnlab.reference import mla_attention as reference

torch.set_num_threads(1)


def _inputs(n: int, heads: int = 4, q_lora: bool = True, batch: int = 1, seed: int = 0):
    weights = MLAWeights.random(
        seed, d_model=32, n_heads=heads, d_latent=16, d_q_latent=12 if q_lora else 0, d_nope=8, d_rope=4, d_v=8
    )
    x = np.random.default_rng(seed).standard_normal((batch, n, 32))
    return (x, weights)


CASES = [
    pytest.param(1, False, False, id="n1"),
    pytest.param(63, True, False, id="n63-causal-qlora"),
    pytest.param(100, True, True, id="n100-causal-mask"),
    pytest.param(128, False, False, id="n128-no-qlora"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _kwargs(n: int, causal: bool, masked: bool) -> dict:
    kwargs: dict = {"causal": causal}
    if masked:
        kwargs["mask"] = np.random.default_rng(1).random((n, n)) < 0.7
    return kwargs


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize(("n", "causal", "masked"), CASES)
def test_forward_parity(n: int, causal: bool, masked: bool, dtype: str) -> None:
    args = _inputs(n, q_lora=n % 2 == 1)
    check_forward(f"mla n{n}", mla_attention, composed_mla, reference, args, _kwargs(n, causal, masked), dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("n", "causal", "masked"), [CASES[1], CASES[2]])
def test_gradient_parity(n: int, causal: bool, masked: bool, dtype: str) -> None:
    args = _inputs(n, batch=2, seed=1)
    check_gradients(f"mla n{n}", mla_attention, composed_mla, args, _kwargs(n, causal, masked), dtype, (0,))


def test_weight_gradients_flow_through_torch_weights() -> None:
    x, weights = _inputs(20, seed=2)
    tw = TorchMLAWeights.from_numpy(weights, torch.float64)
    w_ukv = tw.w_ukv.clone().requires_grad_(True)
    tw = TorchMLAWeights(**{**tw.__dict__, "w_ukv": w_ukv})
    xt = torch.tensor(x)
    upstream = torch.randn(1, 20, 32, dtype=torch.float64)
    (mla_attention(xt, tw, causal=True) * upstream).sum().backward()
    fast_grad = w_ukv.grad
    w_ukv.grad = None
    (composed_mla(xt, tw, causal=True) * upstream).sum().backward()
    assert fast_grad is not None and w_ukv.grad is not None
    assert torch.allclose(fast_grad, w_ukv.grad, rtol=1e-10, atol=1e-12)


def test_composed_gradcheck() -> None:
    x, weights = _inputs(4, heads=2, seed=3)
    args, kwargs = to_torch_sample((x, weights), {"causal": True}, "float64", requires_grad=(0,))
    assert torch.autograd.gradcheck(lambda x: composed_mla(x, args[1], **kwargs), (args[0],))


def test_bad_inputs() -> None:
    x, weights = _inputs(5)
    xt = torch.tensor(x, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"\bweights\b"):
        mla_attention(xt, {"w_o": 1})
    with pytest.raises(ValueError, match=r"\bimpl\b"):
        mla_attention(xt, weights, impl="fast")
    with pytest.raises(ValueError, match=r"\bx\b.*\b32\b"):
        mla_attention(xt[..., :31], weights)
    with pytest.raises(TypeError, match=r"\bweights\b.*float64"):
        mla_attention(xt, TorchMLAWeights.from_numpy(weights, torch.float64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    args = _inputs(100, batch=2)
    kwargs = _kwargs(100, True, True)
    check_forward("mla cuda", mla_attention, composed_mla, reference, args, kwargs, dtype, device="cuda")
    check_gradients("mla cuda", mla_attention, composed_mla, args, kwargs, dtype, (0,), device="cuda")
