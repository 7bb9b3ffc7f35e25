"""Numba linear attention (attnlab.fastpath.numba.linear) against the float64 reference."""

from __future__ import annotations

import pytest

from attnlab.entries import _linear_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.linear import linear_attention
from attnlab.reference import linear_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=8, d_v=8),
    Shape(batch=2, heads=2, kv_heads=2, n=63, d=16, d_v=8, causal=True),
    Shape(batch=1, heads=4, kv_heads=2, n=100, d=16, d_v=12, causal=True),
    Shape(batch=1, heads=4, kv_heads=1, n=64, m=300, d=8, d_v=8),
    Shape(batch=1, heads=2, kv_heads=2, n=256, d=64, d_v=32, causal=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_linear_parity(shape: Shape, dtype: str) -> None:
    check_parity("linear", linear_attention, reference, _linear_sample(11, shape), dtype)


def test_numba_linear_deterministic() -> None:
    check_deterministic(linear_attention, _linear_sample(2, CASES[-1]))


def test_numba_linear_bad_inputs() -> None:
    for bad in get_form("linear").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            linear_attention(*bad.args, **bad.kwargs)


@pytest.mark.parametrize("feature_map", ["relu", "elu1", "callable"])
def test_numba_linear_feature_maps_across_chunks(feature_map: str) -> None:
    sample = _linear_sample(3, Shape(batch=1, heads=2, kv_heads=2, n=200, d=8, d_v=4, causal=True))
    fmap = (lambda x: x * x + 0.5) if feature_map == "callable" else feature_map
    sample = sample.with_args(*sample.args, feature_map=fmap)
    for dtype in ("float32", "float64"):
        check_parity("linear", linear_attention, reference, sample, dtype)
