"""LASER claims: recorded verdicts, property hunts (LWSE, sandwich, shift, gradients, limits), regression,
planted bugs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.proofs_checks import laser as symbolic
from attnlab.reference import (
    attention_weights,
    laser_attention,
    laser_attention_global_shift,
    softmax_attention,
)
from attnlab.theory import laser as family
from attnlab.theory.registry import claims, run

LASER_CLAIMS = claims("laser")


def test_family_registers_enough_claims() -> None:
    assert len(LASER_CLAIMS) >= 6
    verdicts = {c.id: c.verdict for c in LASER_CLAIMS}
    assert verdicts["laser.gradient.larger"] == "refined"
    assert verdicts["laser.lwse.global_shift"] == "refined"
    assert any(c.figure is not None for c in LASER_CLAIMS)


@pytest.mark.parametrize("claim", LASER_CLAIMS, ids=[c.id for c in LASER_CLAIMS])
def test_quick_check_matches_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence


# --- hypothesis hunts -------------------------------------------------------------------------


@st.composite
def attention_inputs(draw, value_range: float = 50.0):
    """Seeded q, k, v with n ∈ [1, 6], m ∈ [1, 16], d ∈ [1, 4], d_v ∈ [1, 4], optional causal mask."""
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 16))
    d, d_v = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    logit_scale = draw(st.sampled_from([0.1, 1.0, 3.0, 10.0]))
    causal = draw(st.booleans()) and n <= m
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d)) * logit_scale
    k = rng.standard_normal((m, d))
    v = rng.uniform(-value_range, value_range, size=(m, d_v))
    return q, k, v, causal


@given(attention_inputs())
def test_lwse_agrees_with_double_lse_when_finite(inputs) -> None:
    q, k, v, causal = inputs
    shifted = laser_attention_global_shift(q, k, v, causal=causal)
    exact = laser_attention(q, k, v, causal=causal)
    assert np.all(np.isfinite(exact))
    finite = np.isfinite(shifted)
    np.testing.assert_allclose(shifted[finite], exact[finite], rtol=1e-12, atol=1e-12)


@given(attention_inputs())
def test_sandwich_and_jensen(inputs) -> None:
    q, k, v, causal = inputs
    out = laser_attention(q, k, v, causal=causal)
    weights = attention_weights(q, k, causal=causal)
    n, m = weights.shape
    visible = np.tril(np.ones((n, m), dtype=bool), k=m - n) if causal else np.ones((n, m), dtype=bool)
    upper = np.max(np.where(visible[:, :, None], v[None], -np.inf), axis=1)
    tol = 1e-12 * np.maximum(1.0, np.abs(out))
    assert np.all(out <= upper + tol)
    assert np.all(out >= softmax_attention(q, k, v, causal=causal) - tol)
    with np.errstate(divide="ignore"):
        lower_max = np.max(np.where(visible[:, :, None], v[None] + np.log(weights)[:, :, None], -np.inf), axis=1)
    assert np.all(out >= lower_max - tol)


@given(attention_inputs(), st.integers(0, 2**31 - 1))
def test_shift_equivariance(inputs, seed) -> None:
    q, k, v, causal = inputs
    c = np.random.default_rng(seed).uniform(-100.0, 100.0, size=v.shape[1])
    np.testing.assert_allclose(
        laser_attention(q, k, v + c, causal=causal), laser_attention(q, k, v, causal=causal) + c, rtol=1e-12, atol=1e-11
    )


@given(attention_inputs(value_range=20.0))
def test_gradients_match_finite_differences(inputs) -> None:
    q, _, v, _ = inputs
    z = np.clip(q[0] @ np.ones((q.shape[1], v.shape[0])) * 3.0, -30, 30)  # one logit row of length m
    analytic_z = family.laser_logit_gradient(z, v)
    analytic_v = family.laser_value_gradient(z, v)
    eps = 1e-6
    for j in range(z.shape[0]):
        step = np.zeros_like(z)
        step[j] = eps
        fd = (family.laser_row(z + step, v) - family.laser_row(z - step, v)) / (2 * eps)
        np.testing.assert_allclose(fd, analytic_z[:, j], rtol=1e-6, atol=1e-6)
        for c in range(v.shape[1]):
            v_step = np.zeros_like(v)
            v_step[j, c] = eps
            fd_v = (family.laser_row(z, v + v_step) - family.laser_row(z, v - v_step)) / (2 * eps)
            expected = np.zeros(v.shape[1])
            expected[c] = analytic_v[c, j]
            np.testing.assert_allclose(fd_v, expected, rtol=1e-6, atol=1e-6)


@given(attention_inputs(value_range=1000.0))
def test_logit_gradient_is_bounded(inputs) -> None:
    q, k, v, _ = inputs
    z = (q @ k.T)[0]
    grad = family.laser_logit_gradient(z, v)
    assert np.all(np.abs(grad) <= 1.0 + 1e-12)
    assert np.all(np.sum(np.abs(grad), axis=1) <= 2.0 + 1e-12)


@given(attention_inputs(value_range=10.0), st.floats(1e-6, 1e-2))
def test_small_value_limit(inputs, alpha) -> None:
    q, k, v, _ = inputs
    excess = laser_attention(q, k, alpha * v) / alpha - softmax_attention(q, k, v)
    assert np.max(np.abs(excess)) <= alpha * np.max(np.abs(v)) ** 2 / 2 + 1e-9


@given(st.floats(1e-4, 1 - 1e-4), st.floats(0.01, 30.0))
def test_two_token_crossover_sign(alpha, delta) -> None:
    margin = float(family.crossover_alpha(delta)) - alpha
    if abs(margin) <= 1e-9:
        return
    g_softmax, g_laser = family.two_token_gradients(alpha, delta)
    assert np.sign(g_laser - g_softmax) == np.sign(margin)


def test_crossover_values_quoted_in_the_spec() -> None:
    np.testing.assert_allclose(family.crossover_alpha(np.array([1.0, 5.0, 10.0])), [0.418, 0.193, 0.0999], atol=5e-4)
    assert float(family.crossover_alpha(1e-4)) == pytest.approx(0.5, abs=1e-4)
    assert 1000.0 * float(family.crossover_alpha(1000.0)) == pytest.approx(1.0, abs=1e-2)


# --- regression: LWSE's global max underflows under a causal mask; the reference does not ------


def test_global_shift_lwse_underflows_on_causal_rows_but_reference_is_exact() -> None:
    q = k = np.zeros((2, 1))
    v = np.array([[-900.0], [0.0]])
    assert laser_attention_global_shift(q, k, v, causal=True)[0, 0] == -np.inf
    out = laser_attention(q, k, v, causal=True)
    assert out[0, 0] == -900.0
    assert np.all(np.isfinite(out))
    weights = attention_weights(q, k, causal=True)
    assert family.lwse_float32(weights, np.array([[-120.0], [0.0]]))[0, 0] == -np.inf


def test_query_gradient_blocks_rejects_unknown_form() -> None:
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="form"):
        family.query_gradient_blocks(x, x, x, scale=1.0, form="linear")


# --- SymPy derivations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proof",
    [symbolic.two_token_logit_gradient, symbolic.crossover_threshold, symbolic.small_value_series],
    ids=lambda f: f.__name__,
)
def test_symbolic_derivations_hold(proof) -> None:
    result = proof()
    assert result.verdict == "holds", result.evidence


# --- planted bugs flip the verdicts -------------------------------------------------------------


def test_softmax_style_gradient_planted_as_laser_is_caught() -> None:
    result = family.check_logit_gradient(draws=10, gradient=family.softmax_logit_gradient)
    assert result.verdict == "falsified"


def test_wrong_crossover_formula_is_caught() -> None:
    def wrong(delta):
        return 1.0 / (np.asarray(delta) + 2.0)

    assert family.check_crossover(grid=100, fd_points=3, threshold=wrong).verdict == "falsified"


def test_lwse_verdict_would_be_holds_if_the_shift_were_per_row() -> None:
    assert family.check_lwse_global_shift(draws=10, global_shift=laser_attention).verdict == "holds"
