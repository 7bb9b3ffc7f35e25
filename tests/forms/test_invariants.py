"""Invariants generated from the form declarations: fixed samples, hypothesis samples, and mutants.

Each invariant runs on the form's fixed samples it applies to (and must apply to at least its stated
minimum), on hypothesis samples filtered to those it applies to, and must fail under every mutant it
declares: a check that cannot fail is a defect.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.core import mutated
from attnlab.forms import all_forms
from attnlab.testing.samples import applicable, fixed_samples

FORMS = all_forms()
INVARIANTS = [pytest.param(form, inv, id=f"{form.name}-{inv.name}") for form in FORMS for inv in form.invariants]
MUTANT_CASES = [
    pytest.param(form, inv, mutant, id=f"{form.name}-{inv.name}-{mutant}")
    for form in FORMS
    for inv in form.invariants
    for mutant in inv.mutants
]


@pytest.mark.parametrize(("form", "invariant"), INVARIANTS)
def test_invariant_on_fixed_samples(form, invariant, request) -> None:
    samples = applicable(invariant, fixed_samples(form))
    assert len(samples) >= invariant.min_samples, (
        f"{invariant.name} applies to {len(samples)} fixed samples, fewer than its minimum {invariant.min_samples}"
    )
    for sample in samples:
        invariant.check(form.module, sample)
    request.node.user_properties.append(("invariant_samples", (form.name, invariant.name, "fixed", len(samples))))


@pytest.mark.parametrize(("form", "invariant"), INVARIANTS)
def test_invariant_on_hypothesis_samples(form, invariant, request) -> None:
    checked: list[str] = []

    @given(st.builds(form.sample, st.integers(0, 2**32 - 1), form.shapes).filter(invariant.applies))
    def check(sample) -> None:
        invariant.check(form.module, sample)
        checked.append(sample.label)

    check()
    request.node.user_properties.append(("invariant_samples", (form.name, invariant.name, "hypothesis", len(checked))))
    assert len(checked) >= invariant.min_samples, (
        f"{invariant.name}: hypothesis drew {len(checked)} samples it applies to, fewer than its minimum "
        f"{invariant.min_samples}"
    )


@pytest.mark.parametrize(("form", "invariant", "mutant"), MUTANT_CASES)
def test_invariant_catches_its_mutant(form, invariant, mutant) -> None:
    samples = applicable(invariant, fixed_samples(form))
    caught = 0
    with mutated(form.module, form.mutant(mutant)):
        for sample in samples:
            try:
                invariant.check(form.module, sample)
            except AssertionError:
                caught += 1
    assert caught, f"{invariant.name} passes on every fixed sample under mutant {mutant!r}"


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_every_mutant_is_caught_by_some_invariant(form) -> None:
    claimed = {m for inv in form.invariants for m in inv.mutants}
    assert claimed == {m.name for m in form.mutants}, (
        f"mutants no invariant claims: {sorted({m.name for m in form.mutants} - claimed)}"
    )


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_mutants_leave_the_module_as_it_was(form) -> None:
    before = dict(vars(form.module))
    for mutant in form.mutants:
        with mutated(form.module, mutant):
            pass
    assert {k: v for k, v in vars(form.module).items() if k in before} == before


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_reference_is_deterministic_and_float64(form) -> None:
    sample = fixed_samples(form, seed=123)[1]
    first, second = sample.call(form.reference), sample.call(form.reference)
    assert first.dtype in (np.float64, np.complex128)
    assert np.array_equal(first, second)
