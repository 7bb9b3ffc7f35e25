"""Differential attention: lambda forms, broadcast queries, and the second map's gradient at lambda = 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.fastpath.numba.backward.differential import differential_vjp
from attnlab.fastpath.torch.differential import differential_attention as torch_differential
from attnlab.forms.differential import sample
from attnlab.reference.differential import differential_attention
from attnlab.testing import check_path

torch.set_num_threads(1)


def _sample(case: tuple, seed: int = 0) -> SampleInput:
    """``(batch, heads, kv_heads, n, m, d, d_v, causal, masked, lambda kind)``."""
    batch, heads, kv_heads, n, m, d, d_v, causal, masked, lam_kind = case
    rng = np.random.default_rng(seed)
    q1, q2 = rng.standard_normal((2, batch, heads, n, d))
    k1, k2 = rng.standard_normal((2, batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    lam: float | np.ndarray = 0.8
    if lam_kind == "per-row":
        lam = rng.uniform(0.1, 0.9, (batch, heads, n, 1))
    elif lam_kind == "per-head":
        lam = rng.uniform(0.1, 0.9, (heads, 1, 1))
    kwargs: dict = {"lam": lam, "causal": causal}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False
        kwargs["mask"] = mask
    return SampleInput((q1, k1, q2, k2, v), kwargs, str(case))


CASES = [
    pytest.param((1, 2, 2, 1, 1, 8, 4, False, False, "scalar"), id="n1-scalar-lambda"),
    pytest.param((1, 2, 1, 63, 63, 16, 8, True, False, "per-row"), id="n63-causal-gqa-per-row-lambda"),
    pytest.param((2, 4, 2, 100, 100, 8, 8, False, True, "per-head"), id="n100-mask-empty-row-gqa-per-head-lambda"),
    pytest.param((1, 2, 2, 64, 80, 32, 16, True, False, "scalar"), id="n64-m80-causal"),
    pytest.param((1, 1, 1, 128, 128, 64, 8, False, False, "scalar"), id="n128"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_numba_vjp_with_every_lambda_form(case: tuple, dtype: str) -> None:
    check_path("differential", "numba", _sample(case), dtype, grad=True)


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_token_and_head_lambda(path: str, dtype: str) -> None:
    """DIFF v2-style lambda per (head, token), broadcast against the output."""
    s = _sample((2, 2, 1, 70, 70, 8, 6, True, False, "per-row"), seed=4)
    check_path("differential", path, s, dtype)


def test_numba_vjp_broadcast_query_batch() -> None:
    """q2 shared across the batch: its gradient is the sum over the batch copies."""
    s = _sample((2, 2, 2, 20, 20, 8, 4, True, False, "scalar"), seed=3)
    args = list(s.args)
    args[2] = args[2][:1]
    check_path("differential", "numba", SampleInput(tuple(args), s.kwargs), "float64", grad=True)


def test_lambda_zero_leaves_the_second_map_without_gradient() -> None:
    s = _sample((1, 2, 2, 10, 10, 4, 3, False, False, "scalar"), seed=4)
    grads = differential_vjp(np.ones((1, 2, 10, 3)), *s.args, **{**s.kwargs, "lam": 0.0})
    assert not np.any(grads[2]) and not np.any(grads[3])
    assert np.any(grads[0]) and np.any(grads[4])


def test_torch_lambda_tensor_gets_a_gradient() -> None:
    s = _sample((1, 2, 1, 33, 33, 8, 4, True, False, "scalar"), seed=2)
    args = [torch.tensor(a) for a in s.args]
    lam = torch.tensor(np.random.default_rng(3).uniform(0.0, 1.0, (1, 2, 33, 1)), requires_grad=True)
    torch_differential(*args, lam=lam, causal=True).sum().backward()
    assert lam.grad is not None and bool(torch.isfinite(lam.grad).all()) and bool(lam.grad.abs().sum() > 0)


def test_bad_lambda_and_lengths_name_the_argument() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match=r"\bk2/v\b.*length"):
        torch_differential(q, k, q, k[..., :3, :], v, lam=0.5)
    with pytest.raises(ValueError, match=r"\bq2\b"):
        torch_differential(q, k, q[..., :3], k, v, lam=0.5)
    s = _sample((1, 2, 2, 5, 5, 4, 3, False, False, "scalar"))
    with pytest.raises(ValueError, match=r"\blam\b"):
        differential_vjp(np.ones((1, 2, 5, 3)), *s.args, lam=np.ones((3, 5, 1)))
    with pytest.raises(TypeError, match=r"\blam\b"):
        differential_vjp(np.ones((1, 2, 5, 3)), *s.args, lam=None)


def test_a_zero_dimensional_lambda_array_is_the_scalar() -> None:
    s = sample(0, Shape())
    kwargs = {key: value for key, value in s.kwargs.items() if key != "lam"}
    np.testing.assert_array_equal(
        differential_attention(*s.args, lam=np.array(0.25), **kwargs),
        differential_attention(*s.args, lam=0.25, **kwargs),
    )
