"""Numba differential attention (attnlab.fastpath.numba.differential) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.entries import _differential_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.differential import differential_attention
from attnlab.reference import differential_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=8, d_v=8),
    Shape(batch=2, heads=2, kv_heads=2, n=63, d=16, d_v=32),
    Shape(batch=1, heads=4, kv_heads=2, n=100, d=16, d_v=12, causal=True),
    Shape(batch=1, heads=2, kv_heads=1, n=64, m=300, d=8, d_v=8, causal=True, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=256, d=32, d_v=64, causal=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_differential_parity(shape: Shape, dtype: str) -> None:
    check_parity("differential", differential_attention, reference, _differential_sample(11, shape), dtype)


def test_numba_differential_deterministic() -> None:
    check_deterministic(differential_attention, _differential_sample(2, CASES[-1]))


def test_numba_differential_bad_inputs() -> None:
    for bad in get_form("differential").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            differential_attention(*bad.args, **bad.kwargs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_differential_token_head_lambda(dtype: str) -> None:
    """DIFF v2-style λ per (head, token), broadcast against the output."""
    sample = _differential_sample(4, Shape(batch=2, heads=2, kv_heads=1, n=70, d=8, d_v=6, causal=True))
    lam = np.random.default_rng(4).uniform(0.0, 1.0, (2, 70, 1))
    check_parity("differential", differential_attention, reference, sample.with_args(*sample.args, lam=lam), dtype)
