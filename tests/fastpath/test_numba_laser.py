"""Numba LASER attention (attnlab.fastpath.numba.laser) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.entries import _laser_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.laser import laser_attention
from attnlab.reference import laser_attention as reference
from attnlab.registry import SampleInput, Shape, get_form

CASES = [
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=8, d_v=8),
    Shape(batch=2, heads=2, kv_heads=2, n=63, d=16, d_v=8),
    Shape(batch=1, heads=4, kv_heads=2, n=100, d=16, d_v=12, causal=True),
    Shape(batch=1, heads=4, kv_heads=1, n=64, m=300, d=8, d_v=8, causal=True),
    Shape(batch=2, heads=2, kv_heads=1, n=128, d=32, d_v=16, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=256, d=64, d_v=32, causal=True, masked=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_laser_parity(shape: Shape, dtype: str) -> None:
    check_parity("laser", laser_attention, reference, _laser_sample(11, shape), dtype)


def test_numba_laser_deterministic() -> None:
    check_deterministic(laser_attention, _laser_sample(2, CASES[-1]))


def test_numba_laser_bad_inputs() -> None:
    for bad in get_form("laser").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            laser_attention(*bad.args, **bad.kwargs)


def test_numba_laser_no_underflow_far_below_column_max() -> None:
    """Causal rows whose visible values sit ~1000 below later values stay finite (per-row shifts)."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((1, 300, 8)), rng.standard_normal((1, 300, 8))
    v = rng.standard_normal((1, 300, 4))
    v[:, 200:] += 1000.0
    for dtype in (np.float32, np.float64):
        got = laser_attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), causal=True)
        assert np.all(np.isfinite(got))
        err = np.abs(got - reference(q, k, v, causal=True)).max()
        assert err < (1e-3 if dtype == np.float32 else 1e-9), err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_laser_masked_rows_below_hidden_values(dtype: str) -> None:
    """A user mask hides, inside the same key tile, values ~1000 above those a row sees: the tile's shared
    shift would flush that row's sum to zero, so the kernel must recompute it with the row's own shift."""
    rng = np.random.default_rng(8)
    q, k, v = rng.standard_normal((2, 40, 8)), rng.standard_normal((2, 90, 8)), rng.standard_normal((2, 90, 4))
    v[:, 50:] += 1000.0
    mask = np.ones((40, 90), dtype=bool)
    mask[::2, 50:] = False  # even rows see only the low values
    mask[5, :] = False  # and one row sees nothing
    sample = SampleInput((q, k, v), {"mask": mask}, "mask-hides-high-values")
    check_parity("laser", laser_attention, reference, sample, dtype)
    got = laser_attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), mask=mask)
    assert np.all(got[:, 5] == 0.0)
    odd = [i for i in range(1, 40, 2) if i != 5]
    assert np.all(got[:, ::2] < 10.0) and np.all(got[:, odd] > 900.0)
