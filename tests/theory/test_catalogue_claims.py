"""Claims of the catalogue forms (families ``ecoformer``, ``holographic``, ``structured``): recorded verdicts,
whose statement each judges, and planted mutants that must change the verdict."""

from __future__ import annotations

import pytest

from attnlab.theory import claims

CLAIMS = [*claims("ecoformer"), *claims("holographic"), *claims("structured")]
MUTANTS = [pytest.param(c, m, id=f"{c.id}-{m.name}") for c in CLAIMS for m in c.mutants]


def test_families_have_their_claims() -> None:
    assert {c.id for c in CLAIMS} == {
        "ecoformer.linear_time.binary_code_product",
        "holographic.phase.global_equivariance",
        "holographic.interference.energy_bound",
        "structured.btt.full_rank",
        "structured.mlr.rank_budget",
        "structured.mlr.distance_bias",
    }


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_record_is_complete(claim) -> None:
    assert claim.kind in ("paper", "reading") and claim.mutants and claim.statement
    assert claim.source.paper is not None and claim.source.locator and claim.source.abstract_level
    if claim.kind == "reading":
        assert claim.assumptions[0].startswith("reading of"), "a reading names the statement it reads first"
    assert claim.verdict == "holds" or claim.reason


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_check_supports_the_recorded_verdict(claim) -> None:
    result = claim.quick()
    assert result.verdict == claim.verdict, result.evidence
    assert result.evidence


@pytest.mark.parametrize(("claim", "mutant"), MUTANTS)
def test_planted_mutant_changes_the_verdict(claim, mutant) -> None:
    result = claim.quick(**mutant.overrides)
    assert result.verdict != claim.verdict, f"{mutant.name} survived: {result.evidence}"
