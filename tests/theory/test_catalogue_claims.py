"""Claims of the catalogue forms (families ``ecoformer``, ``holographic``, ``structured``): what each record
says of whose statement it judges."""

from __future__ import annotations

import pytest

from attnlab.theory import claims

CLAIMS = [*claims("ecoformer"), *claims("holographic"), *claims("structured")]


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


# Their recorded verdicts and planted mutants are run with every other family's, in test_claim_mutants.py
# and test_claim_records.py (both derived from the registry).


def test_catalogue_two_families_register_their_claims_as_readings() -> None:
    registered = [c for family in ("lla", "softplus") for c in claims(family)]
    assert {c.family for c in registered} == {"lla", "softplus"}
    for claim in registered:
        assert claim.kind == "reading" and claim.source.abstract_level and claim.mutants and claim.reads
