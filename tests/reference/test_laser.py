"""LASER reference: log-domain evaluation stays finite where the global-max shift underflows."""

from __future__ import annotations

import numpy as np

from attnlab.reference import laser_attention, laser_attention_global_shift, softmax_attention


def test_causal_rows_far_below_the_column_max_stay_finite() -> None:
    rng = np.random.default_rng(1)
    n, d = 6, 4
    q, k = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    v = rng.standard_normal((n, 2))
    v[-1] += 2000.0  # the last token dominates the column max; earlier causal rows cannot see it
    shifted = laser_attention_global_shift(q, k, v, causal=True)
    exact = laser_attention(q, k, v, causal=True)
    assert np.isneginf(shifted[:-1]).all(), "the paper's global shift underflows on earlier causal rows"
    assert np.all(np.isfinite(exact))
    # row 0 sees only v_0: LASER returns it exactly
    np.testing.assert_allclose(exact[0], v[0], atol=1e-12)


def test_large_values_equal_hard_max_limit() -> None:
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    beta = 1e4
    np.testing.assert_allclose(laser_attention(q, k, beta * v) / beta, np.broadcast_to(v.max(0), (3, 2)), atol=1e-3)


def test_constant_values_give_equality_with_softmax() -> None:
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    v = np.tile(rng.standard_normal((1, 2)), (5, 1))
    np.testing.assert_allclose(laser_attention(q, k, v), softmax_attention(q, k, v), atol=1e-13)


def test_the_global_shift_is_per_value_column_and_batch_element() -> None:
    # columns (and batch elements) 1000 apart: one shift for all of them would underflow the lower ones
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 6, 4))
    v = rng.standard_normal((2, 6, 2)) + np.array([0.0, 1000.0])
    v[1] += 3000.0
    shifted = laser_attention_global_shift(q, k, v)
    np.testing.assert_allclose(shifted, laser_attention(q, k, v), rtol=0, atol=1e-9)
    assert not np.allclose(shifted, laser_attention(q, k, v, causal=True), atol=1e-3), "the default is non-causal"
