"""Softmax Jacobian/Lipschitz claims: recorded verdicts, property hunts, planted bugs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.proofs_checks import softmax as symbolic
from attnlab.theory import softmax as family
from attnlab.theory._checks import operator_norm, shannon_entropy, softmax_jacobian, stable_softmax
from attnlab.theory.registry import claims, run

SOFTMAX_CLAIMS = claims("softmax")


def test_family_registers_enough_claims() -> None:
    assert len(SOFTMAX_CLAIMS) >= 6
    assert {c.verdict for c in SOFTMAX_CLAIMS} >= {"holds", "refined"}
    for claim in SOFTMAX_CLAIMS:
        assert claim.statement and claim.source and claim.quick is not None


@pytest.mark.parametrize("claim", SOFTMAX_CLAIMS, ids=[c.id for c in SOFTMAX_CLAIMS])
def test_quick_check_matches_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence
    assert outcome.result.evidence


# --- hypothesis hunts for violations ------------------------------------------------------------

logits = st.integers(2, 16).flatmap(lambda n: st.lists(st.floats(-20.0, 20.0, allow_nan=False), min_size=n, max_size=n))
temperature_factors = st.sampled_from([1e-2, 1e-1, 1.0, 1e1, 1e2])


def _probabilities(z: list[float], factor: float) -> tuple[np.ndarray, np.ndarray]:
    scaled = np.array(z) * factor
    return scaled, family.reference_softmax(scaled)


@given(logits, temperature_factors, st.integers(0, 2**31 - 1))
def test_jacobian_structure(z, factor, seed) -> None:
    _, p = _probabilities(z, factor)
    jac = softmax_jacobian(p)
    assert np.allclose(jac @ np.ones_like(p), 0.0, atol=1e-15)
    assert np.array_equal(jac, jac.T)
    eig = np.linalg.eigvalsh(jac)
    assert eig.min() >= -1e-14
    x = np.random.default_rng(seed).standard_normal(p.shape[0])
    assert np.isclose(x @ jac @ x, p @ x**2 - (p @ x) ** 2, rtol=1e-10, atol=1e-12)
    # Interlacing with sorted p.
    ps = np.sort(p)[::-1]
    lam = np.sort(eig)[::-1]
    assert np.all(lam <= ps + 1e-12)
    assert np.all(ps[1:] <= lam[:-1] + 1e-12)


@given(logits, temperature_factors)
def test_spectral_frobenius_trace_entropy_bounds(z, factor) -> None:
    _, p = _probabilities(z, factor)
    jac = softmax_jacobian(p)
    spectral = np.linalg.eigvalsh(jac).max()
    assert spectral <= min(0.5, p.max(), 1 - p.max() ** 2) + 1e-12
    assert np.linalg.norm(jac, "fro") <= 0.5 + 1e-12
    assert np.isclose(np.trace(jac), 1 - np.sum(p**2), rtol=1e-10, atol=1e-12)
    assert np.trace(jac) <= 1 - np.exp(-shannon_entropy(p)) + 1e-12
    assert spectral >= np.trace(jac) / (p.shape[0] - 1) - 1e-12


@given(logits, st.sampled_from([0.3, 1.0, 3.0]))
def test_finite_difference_matches_jacobian_over_temperature(z, temperature) -> None:
    z = np.array(z)
    p = family.reference_softmax(z / temperature)
    fd = np.stack(
        [
            (
                family.reference_softmax((z + 1e-6 * e) / temperature)
                - family.reference_softmax((z - 1e-6 * e) / temperature)
            )
            / 2e-6
            for e in np.eye(z.shape[0])
        ],
        axis=1,
    )
    np.testing.assert_allclose(fd, softmax_jacobian(p) / temperature, atol=1e-7 / temperature, rtol=1e-7)


@given(logits, st.lists(st.floats(-20.0, 20.0, allow_nan=False), min_size=16, max_size=16), temperature_factors)
def test_lipschitz_half_in_l1_l2_linf(z, other, factor) -> None:
    z_a = np.array(z) * factor
    z_b = np.array(other[: z_a.shape[0]]) * factor
    if np.array_equal(z_a, z_b):
        return
    diff = family.reference_softmax(z_a) - family.reference_softmax(z_b)
    for order in (1, 2, np.inf):
        assert np.linalg.norm(diff, order) <= 0.5 * np.linalg.norm(z_a - z_b, order) + 1e-12


# --- attainment cases -------------------------------------------------------------------------


def test_two_tokens_equal_logits_attain_half_exactly() -> None:
    jac = softmax_jacobian(family.reference_softmax(np.zeros(2)))
    assert np.linalg.norm(jac, 2) == 0.5
    assert np.linalg.norm(jac, "fro") == 0.5
    # The Nair caveat: every ℓ_p → ℓ_p norm is exactly ½ here (x = (1, −1) attains the Riesz–Thorin bound).
    x = np.array([1.0, -1.0])
    for order in (1.5, 2.0, 3.0, 7.0):
        assert np.linalg.norm(jac @ x, order) / np.linalg.norm(x, order) == pytest.approx(0.5, abs=1e-15)


def test_l1_norm_is_half_at_half_quarter_quarter() -> None:
    p = family.reference_softmax(np.array([np.log(2.0), 0.0, 0.0]))
    np.testing.assert_allclose(p, [0.5, 0.25, 0.25], rtol=1e-15)
    jac = softmax_jacobian(p)
    assert operator_norm(jac, 1) == pytest.approx(0.5, abs=1e-15)
    assert operator_norm(jac, np.inf) == pytest.approx(0.5, abs=1e-15)
    assert operator_norm(jac, 2) == pytest.approx(0.375, abs=1e-15)


def test_three_tokens_approach_half_from_below() -> None:
    norms = [
        np.linalg.norm(softmax_jacobian(family.reference_softmax(np.array([0.0, 0.0, -t]))), 2)
        for t in (0.0, 1.0, 5.0, 10.0, 20.0, 30.0)
    ]
    assert all(a < b for a, b in itertools.pairwise(norms))
    assert norms[-1] < 0.5
    assert 0.5 - norms[-1] < 1e-12


def test_uniform_frobenius_closed_form() -> None:
    for n in (2, 3, 10, 100):
        assert np.linalg.norm(softmax_jacobian(np.full(n, 1 / n)), "fro") == pytest.approx(np.sqrt(n - 1) / n)


def test_reference_softmax_agrees_with_direct_formula() -> None:
    z = np.random.default_rng(0).standard_normal(7) * 5
    np.testing.assert_allclose(family.reference_softmax(z), stable_softmax(z), rtol=1e-14)


# --- SymPy proofs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proof",
    [
        symbolic.lse_hessian_equals_jacobian,
        symbolic.jacobian_kernel_and_symmetry,
        symbolic.frobenius_identity,
        symbolic.two_token_eigenvalues,
        symbolic.entropy_inverse_temperature_derivative,
    ],
    ids=lambda f: f.__name__,
)
def test_symbolic_identities_hold(proof) -> None:
    result = proof()
    assert result.verdict == "holds", result.evidence


def test_symbolic_check_catches_a_wrong_jacobian(monkeypatch) -> None:
    import sympy as sp

    def doubled_outer(p):
        n = len(p)
        return sp.Matrix(n, n, lambda i, j: (p[i] if i == j else 0) - 2 * p[i] * p[j])

    monkeypatch.setattr(symbolic, "_jacobian_of", doubled_outer)
    assert symbolic.lse_hessian_equals_jacobian(sizes=(2,)).verdict == "falsified"
    assert symbolic.frobenius_identity(sizes=(2,)).verdict == "falsified"


# --- planted bugs flip the numeric verdicts -----------------------------------------------------


def test_wrong_jacobian_is_caught() -> None:
    result = family.check_jacobian_form(draws=20, jacobian=lambda p: np.diag(p) - 0.9 * np.outer(p, p))
    assert result.verdict == "falsified", result.evidence


def test_too_tight_spectral_bound_is_caught() -> None:
    def too_tight(p):
        return min(0.45, float(np.max(p)), 1 - float(np.max(p)) ** 2)

    assert family.check_spectral_bound(draws=200, bound=too_tight).verdict == "falsified"


def test_interior_norm_verdict_becomes_holds_without_the_n2_counterexample() -> None:
    # If ‖J‖ at the n = 2 tie were below ½ the quoted statement would simply hold.
    def shrunk_at_two(p):
        return family.softmax_jacobian(p) * (0.99 if p.shape[0] == 2 else 1.0)

    assert family.check_interior_norms_strict(instances=2, jacobian=shrunk_at_two).verdict == "holds"


def test_norm_search_climbs_from_random_starts() -> None:
    # The search must find the attained ½ at the n = 2 tie and on (½, ½, 0) without being started there.
    rng = np.random.default_rng(0)
    for weights in family.CALIBRATION_WEIGHTS:
        known = np.diag(weights) - np.outer(weights, weights)
        for order in (1.25, 1.5, 2.0, 3.0, 4.0):
            assert family.lp_operator_norm_search(known, order, rng) == pytest.approx(0.5, abs=1e-9)
    # On a random matrix it agrees with the exact ℓ₂ norm and bounds the ℓ₁/ℓ∞ norms from below.
    matrix = rng.standard_normal((5, 5))
    assert family.lp_operator_norm_search(matrix, 2.0, rng, starts=16) == pytest.approx(np.linalg.norm(matrix, 2))
    assert (
        family.lp_operator_norm_search(matrix, 1.5, rng)
        <= max(np.linalg.norm(matrix, 1), np.linalg.norm(matrix, np.inf)) + 1e-12
    )
