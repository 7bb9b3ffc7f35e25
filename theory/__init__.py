"""Theoretical claims about attention, each with a statement, a source, a kind, a check, mutants and a verdict."""

from attnlab.theory.registry import (
    CheckResult,
    Claim,
    Mutant,
    MutantOutcome,
    Outcome,
    claims,
    get,
    register,
    run,
    run_mutant,
    run_mutants,
)

__all__ = [
    "CheckResult",
    "Claim",
    "Mutant",
    "MutantOutcome",
    "Outcome",
    "claims",
    "get",
    "register",
    "run",
    "run_mutant",
    "run_mutants",
]
