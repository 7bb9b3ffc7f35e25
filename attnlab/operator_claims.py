"""Every operator invariant of every form as a claim of family ``operators`` (the lab's own lemmas).

Each claim runs its invariant on the form's fixed samples it applies to; its mutants are the form's
mutants the invariant declares, applied to the reference module while the check runs
(``quick(mutant=name)``), so ``attnlab verify --mutants`` shows each one caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnlab.core import Form, Invariant, mutated
from attnlab.forms import all_forms
from attnlab.papers import Source
from attnlab.testing.samples import applicable, fixed_samples
from attnlab.theory.registry import CheckResult, Claim, Mutant, register


def invariant_check(form: Form, invariant: Invariant) -> Callable[..., CheckResult]:
    def check(*, mutant: str | None = None) -> CheckResult:
        samples = applicable(invariant, fixed_samples(form))
        failures = []

        def run() -> None:
            for sample in samples:
                try:
                    invariant.check(form.module, sample)
                except AssertionError as err:
                    failures.append(f"{sample.label}: {err}")

        if mutant is None:
            run()
        else:
            with mutated(form.module, form.mutant(mutant)):
                run()
        if failures:
            return CheckResult(
                "falsified", f"violated on {failures[0]}", {"failures": failures, "samples": len(samples)}
            )
        return CheckResult("holds", f"checked on {len(samples)} fixed samples", {"samples": len(samples)})

    return check


def operator_claims() -> list[Claim]:
    claims = []
    for form in all_forms():
        for inv in form.invariants:
            source: Any = Source(
                form.source.paper, form.source.locator + " (the operator; the invariant is the lab's lemma)"
            )
            claims.append(
                Claim(
                    id=f"operators.{form.name}.{inv.name}",
                    family="operators",
                    statement=inv.description,
                    source=source,
                    verdict="holds",
                    quick=invariant_check(form, inv),
                    kind="derived",
                    mutants=tuple(Mutant(m, form.mutant(m).description, {"mutant": m}) for m in inv.mutants),
                )
            )
    return claims


for _claim in operator_claims():
    register(_claim)
