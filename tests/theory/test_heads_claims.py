"""Family ``heads``: recorded verdicts, property hunts, SymPy exactness, planted bugs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.proofs_checks import heads as exact
from attnlab.theory import claims, run
from attnlab.theory import heads as H
from attnlab.theory.ssm import (
    LinearSSM,
    lag_span_bound,
    lag_span_dimension,
    random_diagonal_ssm,
    random_similar_ssm,
    spectral_radius,
)

HEADS_CLAIMS = claims("heads")


def test_family_has_the_required_claims() -> None:
    ids = {c.id for c in HEADS_CLAIMS}
    assert len(ids) >= 6
    assert {"heads.caveat.functional_lower_bound", "heads.caveat.softmax_achievability"} <= ids
    for claim in HEADS_CLAIMS:
        assert claim.source.paper is not None and claim.source.paper.arxiv == "2512.15115"
        assert claim.statement and claim.assumptions and claim.figure is not None
        assert claim.verdict == "holds" or claim.reason


@pytest.mark.parametrize("claim", HEADS_CLAIMS, ids=lambda c: c.id)
def test_quick_check_supports_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence
    assert outcome.result.evidence


# ---- hypothesis hunts ----------------------------------------------------------------------------

ssm_params = st.tuples(
    st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.booleans()
)


def _ssm(params) -> LinearSSM:
    seed, modes, p, d, feedthrough = params
    rng = np.random.default_rng(seed)
    ssm = random_diagonal_ssm(rng, modes, p=p, d=d)
    if feedthrough:
        ssm = LinearSSM(ssm.a, ssm.b, ssm.c, rng.standard_normal((p, d)))
    return ssm


@given(ssm_params)
def test_minimal_heads_equals_lag_span_dimension(params) -> None:
    ssm = _ssm(params)
    n = 10
    x = np.random.default_rng(params[0]).standard_normal((2, n, ssm.input_dim))
    k = lag_span_dimension(ssm, n)
    assert k <= lag_span_bound(ssm, n)
    if ssm.output_dim == ssm.input_dim:  # the reference operator needs square value maps
        assert H.minimal_heads(ssm, n, x) == k
    construction = H.head_construction(ssm, n)
    assert construction.heads == k
    assert H.operator_residual(ssm, n, construction) <= 1e-20 * np.sum(ssm.lag_operators(n) ** 2)


@given(ssm_params)
def test_every_truncation_below_k_leaves_the_eckart_young_tail(params) -> None:
    ssm = _ssm(params)
    n = 10
    k = lag_span_dimension(ssm, n)
    scale = float(np.sum(ssm.lag_operators(n) ** 2))
    for heads in range(k):
        construction = H.head_construction(ssm, n, heads)
        residual = H.operator_residual(ssm, n, construction)
        tail = H.eckart_young_tail(construction.singular_values, heads)
        assert residual > 1e-10 * scale
        assert abs(residual - tail) <= 1e-10 * scale


@given(st.integers(0, 2**31 - 1), st.integers(2, 4))
def test_ssm_gain_decays_no_slower_than_spectral_radius(seed, modes) -> None:
    rng = np.random.default_rng(seed)
    eigenvalues = rng.uniform(0.1, 0.95, modes) * rng.choice([-1.0, 1.0], modes)
    ssm = random_similar_ssm(rng, eigenvalues)
    n = 240
    gains = H.ssm_gain_profile(ssm, n)
    basis = np.linalg.eig(ssm.a)[1]
    envelope = np.linalg.norm(ssm.c, 2) * np.linalg.norm(ssm.b, 2) * np.linalg.cond(basis)
    rho = spectral_radius(ssm.a)
    assert np.all(gains <= envelope * rho ** np.arange(n) * (1 + 1e-9))
    tail = np.arange(n // 2, n)
    keep = gains[tail] > 1e-250  # stay clear of underflow
    # A finite window's slope can exceed log rho (a decaying sub-dominant mode), but by no more than the
    # envelope allows: g(t1) <= E rho^t1 bounds the rate from t0 to t1.
    t0, t1 = tail[keep][0], tail[keep][-1]
    rate = (np.log(gains[t1]) - np.log(gains[t0])) / (t1 - t0)
    slack = (np.log(envelope) + t0 * np.log(rho) - np.log(gains[t0])) / (t1 - t0)
    assert rate <= np.log(rho) + slack + 1e-9


@given(st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_hard_attention_jacobian_is_lag_independent_and_matches_finite_differences(seed, lag) -> None:
    rng = np.random.default_rng(seed)
    layer = H.retrieval_layer(rng)
    n = 32
    x = H.retrieval_input(rng, n, lag)
    jac = layer.jacobian(x, n - 1, n - 1 - lag)
    assert np.linalg.norm(jac, 2) == pytest.approx(np.linalg.norm(layer.w_v, 2), rel=1e-10)
    numeric = H.finite_difference_jacobian(layer, x, n - 1, n - 1 - lag)
    assert np.max(np.abs(jac - numeric)) <= 1e-6 * max(1.0, np.max(np.abs(jac)))


@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.sampled_from([0.3, 2.0, 30.0]))
def test_softmax_heads_never_beat_the_row_sum_bound(seed, heads, temperature) -> None:
    rng = np.random.default_rng(seed)
    ssm = random_diagonal_ssm(rng, 3, p=2, d=2)
    n = 8
    bound = H.softmax_row_sum_bound(ssm, n)
    assert bound > 0
    alpha = H.random_causal_softmax_scores(rng, heads, n, temperature)
    assert H.least_squares_residual_given_scores(ssm, n, alpha) >= bound * (1 - 1e-9)


@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_two_content_heads_reproduce_any_planar_ssm(seed, modes) -> None:
    rng = np.random.default_rng(seed)
    ssm = random_diagonal_ssm(rng, modes, p=2, d=2)
    n = 8
    x = rng.standard_normal((n, 2))
    y = H.factorized_interaction(x, H.functional_two_head_scores(ssm, n), np.stack([np.eye(2), H.ROTATION]))
    assert np.max(np.abs(y - ssm(x))) <= 1e-12 * np.max(np.abs(ssm(x)))


# ---- exact (SymPy) checks ------------------------------------------------------------------------


def test_exact_construction_is_identically_the_ssm() -> None:
    rng = np.random.default_rng(3)
    ssm = exact.random_rational_ssm(rng, 3, 2, 2)
    difference = exact.exact_construction_residual(ssm, 5)
    assert all(entry == 0 for entry in difference)
    assert exact.exact_lag_rank(ssm, 5) == lag_span_dimension(LinearSSM(*ssm.to_arrays()), 5)


def test_cayley_hamilton_bounds_the_lag_span() -> None:
    rng = np.random.default_rng(4)
    ssm = exact.random_rational_ssm(rng, 3, 2, 2)
    assert exact.cayley_hamilton_span(ssm, 7)
    assert exact.exact_lag_rank(ssm, 9) <= 3


# ---- planted bugs flip the checks ----------------------------------------------------------------


def test_dropping_a_head_flips_the_construction_check() -> None:
    def one_head_short(ssm, n, heads=None):
        full = H.head_construction(ssm, n, heads)
        return H.head_construction(ssm, n, max(full.heads - 1, 0)) if heads is None else full

    assert H.check_construction(construction=one_head_short).verdict == "falsified"


def test_off_by_one_lag_flips_the_construction_check(monkeypatch) -> None:
    def shifted_lags(self, n):
        return np.stack([self.c @ np.linalg.matrix_power(self.a, lag + 1) @ self.b for lag in range(n)])

    monkeypatch.setattr(LinearSSM, "lag_operators", shifted_lags)
    assert H.check_construction().verdict == "falsified"


def test_non_orthogonal_second_head_flips_the_functional_counterexample() -> None:
    # a reflection does not map x to a vector orthogonal to x, so a·x + b·Rx no longer equals L x
    reflection = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert H.check_functional_counterexample(second_map=reflection).verdict == "holds"


# ---- input validation ----------------------------------------------------------------------------


def test_bad_inputs_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="a:"):
        LinearSSM(np.ones((2, 3)), np.ones((2, 1)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="c:"):
        LinearSSM(np.eye(2), np.ones((2, 1)), np.ones((1, 3)))
    with pytest.raises(TypeError, match="b:"):
        LinearSSM(np.eye(2), np.ones((2, 1), dtype=int), np.ones((1, 2)))
    ssm = LinearSSM(np.eye(2) * 0.5, np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="n:"):
        ssm.lag_operators(0)
    with pytest.raises(ValueError, match="heads:"):
        H.head_construction(ssm, 4, heads=9)
    with pytest.raises(ValueError, match="x:"):
        ssm(np.ones((4, 3)))
