"""Torch factorized-interaction fast path (head sum folded into one GEMM) vs the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.composed import composed_interaction
from attnlab.fastpath.torch.interaction import factorized_interaction
from attnlab.fastpath.torch.testing import check_forward, check_gradients, to_torch_sample
from attnlab.reference import factorized_interaction as reference
from attnlab.registry import Shape, get_form

torch.set_num_threads(1)

CASES = [
    pytest.param(Shape(batch=1, heads=1, n=1, d=4), id="B1-H1-n1-D4"),
    pytest.param(Shape(batch=2, heads=3, n=63, d=16), id="B2-H3-n63-D16"),
    pytest.param(Shape(batch=1, heads=4, n=100, d=8), id="B1-H4-n100-D8"),
    pytest.param(Shape(batch=1, heads=2, n=128, d=32), id="B1-H2-n128-D32"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _sample(shape: Shape, seed: int = 0):
    return get_form("interaction").make_sample(seed, shape)


def _low_rank(shape: Shape, seed: int = 0):
    x, alpha, _ = _sample(shape, seed).args
    rng = np.random.default_rng(seed + 100)
    w_v = rng.standard_normal((shape.heads, x.shape[-1], 3))
    w_o = rng.standard_normal((shape.heads, 3, x.shape[-1]))
    return (x, alpha), {"w_v": w_v, "w_o": w_o}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape", CASES)
def test_forward_parity_dense(shape: Shape, dtype: str) -> None:
    s = _sample(shape)
    check_forward(
        f"interaction {shape.label()}", factorized_interaction, composed_interaction, reference, s.args, s.kwargs, dtype
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[1], CASES[2]])
def test_forward_parity_low_rank(shape: Shape, dtype: str) -> None:
    args, kwargs = _low_rank(shape)
    check_forward(
        f"interaction low-rank {shape.label()}",
        factorized_interaction,
        composed_interaction,
        reference,
        args,
        kwargs,
        dtype,
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [CASES[1], CASES[2]])
def test_gradient_parity(shape: Shape, dtype: str) -> None:
    s = _sample(shape, seed=1)
    check_gradients(
        f"interaction {shape.label()}", factorized_interaction, composed_interaction, s.args, s.kwargs, dtype, (0, 1, 2)
    )


def test_callable_coefficients() -> None:
    s = _sample(Shape(batch=1, heads=2, n=10, d=4), seed=2)
    x, alpha, u = s.args
    (xt, ut), _ = to_torch_sample((x, u), {}, "float64")
    got = factorized_interaction(xt, lambda t: torch.tensor(alpha), ut)
    assert np.max(np.abs(got.numpy() - reference(x, alpha, u))) < 1e-12


def test_composed_gradcheck() -> None:
    s = _sample(Shape(batch=1, heads=2, n=3, d=2), seed=3)
    args, _ = to_torch_sample(s.args, {}, "float64", requires_grad=(0, 1, 2))
    assert torch.autograd.gradcheck(composed_interaction, args)


def test_bad_inputs() -> None:
    x, alpha, u = torch.randn(1, 4, 3), torch.randn(1, 2, 4, 4), torch.randn(2, 3, 3)
    with pytest.raises(ValueError, match=r"\balpha\b"):
        factorized_interaction(x, alpha[..., :3, :3], u)
    with pytest.raises(ValueError, match=r"\balpha\b.*heads"):
        factorized_interaction(x, alpha, torch.randn(3, 3, 3))
    with pytest.raises(ValueError, match=r"\bu\b"):
        factorized_interaction(x, alpha, torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match=r"\bu\b"):
        factorized_interaction(x, alpha)
    with pytest.raises(ValueError, match=r"\bw_o\b"):
        factorized_interaction(x, alpha, w_v=torch.randn(2, 3, 2), w_o=torch.randn(2, 3, 3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_parity(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sample(Shape(batch=2, heads=3, n=100, d=16))
    check_forward(
        "interaction cuda",
        factorized_interaction,
        composed_interaction,
        reference,
        s.args,
        s.kwargs,
        dtype,
        device="cuda",
    )
    check_gradients(
        "interaction cuda",
        factorized_interaction,
        composed_interaction,
        s.args,
        s.kwargs,
        dtype,
        (0, 1, 2),
        device="cuda",
    )
