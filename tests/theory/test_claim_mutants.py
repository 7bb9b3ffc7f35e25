"""Every claim registers deliberately wrong variants of its check, and its quick check catches each one.

A mutant is killed when the check returns a verdict other than the recorded one (or raises
AssertionError because an instrument failed its own calibration); a mutant that survives means the
check could not have come out differently for that error, and one that crashes shows nothing.
"""

from __future__ import annotations

import pytest

from attnlab.theory import registry
from attnlab.theory.registry import Claim, Mutant, claims, run_mutant

#: Every theory family (the operator invariants' claims are exercised by the form tests).
FAMILIES = tuple(f for f in registry.FAMILIES if f != "operators")
ALL_CLAIMS: list[Claim] = [claim for family in FAMILIES for claim in claims(family)]
PAIRS: list[tuple[Claim, Mutant]] = [(claim, mutant) for claim in ALL_CLAIMS for mutant in claim.mutants]


def test_every_claim_of_every_family_is_registered_with_mutants() -> None:
    assert {claim.family for claim in ALL_CLAIMS} == set(FAMILIES)
    assert len(ALL_CLAIMS) >= 45
    for claim in ALL_CLAIMS:
        assert claim.mutants, claim.id
        assert len({m.name for m in claim.mutants}) == len(claim.mutants)


@pytest.mark.parametrize(("claim", "mutant"), PAIRS, ids=[f"{c.id}:{m.name}" for c, m in PAIRS])
def test_quick_check_kills_the_mutant(claim: Claim, mutant: Mutant) -> None:
    outcome = run_mutant(claim, mutant)
    assert outcome.status != "crashed", f"{claim.id}:{mutant.name} crashed: {outcome.error}"
    assert outcome.killed, (
        f"{claim.id}:{mutant.name} survived: the check still returned {outcome.observed!r} "
        f"({outcome.result.evidence if outcome.result else ''})"
    )
