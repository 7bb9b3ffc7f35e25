"""Softmax attention: what is specific to its fast paths (generic parity, gradients, invariants, bad
inputs and determinism are generated from the declaration in test_parity/test_invariants/test_fastpaths)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numba import njit

from attnlab.core import SampleInput
from attnlab.fastpath.numba._kernels import exp_nonpositive
from attnlab.fastpath.numba.backward.softmax import softmax_vjp
from attnlab.fastpath.numba.softmax import softmax_attention as numba_softmax
from attnlab.fastpath.numba.softmax import softmax_attention_lse
from attnlab.fastpath.torch.softmax import softmax_attention as torch_softmax
from attnlab.reference.softmax import softmax_attention_lse as reference_lse
from attnlab.testing import assert_close, check_path
from attnlab.testing.samples import QKV_CASES, qkv_sample

torch.set_num_threads(1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_lse_matches_the_reference_lse(dtype: str) -> None:
    s = qkv_sample((1, 2, 1, 100, 300, 16, 8, True, False), seed=3)
    args = tuple(a.astype(dtype) for a in s.args)
    _, lse = softmax_attention_lse(*args, causal=True)
    _, want = reference_lse(*s.args, causal=True)
    assert lse.dtype == np.dtype(dtype)
    assert np.array_equal(np.isneginf(lse), np.isneginf(want))
    finite = np.isfinite(want)
    assert_close("lse", want[finite], lse[finite], atol=1e-4 if dtype == "float32" else 1e-10)


def test_numba_fully_masked_rows_are_zero() -> None:
    """Rows with no visible key are written as 0 (a forgotten row would stay NaN from the poisoned buffer)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 70, 8)), rng.standard_normal((2, 300, 8)), rng.standard_normal((2, 300, 4))
    mask = rng.random((70, 300)) < 0.5
    mask[::3] = False
    out, lse = softmax_attention_lse(q, k, v, mask=mask)
    assert not np.isnan(out).any()
    assert np.all(out[:, ::3] == 0.0) and np.all(lse[:, ::3] == -np.inf)
    out = numba_softmax(q, k[:, :50], v[:, :50], causal=True)  # causal with m < n: the first n - m see nothing
    assert np.all(out[:, :20] == 0.0) and np.all(out[:, 20:] != 0.0)


@njit
def _exp_all(x: np.ndarray, y: np.ndarray) -> None:
    for i in range(x.size):
        y[i] = exp_nonpositive(x[i])


@pytest.mark.parametrize(("dtype", "floor"), [("float32", -86.0), ("float64", -708.0)])
def test_exp_nonpositive_within_one_ulp(dtype: str, floor: float) -> None:
    """The kernels' polynomial exp: within 1 ulp of e^x on [floor, 0], e^0 = 1 exactly, and exactly 0 for
    -inf and below the floor (so masked logits carry no weight)."""
    grid = -np.linspace(0.0, -floor, 100_001)
    x = np.concatenate([grid, [0.0, -np.inf, floor - 1e-3, -1e5]]).astype(dtype)
    y = np.empty_like(x)
    _exp_all(x, y)
    inside = x >= floor
    want = np.exp(x[inside].astype(np.float64))
    ulps = np.abs(y[inside] - want) / want / np.finfo(dtype).eps
    assert ulps.max() <= 1.0, ulps.max()
    assert y[-4] == 1.0 and np.all(y[~inside] == 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in QKV_CASES])
def test_numba_vjp_on_the_shared_cases(case: tuple, dtype: str) -> None:
    check_path("softmax", "numba", qkv_sample(case), dtype, grad=True)


def test_numba_vjp_explicit_scale_and_broadcast_mask() -> None:
    s = qkv_sample((2, 2, 2, 20, 30, 8, 8, False, False), seed=3)
    mask = np.random.default_rng(4).random((20, 30)) > 0.5
    check_path("softmax", "numba", SampleInput(s.args, {"scale": 0.3, "mask": mask}), "float64", grad=True)


def test_numba_vjp_fully_masked_row_has_zero_gradients() -> None:
    s = qkv_sample((1, 2, 2, 100, 100, 8, 8, False, True), seed=1)
    dq, dk, dv = softmax_vjp(np.ones((1, 2, 100, 8)), *s.args, **s.kwargs)
    assert np.all(dq[..., 50, :] == 0.0)
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


def test_numba_vjp_rejects_a_bad_upstream() -> None:
    q, k, v = qkv_sample((1, 2, 2, 5, 5, 4, 3, False, False)).args
    with pytest.raises(ValueError, match=r"grad_out.*\(1, 2, 5, 3\)"):
        softmax_vjp(np.ones((1, 2, 5, 4)), q, k, v)
    with pytest.raises(TypeError, match=r"\bq\b"):
        softmax_vjp(np.ones((1, 2, 5, 3)), "q", k, v)


def test_torch_bottom_right_causal_alignment() -> None:
    rng = np.random.default_rng(3)
    q, k, v = (torch.tensor(rng.standard_normal(s)) for s in ((1, 2, 5, 4), (1, 2, 9, 4), (1, 2, 9, 3)))
    explicit = torch.ones(5, 9, dtype=torch.bool).tril(diagonal=4)
    got = torch_softmax(q, k, v, causal=True)
    assert torch.equal(got, torch_softmax(q, k, v, mask=explicit))
    assert torch.allclose(got[..., -1, :], torch_softmax(q, k, v)[..., -1, :], rtol=0, atol=1e-14)


def test_torch_fully_masked_rows_are_zero_with_finite_gradients() -> None:
    rng = np.random.default_rng(4)
    q, k, v = (
        torch.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 2, 6, 4), (1, 2, 6, 4), (1, 2, 6, 3))
    )
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[[1, 4]] = False
    out = torch_softmax(q, k, v, mask=mask)
    assert torch.equal(out[..., [1, 4], :], torch.zeros_like(out[..., [1, 4], :]))
    out.sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all())
    assert q.grad is not None and torch.equal(q.grad[..., [1, 4], :], torch.zeros_like(q.grad[..., [1, 4], :]))


def test_torch_causal_with_more_queries_than_keys_zeroes_early_rows() -> None:
    q, k, v = (torch.randn(*s) for s in ((1, 1, 8, 4), (1, 1, 3, 4), (1, 1, 3, 2)))
    out = torch_softmax(q, k, v, causal=True)
    assert torch.equal(out[..., :5, :], torch.zeros(1, 1, 5, 2))
    assert bool(torch.isfinite(out).all())


def _qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3)
    q[0, 0, 0, 0] = 2.0  # so the NaN case has an entry above 1
    return q, k, v


TORCH_BAD_INPUTS = [
    pytest.param(lambda q, k, v: (q.numpy(), k, v), {}, TypeError, r"\bq\b.*torch.Tensor", id="numpy-q"),
    pytest.param(lambda q, k, v: (q, k.double(), v), {}, TypeError, r"\bq/k/v\b.*one dtype", id="mixed-dtypes"),
    pytest.param(lambda q, k, v: (q.masked_fill(q > 1, float("nan")), k, v), {}, ValueError, r"\bq\b.*NaN", id="nan-q"),
    pytest.param(
        lambda q, k, v: (q, k, v),
        {"mask": np.ones((3, 7), bool)},
        ValueError,
        r"\bmask\b.*broadcastable",
        id="mask-shape",
    ),
]


@pytest.mark.parametrize(("mutate", "kwargs", "error", "match"), TORCH_BAD_INPUTS)
def test_torch_bad_inputs_beyond_the_declared_ones(mutate, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        torch_softmax(*mutate(*_qkv()), **kwargs)
