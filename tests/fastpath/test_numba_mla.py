"""Numba multi-head latent attention (attnlab.fastpath.numba.mla) against the float64 reference."""

from __future__ import annotations

import pytest

from attnlab.entries import _mla_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.mla import mla_attention
from attnlab.reference import mla_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, n=1, d=2, d_v=4),
    Shape(batch=2, heads=4, n=63, d=4, d_v=8, causal=True),
    Shape(batch=1, heads=2, n=100, d=6, d_v=8),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_mla_parity(shape: Shape, dtype: str) -> None:
    check_parity("mla", mla_attention, reference, _mla_sample(11, shape), dtype)


def test_numba_mla_deterministic() -> None:
    check_deterministic(mla_attention, _mla_sample(2, CASES[-1]))


def test_numba_mla_bad_inputs() -> None:
    for bad in get_form("mla").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            mla_attention(*bad.args, **bad.kwargs)
