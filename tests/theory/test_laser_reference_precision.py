"""The LASER reference against an extended-precision (mpmath) evaluation of the same operator.

Without a per-row shift, ``LSE(S + V) − LSE(S)`` subtracts two numbers of size ``max|S|`` and keeps an
error of order ``eps·max|S|``; with each row shifted by its largest visible score the error stays at
``eps·(|V| + log m)``. The logits here enter as ``q = z``, ``K = I``, ``scale = 1``, so ``S = z`` is
exact and every difference from the mpmath value is the reference's own rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.proofs_checks.laser import laser_attention_mp
from attnlab.reference import laser_attention, laser_attention_global_shift
from attnlab.reference._core import masked_logsumexp
from attnlab.validation import reference_precision

OFFSETS = (1.0, 1e1, 1e2, 1e3, 1e4, 1e5)
EPS64 = float(np.finfo(np.float64).eps)


def _logit_rows(offset: float, rng: np.random.Generator, rows: int = 6, m: int = 8) -> np.ndarray:
    """Rows ``z = offset + spread``: |S| ~ offset with an O(10) spread that keeps every key in play."""
    return offset + rng.standard_normal((rows, m)) * 3.0


def _unshifted(z: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The previous evaluation, ``LSE(S + V) − LSE(S)`` without the row shift (a control)."""
    allowed = np.ones(z.shape, dtype=bool)
    joint = masked_logsumexp(z[:, :, None] + v[None], allowed[:, :, None], axis=-2)
    return joint - masked_logsumexp(z, allowed)[:, None]


def _errors(offsets: tuple[float, ...], seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    reference_err, control_err = [], []
    for offset in offsets:
        z = _logit_rows(offset, rng)
        v = rng.uniform(-5.0, 5.0, (z.shape[1], 3))
        exact = laser_attention_mp(z, np.eye(z.shape[1]), v, scale=1.0)
        reference_err.append(float(np.max(np.abs(laser_attention(z, np.eye(z.shape[1]), v, scale=1.0) - exact))))
        control_err.append(float(np.max(np.abs(_unshifted(z, v) - exact))))
    return reference_err, control_err


def test_float64_error_does_not_grow_with_the_score_magnitude() -> None:
    reference_err, control_err = _errors(OFFSETS, seed=0)
    # |V| ≤ 5, m = 8: a few ulps of O(10) numbers, at every |S| from 1 to 1e5.
    assert max(reference_err) <= 8 * EPS64 * 10, reference_err
    assert reference_err[-1] <= 4 * max(reference_err[0], EPS64), reference_err
    # The control shows the test can see the growth it rules out: eps·max|S| ≈ 2e-11 at |S| ~ 1e5.
    assert control_err[-1] >= 100 * reference_err[-1] and control_err[-1] >= 1e-12, control_err
    assert control_err[-1] >= 1e3 * control_err[0], control_err


def test_causal_and_masked_rows_match_the_extended_precision_value() -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 5, 3)) * 40.0
    k = rng.standard_normal((2, 7, 3)) * 40.0
    v = rng.uniform(-20.0, 20.0, (2, 7, 2))
    mask = rng.random((5, 7)) < 0.6
    mask[0] = False  # a query with no visible key returns zeros in both
    for options in ({"causal": True}, {"mask": mask}, {}):
        exact = laser_attention_mp(q, k, v, **options)
        got = laser_attention(q, k, v, **options)
        scale = np.maximum(1.0, np.abs(exact))
        assert np.max(np.abs(got - exact) / scale) <= 1e-13, options
    assert np.all(laser_attention_mp(q, k, v, mask=mask)[:, 0] == 0.0)


def test_float32_reference_is_no_worse_than_the_global_shift_form() -> None:
    # At |S| ~ 600 in float32 the unshifted form was ~50x worse than the paper's global shift; shifted
    # rows bring the reference to the global-shift form's level (both a few float32 ulps of |V|).
    rng = np.random.default_rng(2)
    z = (600.0 + rng.standard_normal((8, 8)) * 3.0).astype(np.float32).astype(np.float64)
    v = rng.uniform(-5.0, 5.0, (8, 3)).astype(np.float32).astype(np.float64)
    exact = laser_attention_mp(z, np.eye(8), v, scale=1.0)
    with reference_precision(np.float32):
        reference = laser_attention(z, np.eye(8), v, scale=1.0)
        global_shift = laser_attention_global_shift(z, np.eye(8), v, scale=1.0)
    reference_err = float(np.max(np.abs(reference - exact)))
    global_err = float(np.max(np.abs(global_shift - exact)))
    eps32 = float(np.finfo(np.float32).eps)
    assert reference.dtype == np.float32
    assert reference_err <= 16 * eps32 * 5, (reference_err, global_err)
    assert reference_err <= 4 * global_err, (reference_err, global_err)
    control_err = float(np.max(np.abs(_unshifted(z.astype(np.float32), v.astype(np.float32)) - exact)))
    assert control_err >= 20 * reference_err, (control_err, reference_err)


def test_mp_evaluation_rejects_bad_precision_and_inputs() -> None:
    q = np.zeros((2, 1))
    with pytest.raises(ValueError, match="dps"):
        laser_attention_mp(q, q, q, dps=5)
    with pytest.raises(TypeError, match="q"):
        laser_attention_mp(np.zeros((2, 1), dtype=int), q, q)


def test_mp_evaluation_is_exact_on_a_closed_form_case() -> None:
    # Causal row 0 sees only key 0, so O_00 = V_00 exactly, even far below the column maximum.
    q = k = np.zeros((2, 1))
    v = np.array([[-900.0], [0.0]])
    assert laser_attention_mp(q, k, v, causal=True)[0, 0] == -900.0
    two = laser_attention_mp(np.zeros((1, 1)), np.zeros((2, 1)), np.array([[0.0], [np.log(3.0)]]))
    assert two[0, 0] == pytest.approx(np.log(2.0), abs=1e-15)  # log((1 + 3)/2)
