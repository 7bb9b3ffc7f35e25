"""Family ``pavlov``: recorded verdicts, property hunts, samplers, planted bugs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.theory import claims, run
from attnlab.theory import pavlov as P

PAVLOV_CLAIMS = claims("pavlov")


def test_family_has_the_required_claims() -> None:
    ids = {c.id for c in PAVLOV_CLAIMS}
    assert len(ids) >= 6
    assert {"pavlov.capacity.sqrt_dk", "pavlov.capacity.seed_order_dk"} <= ids
    for claim in PAVLOV_CLAIMS:
        assert claim.source.paper is not None and claim.source.paper.arxiv == "2508.08289"
        assert claim.statement and claim.assumptions and claim.figure is not None
        assert claim.verdict == "holds" or claim.reason


@pytest.mark.parametrize("claim", PAVLOV_CLAIMS, ids=lambda c: c.id)
def test_quick_check_supports_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence
    assert outcome.result.evidence


# ---- hypothesis hunts ----------------------------------------------------------------------------

seeds = st.integers(0, 2**31 - 1)


@given(seeds, st.integers(2, 48), st.integers(1, 6))
def test_orthogonal_keys_retrieve_exactly(seed, d_k, d_v) -> None:
    rng = np.random.default_rng(seed)
    n_items = int(rng.integers(1, d_k + 1))
    keys = P.sample_keys(rng, 1, n_items, d_k, "orthogonal")[0]
    values = rng.standard_normal((n_items, d_v))
    assert np.max(np.abs(P.retrieve(P.hebbian_memory(keys, values), keys) - values)) <= 1e-12
    assert np.max(np.abs(P.crosstalk(keys, values))) <= 1e-12


@given(seeds, st.integers(2, 20), st.integers(2, 20), st.integers(1, 5))
def test_memory_is_additive_and_rotation_invariant(seed, n_items, d_k, d_v) -> None:
    rng = np.random.default_rng(seed)
    keys, values = rng.standard_normal((n_items, d_k)), rng.standard_normal((n_items, d_v))
    split = int(rng.integers(1, n_items))
    union = P.hebbian_memory(keys[:split], values[:split]) + P.hebbian_memory(keys[split:], values[split:])
    assert np.allclose(P.hebbian_memory(keys, values), union, rtol=0, atol=1e-12)
    rotation = np.linalg.qr(rng.standard_normal((d_k, d_k)))[0]
    query = rng.standard_normal((3, d_k))
    plain = P.retrieve(P.hebbian_memory(keys, values), query)
    rotated = P.retrieve(P.hebbian_memory(keys @ rotation.T, values), query @ rotation.T)
    assert np.allclose(plain, rotated, rtol=0, atol=1e-11)


@given(seeds, st.integers(2, 30), st.sampled_from([8, 32, 128, 512]))
def test_crosstalk_never_exceeds_the_coherence_bound(seed, n_items, d_k) -> None:
    rng = np.random.default_rng(seed)
    keys = P.sample_keys(rng, 1, n_items, d_k, "unit")[0]
    values = P.sample_unit_values(rng, 1, n_items, 6)[0]
    mu = P.coherence(keys)
    eta = np.linalg.norm(P.crosstalk(keys, values), axis=-1)
    assert np.all(eta <= (n_items - 1) * mu * (1 + 1e-12))
    if (n_items - 1) * mu < 1:
        assert np.all(eta < 1)
        assert np.all(np.sum(P.retrieve(P.hebbian_memory(keys, values), keys) * values, axis=-1) > 0)


@given(seeds, st.integers(1, 24), st.integers(1, 6))
def test_delta_rule_memory_is_exact_for_independent_keys(seed, n_items, d_v) -> None:
    rng = np.random.default_rng(seed)
    d_k = n_items + int(rng.integers(0, 6))
    keys = rng.standard_normal((n_items, d_k))
    values = rng.standard_normal((n_items, d_v))
    retrieved = P.retrieve(P.delta_rule_memory(keys, values), keys)
    assert np.max(np.abs(retrieved - values)) <= 1e-9 * max(1.0, np.max(np.abs(values)))


# ---- the Bartlett Gram sampler agrees with explicit keys -----------------------------------------


@pytest.mark.parametrize("kind", ["unit", "gaussian"])
def test_bartlett_gram_matches_explicit_keys_in_distribution(kind) -> None:
    rng = np.random.default_rng(11)
    trials, n_keys, d_k = 400, 12, 40
    bartlett = P.sample_key_gram(rng, trials, n_keys, d_k, kind)
    keys = P.sample_keys(rng, trials, n_keys, d_k, kind)
    explicit = keys @ np.swapaxes(keys, -1, -2)
    assert np.allclose(bartlett, np.swapaxes(bartlett, -1, -2))
    off = ~np.eye(n_keys, dtype=bool)
    for gram in (bartlett, explicit):
        second_moment = (gram[:, off] ** 2).mean(axis=-1)  # per trial
        se = second_moment.std(ddof=1) / np.sqrt(trials)
        assert abs(second_moment.mean() - 1 / d_k) <= 4 * se
        diagonal = np.diagonal(gram, axis1=-2, axis2=-1)
        if kind == "unit":
            assert np.allclose(diagonal, 1.0)
        else:
            per_trial = ((diagonal - 1) ** 2).mean(axis=-1)
            assert abs(per_trial.mean() - 2 / d_k) <= 4 * per_trial.std(ddof=1) / np.sqrt(trials)


def test_fit_scaling_tells_the_two_laws_apart() -> None:
    dims = np.array([16, 64, 256, 1024, 4096], dtype=float)
    sqrt_fit = P.fit_scaling(dims, 2 * np.sqrt(dims))
    log_fit = P.fit_scaling(dims, 0.5 * dims / np.log(dims))
    assert sqrt_fit.preferred == "sqrt(d_k)" and sqrt_fit.exponent == pytest.approx(0.5)
    assert log_fit.preferred == "d_k/log d_k" and 0.6 < log_fit.exponent < 0.95


def test_average_case_capacity_tracks_one_plus_epsilon_dk() -> None:
    for d_k in (32, 128):
        n_max = P.average_case_capacity(d_k, 0.25, 40, seed=5)
        assert abs(n_max - (1 + 0.25 * d_k)) <= 0.1 * 0.25 * d_k + 1


# ---- planted bugs flip the checks ----------------------------------------------------------------


def test_forgetting_the_norm_variance_flips_the_gaussian_check() -> None:
    def without_norm_variance(n, d_k, kind):
        return (n - 1) / d_k

    assert P.check_average_case("gaussian", trials=120, expected=without_norm_variance).verdict == "falsified"


def test_crosstalk_with_the_diagonal_flips_the_memory_check() -> None:
    def with_diagonal(keys, values):
        return (keys @ keys.T) @ values

    assert P.check_hebbian_memory(crosstalk_fn=with_diagonal).verdict == "falsified"


def test_sqrt_knees_would_make_the_capacity_claim_hold() -> None:
    def sqrt_knee(d_k, trials, seed, decoder, d_v=32):
        return P.KneeResult(d_k, decoder, round(3 * float(np.sqrt(d_k))), ())

    assert P.check_sqrt_capacity(knee=sqrt_knee).verdict == "holds"


# ---- input validation ----------------------------------------------------------------------------


def test_bad_inputs_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="values:"):
        P.hebbian_memory(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(TypeError, match="keys:"):
        P.hebbian_memory(np.ones((3, 4), dtype=int), np.ones((3, 2)))
    with pytest.raises(ValueError, match="queries:"):
        P.retrieve(np.ones((2, 4)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="n_keys:"):
        P.sample_keys(np.random.default_rng(0), 1, 5, 4, "orthogonal")
    with pytest.raises(ValueError, match="kind:"):
        P.sample_keys(np.random.default_rng(0), 1, 2, 4, "cubic")
