"""Claims of the catalogue-II families (LLA's interpolation and regression, LSSA's length scale): recorded
verdicts and killed mutants."""

from __future__ import annotations

import pytest

from attnlab.theory.registry import claims, run

CLAIMS = [c for family in ("lla", "softplus") for c in claims(family)]


def test_families_register_their_claims_as_readings() -> None:
    assert {c.family for c in CLAIMS} == {"lla", "softplus"}
    for claim in CLAIMS:
        assert claim.kind == "reading" and claim.source.abstract_level and claim.mutants


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_quick_check_matches_recorded_verdict(claim) -> None:
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence


MUTANTS = [pytest.param(c, m, id=f"{c.id}-{m.name}") for c in CLAIMS for m in c.mutants]


@pytest.mark.parametrize(("claim", "mutant"), MUTANTS)
def test_every_mutant_changes_the_verdict(claim, mutant) -> None:
    result = claim.quick(**mutant.overrides)
    assert result.verdict != claim.verdict, f"{mutant.name} left the verdict at {result.verdict}: {result.evidence}"
