"""Numba LASER VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.laser import laser_vjp
from attnlab.fastpath.numba.backward.parity import QKV_CASES, check_vjp, qkv_sample
from attnlab.fastpath.torch.composed import composed_laser

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CASES = [pytest.param(case, id=name) for name, case in QKV_CASES]
_sample = qkv_sample


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_laser_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    arrays, kwargs = _sample(case)
    check_vjp("laser", laser_vjp, composed_laser, arrays, kwargs, dtype)


def test_laser_vjp_explicit_scale_and_broadcast_mask() -> None:
    arrays, _ = _sample((2, 2, 2, 20, 30, 8, 8, False, False), seed=3)
    mask = np.random.default_rng(4).random((20, 30)) > 0.5
    check_vjp("laser", laser_vjp, composed_laser, arrays, {"scale": 0.3, "mask": mask}, "float64")


def test_laser_vjp_large_values_stay_finite() -> None:
    # values spread over +-20: e^{V} alone would overflow float32 rows of weights; w stays a softmax over keys
    (q, k, v), kwargs = _sample((1, 2, 1, 63, 63, 16, 8, True, False), seed=2)
    check_vjp("laser", laser_vjp, composed_laser, [q, k, 20.0 * v], kwargs, "float32")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_laser_vjp_rows_far_below_tile_maximum(dtype: str) -> None:
    # values spread over +-700 (float64) / +-70 (float32): causal rows whose visible values sit far below
    # a tile's column maximum take the exact per-(key, channel) path
    (q, k, v), kwargs = _sample((1, 2, 2, 100, 100, 8, 4, True, True), seed=6)
    spread = 230.0 if dtype == "float64" else 23.0
    check_vjp("laser", laser_vjp, composed_laser, [q, k, spread * v], kwargs, dtype)


def test_fully_masked_row_has_zero_gradients() -> None:
    (q, k, v), kwargs = _sample((1, 2, 2, 100, 100, 8, 8, False, True), seed=1)
    grad = np.ones((1, 2, 100, 8))
    dq, dk, dv = laser_vjp(grad, q, k, v, **kwargs)
    assert np.all(dq[..., 50, :] == 0.0)
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


def test_laser_vjp_rejects_bad_upstream_shape() -> None:
    (q, k, v), _ = _sample((1, 2, 2, 5, 5, 4, 3, False, False))
    with pytest.raises(ValueError, match=r"grad_out.*\(1, 2, 5, 3\)"):
        laser_vjp(np.ones((1, 2, 5, 4)), q, k, v)
    with pytest.raises(TypeError, match=r"\bq\b"):
        laser_vjp(np.ones((1, 2, 5, 3)), "q", k, v)


def test_registry_mapping_names_laser() -> None:
    assert VJPS["laser"] is laser_vjp
