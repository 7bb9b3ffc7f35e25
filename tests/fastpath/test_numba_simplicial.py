"""Numba windowed 2-simplicial attention (attnlab.fastpath.numba.simplicial) against the float64 reference."""

from __future__ import annotations

import pytest

from attnlab.entries import _simplicial_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.simplicial import simplicial_attention
from attnlab.reference import simplicial_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, n=1, d=4, d_v=3),
    Shape(batch=2, heads=2, n=9, d=6, d_v=4),
    Shape(batch=1, heads=2, n=12, d=8, d_v=4),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_simplicial_parity(shape: Shape, dtype: str) -> None:
    check_parity("simplicial", simplicial_attention, reference, _simplicial_sample(11, shape), dtype)


def test_numba_simplicial_deterministic() -> None:
    check_deterministic(simplicial_attention, _simplicial_sample(2, CASES[-1]))


def test_numba_simplicial_bad_inputs() -> None:
    for bad in get_form("simplicial").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            simplicial_attention(*bad.args, **bad.kwargs)
