"""Theoretical claims about attention, each with a statement, a source, a check and a verdict."""

from attnlab.theory.registry import CheckResult, Claim, Outcome, claims, get, register, run

__all__ = ["CheckResult", "Claim", "Outcome", "claims", "get", "register", "run"]
