"""Claims of the catalogue forms (EcoFormer, holographic, BTT/MLR): recorded verdicts and planted mutants.

The claim registry on main has no ``kind``/``mutants`` fields yet, so these claims are :class:`ClaimSpec`
records; each check must return its recorded verdict, and every planted mutant must change it.
"""

from __future__ import annotations

import pytest

from attnlab.theory import ecoformer, holographic, structured

SPECS = [*ecoformer.CLAIMS, *holographic.CLAIMS, *structured.CLAIMS]
MUTANTS = [pytest.param(spec, planted, id=f"{spec.id}-{planted.name}") for spec in SPECS for planted in spec.mutants]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_record_is_complete(spec) -> None:
    assert spec.kind in ("paper", "reading", "derived")
    assert spec.id.startswith(f"{spec.family}.") and spec.statement and spec.mutants
    if spec.kind == "paper":
        assert spec.source.paper is not None and spec.source.locator
    assert bool(spec.reads) == (spec.kind == "reading")
    assert bool(spec.condition) == (spec.verdict == "refined")
    assert spec.verdict == "holds" or spec.reason


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_check_supports_the_recorded_verdict(spec) -> None:
    result = spec.quick()
    assert result.verdict == spec.verdict, result.evidence
    assert result.evidence


@pytest.mark.parametrize(("spec", "planted"), MUTANTS)
def test_planted_mutant_changes_the_verdict(spec, planted) -> None:
    result = spec.quick(**planted.overrides)
    assert result.verdict != spec.verdict, f"{planted.name} survived: {result.evidence}"
