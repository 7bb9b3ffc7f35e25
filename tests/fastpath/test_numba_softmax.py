"""Numba softmax attention (attnlab.fastpath.numba.softmax) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from attnlab.entries import _attention_sample
from attnlab.fastpath.numba._kernels import exp_nonpositive
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.softmax import softmax_attention, softmax_attention_lse
from attnlab.reference import softmax_attention as reference
from attnlab.reference import softmax_attention_lse as reference_lse
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=8, d_v=8),
    Shape(batch=2, heads=2, kv_heads=2, n=63, d=16, d_v=8),
    Shape(batch=1, heads=4, kv_heads=2, n=100, d=16, d_v=12, causal=True),
    Shape(batch=1, heads=4, kv_heads=1, n=64, m=100, d=8, d_v=8, causal=True),
    Shape(batch=1, heads=2, kv_heads=2, n=100, m=63, d=8, d_v=8, causal=True),
    Shape(batch=2, heads=2, kv_heads=1, n=128, d=32, d_v=16, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=256, d=64, d_v=64, causal=True, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=300, m=520, d=16, d_v=8),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_softmax_parity(shape: Shape, dtype: str) -> None:
    check_parity("softmax", softmax_attention, reference, _attention_sample(7, shape), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_softmax_lse_parity(dtype: str) -> None:
    sample = _attention_sample(3, Shape(batch=1, heads=2, kv_heads=1, n=100, m=300, d=16, d_v=8, causal=True))
    check_parity("softmax lse", lambda *a, **k: softmax_attention_lse(*a, **k)[1],
                 lambda *a, **k: reference_lse(*a, **k)[1], sample, dtype)


def test_numba_softmax_fully_masked_rows_are_zero() -> None:
    """Rows with no visible key are written as 0 (a forgotten row would stay NaN from the poisoned buffer)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 70, 8)), rng.standard_normal((2, 300, 8)), rng.standard_normal((2, 300, 4))
    mask = rng.random((70, 300)) < 0.5
    mask[::3] = False
    out, lse = softmax_attention_lse(q, k, v, mask=mask)
    assert not np.isnan(out).any()
    assert np.all(out[:, ::3] == 0.0) and np.all(lse[:, ::3] == -np.inf)
    # causal with m < n: the first n - m queries see nothing
    out = softmax_attention(q, k[:, :50], v[:, :50], causal=True)
    assert np.all(out[:, :20] == 0.0) and np.all(out[:, 20:] != 0.0)


def test_numba_softmax_deterministic() -> None:
    shape = Shape(batch=2, heads=4, kv_heads=2, n=300, d=16, d_v=8, causal=True)
    check_deterministic(softmax_attention, _attention_sample(1, shape))


def test_numba_softmax_bad_inputs() -> None:
    for bad in get_form("softmax").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            softmax_attention(*bad.args, **bad.kwargs)


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
