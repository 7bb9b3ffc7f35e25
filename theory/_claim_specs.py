"""Claim records of the catalogue forms, written ahead of the claim registry's ``kind``/``mutants`` API.

Each :class:`ClaimSpec` carries what a registered claim needs (id, family, statement, kind, source, the
recorded verdict with its reason or condition, the quick check and its planted mutants as keyword
overrides), so registering it is one call once :mod:`attnlab.theory.registry` has the fields. Checks
are functions with keyword parameters (the operator and constants they use) returning
:class:`attnlab.theory.registry.CheckResult`; a mutant is a set of overrides under which the check must
return a verdict other than the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from attnlab.papers import Source
from attnlab.theory.registry import CheckResult


@dataclass(frozen=True)
class Planted:
    """A deliberate error planted through the check's keyword parameters."""

    name: str
    description: str
    overrides: Mapping[str, Any]


@dataclass(frozen=True)
class ClaimSpec:
    """One claim: whose statement it is (``kind``: ``paper``, ``reading`` or ``derived``), its check and mutants."""

    id: str
    family: str
    statement: str
    kind: str
    source: Source
    verdict: str
    quick: Callable[..., CheckResult]
    mutants: tuple[Planted, ...]
    reads: str = ""
    condition: str = ""
    reason: str = ""
    assumptions: tuple[str, ...] = field(default_factory=tuple)
