"""Sinkhorn specifics: explicit marginals are met at convergence, and the transport-limit claim holds
while its mutants are caught."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference.sinkhorn import sinkhorn_attention
from attnlab.theory import claims


def test_explicit_marginals_are_met_at_convergence() -> None:
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
    r, c = rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 7)
    weights = sinkhorn_attention(q, k, np.eye(7), row_marginal=r, col_marginal=c, iterations=5000, tol=1e-13)
    plan = weights * (r / r.sum())[:, None]  # A = diag(r)^{-1} P
    np.testing.assert_allclose(plan.sum(axis=1), r / r.sum(), rtol=1e-10)
    np.testing.assert_allclose(plan.sum(axis=0), c / c.sum(), atol=1e-12)


def test_early_stop_matches_a_long_run() -> None:
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    stopped = sinkhorn_attention(q, k, v, iterations=10_000, tol=1e-14)
    long = sinkhorn_attention(q, k, v, iterations=3000)
    np.testing.assert_allclose(stopped, long, atol=1e-12)


CLAIMS = claims("sinkhorn")


def test_family_has_its_claims() -> None:
    assert {c.id for c in CLAIMS} == {"sinkhorn.transport.epsilon_limit"}


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_holds_and_its_mutants_are_caught(claim) -> None:
    result = claim.quick()
    assert result.verdict == claim.verdict, result.evidence
    for mutant in claim.mutants:
        assert claim.quick(**mutant.overrides).verdict != claim.verdict, f"mutant {mutant.name} survived"
