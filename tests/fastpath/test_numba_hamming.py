"""Numba Hamming attention (attnlab.fastpath.numba.hamming) against the float64 reference."""

from __future__ import annotations

import pytest

from attnlab.entries import _hamming_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.hamming import hamming_attention
from attnlab.reference import hamming_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=8, d_v=8),
    Shape(batch=2, heads=2, kv_heads=2, n=63, d=16, d_v=8),
    Shape(batch=1, heads=4, kv_heads=2, n=100, d=70, d_v=12, causal=True),
    Shape(batch=1, heads=4, kv_heads=1, n=64, m=300, d=8, d_v=8, causal=True, masked=True),
    Shape(batch=2, heads=2, kv_heads=1, n=128, d=32, d_v=16, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=256, d=64, d_v=32, causal=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_hamming_parity(shape: Shape, dtype: str) -> None:
    check_parity("hamming", hamming_attention, reference, _hamming_sample(11, shape), dtype)


def test_numba_hamming_deterministic() -> None:
    check_deterministic(hamming_attention, _hamming_sample(2, CASES[-1]))


def test_numba_hamming_bad_inputs() -> None:
    for bad in get_form("hamming").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            hamming_attention(*bad.args, **bad.kwargs)


@pytest.mark.parametrize("top_n", [1, 5, 40, 200])
def test_numba_hamming_top_n_keeps_ties(top_n: int) -> None:
    """Few distinct distances (d = 6) make ties common: every key tied with the N-th must be kept."""
    sample = _hamming_sample(9, Shape(batch=1, heads=2, kv_heads=1, n=100, m=130, d=6, d_v=5, causal=True))
    check_parity("hamming", hamming_attention, reference, sample.with_args(*sample.args, top_n=top_n), "float64")
