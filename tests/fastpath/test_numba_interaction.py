"""Numba factorized interaction (attnlab.fastpath.numba.interaction) against the float64 reference."""

from __future__ import annotations

import pytest

from attnlab.entries import _interaction_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.interaction import factorized_interaction
from attnlab.reference import factorized_interaction as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, n=1, d=4),
    Shape(batch=2, heads=3, n=63, d=8),
    Shape(batch=1, heads=2, n=100, d=16),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_interaction_parity(shape: Shape, dtype: str) -> None:
    check_parity("interaction", factorized_interaction, reference, _interaction_sample(11, shape), dtype)


def test_numba_interaction_deterministic() -> None:
    check_deterministic(factorized_interaction, _interaction_sample(2, CASES[-1]))


def test_numba_interaction_bad_inputs() -> None:
    for bad in get_form("interaction").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            factorized_interaction(*bad.args, **bad.kwargs)
