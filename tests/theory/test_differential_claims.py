"""Differential-attention sensitivity claims (Takahashi et al. 2025): recorded verdicts, killed mutants,
and the identity the gradient statement rests on."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.theory import differential as family
from attnlab.theory.registry import claims, run

CLAIMS = claims("differential")


def test_family_registers_its_claims_as_paper_statements() -> None:
    assert {c.id for c in CLAIMS} == {"differential.sensitivity.gradient_norm", "differential.sensitivity.lipschitz"}
    for claim in CLAIMS:
        assert claim.kind == "paper" and claim.source.abstract_level and claim.mutants


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_quick_check_matches_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence


MUTANTS = [pytest.param(c, m, id=f"{c.id}-{m.name}") for c in CLAIMS for m in c.mutants]


@pytest.mark.parametrize(("claim", "mutant"), MUTANTS)
def test_every_mutant_changes_the_verdict(claim, mutant) -> None:
    result = claim.quick(**mutant.overrides)
    assert result.verdict != claim.verdict, f"{mutant.name} left the verdict at {result.verdict}: {result.evidence}"


def test_gradient_norm_identity_on_the_draws() -> None:
    """‖g₁ − λg₂‖² = ‖g₁‖² + λ²‖g₂‖² − 2λ⟨g₁, g₂⟩ on the checked heads, and negative alignment leaves
    ‖g‖² above the no-interaction value ‖g₁‖² + λ²‖g₂‖²."""
    lam = family.LAMBDA
    for d in family.draws(family.differential_attention, lam, family.DRAWS, 0)[:20]:
        g, g1, g2 = d.weight @ d.jac, d.weight @ d.jac1, d.weight @ d.jac2
        assert np.isclose(g @ g, g1 @ g1 + lam**2 * (g2 @ g2) - 2 * lam * (g1 @ g2), rtol=1e-6)
        if g1 @ g2 < 0:
            assert g @ g > g1 @ g1 + lam**2 * (g2 @ g2)
