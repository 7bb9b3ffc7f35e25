"""LASER: what is specific to its fast paths (rows far below a column or tile maximum, underflow guards)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput
from attnlab.fastpath.numba.backward.laser import laser_vjp
from attnlab.fastpath.numba.laser import laser_attention as numba_laser
from attnlab.fastpath.torch.laser import laser_attention as torch_laser
from attnlab.fastpath.torch.laser import underflow_threshold
from attnlab.reference.laser import laser_attention, laser_attention_global_shift
from attnlab.testing import check_path
from attnlab.testing.samples import QKV_CASES, qkv_sample
from attnlab.validation import reference_precision

torch.set_num_threads(1)


def test_numba_no_underflow_far_below_the_column_max() -> None:
    """Causal rows whose visible values sit ~1000 below later values stay finite (per-row shifts)."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((1, 300, 8)), rng.standard_normal((1, 300, 8))
    v = rng.standard_normal((1, 300, 4))
    v[:, 200:] += 1000.0
    for dtype in (np.float32, np.float64):
        got = numba_laser(q.astype(dtype), k.astype(dtype), v.astype(dtype), causal=True)
        assert np.all(np.isfinite(got))
        err = np.abs(got - laser_attention(q, k, v, causal=True)).max()
        assert err < (1e-3 if dtype == np.float32 else 1e-9), err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_masked_rows_below_hidden_values(dtype: str) -> None:
    """A user mask hides, inside the same key tile, values ~1000 above those a row sees: the tile's shared
    shift would flush that row's sum to zero, so the kernel must recompute it with the row's own shift."""
    rng = np.random.default_rng(8)
    q, k, v = rng.standard_normal((2, 40, 8)), rng.standard_normal((2, 90, 8)), rng.standard_normal((2, 90, 4))
    v[:, 50:] += 1000.0
    mask = np.ones((40, 90), dtype=bool)
    mask[::2, 50:] = False  # even rows see only the low values
    mask[5, :] = False  # and one row sees nothing
    check_path("laser", "numba", SampleInput((q, k, v), {"mask": mask}, "mask-hides-high-values"), dtype)
    got = numba_laser(q.astype(dtype), k.astype(dtype), v.astype(dtype), mask=mask)
    assert np.all(got[:, 5] == 0.0)
    odd = [i for i in range(1, 40, 2) if i != 5]
    assert np.all(got[:, ::2] < 10.0) and np.all(got[:, odd] > 900.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in QKV_CASES])
def test_numba_vjp_on_the_shared_cases(case: tuple, dtype: str) -> None:
    check_path("laser", "numba", qkv_sample(case), dtype, grad=True)


def test_numba_vjp_explicit_scale_and_broadcast_mask() -> None:
    s = qkv_sample((2, 2, 2, 20, 30, 8, 8, False, False), seed=3)
    mask = np.random.default_rng(4).random((20, 30)) > 0.5
    check_path("laser", "numba", SampleInput(s.args, {"scale": 0.3, "mask": mask}), "float64", grad=True)


def test_numba_vjp_large_values_stay_finite() -> None:
    # values spread over +-20: e^{V} alone would overflow float32 rows of weights; w stays a softmax over keys
    q, k, v = qkv_sample((1, 2, 1, 63, 63, 16, 8, True, False), seed=2).args
    check_path("laser", "numba", SampleInput((q, k, 20.0 * v), {"causal": True}), "float32", grad=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_vjp_rows_far_below_the_tile_maximum(dtype: str) -> None:
    """Causal rows whose visible values sit far below a tile's column maximum take the exact
    per-(key, channel) path (values spread over +-700 in float64, +-70 in float32)."""
    s = qkv_sample((1, 2, 2, 100, 100, 8, 4, True, True), seed=6)
    q, k, v = s.args
    spread = 230.0 if dtype == "float64" else 23.0
    check_path("laser", "numba", SampleInput((q, k, spread * v), s.kwargs), dtype, grad=True)


def test_numba_vjp_fully_masked_row_has_zero_gradients() -> None:
    s = qkv_sample((1, 2, 2, 100, 100, 8, 8, False, True), seed=1)
    dq, dk, dv = laser_vjp(np.ones((1, 2, 100, 8)), *s.args, **s.kwargs)
    assert np.all(dq[..., 50, :] == 0.0)
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


def _underflow_inputs(jump: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal inputs whose late values sit ``jump`` above the early ones: a global column shift
    underflows every early row."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((2, 1, 2, 48, 8))
    v = rng.standard_normal((1, 2, 48, 3))
    v[..., 40:, :] += jump
    return q, k, v


@pytest.mark.parametrize(
    ("dtype", "jump"),
    [("float32", 150.0), ("bfloat16", 150.0), ("float64", 900.0)],
    ids=["float32", "bfloat16", "float64"],
)
def test_torch_underflow_guard_recomputes_rows(dtype: str, jump: float) -> None:
    q, k, v = _underflow_inputs(jump)
    with np.errstate(divide="ignore"), reference_precision(np.float64 if dtype == "float64" else np.float32):
        naive = laser_attention_global_shift(q, k, v, causal=True)
    assert np.isneginf(naive[..., :40, :]).any(), "the inputs must make the global shift underflow"
    check_path("laser", "torch", SampleInput((q, k, v), {"causal": True}), dtype)


def test_torch_underflow_guard_gradients_are_finite() -> None:
    q, k, v = _underflow_inputs(150.0)
    args = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (q, k, v)]
    torch_laser(*args, causal=True).sum().backward()
    assert all(a.grad is not None and bool(torch.isfinite(a.grad).all()) for a in args)
    check_path("laser", "torch", SampleInput((q, k, v), {"causal": True}), "float32", grad=True)


def test_torch_threshold_is_far_above_subnormals() -> None:
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        info = torch.finfo(dtype)
        assert underflow_threshold(dtype) > info.tiny / info.eps


def test_torch_fully_masked_rows_are_zero() -> None:
    rng = np.random.default_rng(6)
    q, k, v = (torch.tensor(rng.standard_normal(s)) for s in ((1, 1, 5, 4), (1, 1, 5, 4), (1, 1, 5, 2)))
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[2] = False
    out = torch_laser(q, k, v, mask=mask)
    assert torch.equal(out[..., 2, :], torch.zeros(1, 1, 2))
    assert bool(torch.isfinite(out).all())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_underflow_guard(dtype: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    check_path("laser", "torch", SampleInput(_underflow_inputs(150.0), {"causal": True}), dtype, "cuda")
