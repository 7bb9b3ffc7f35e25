"""The claim registry: each theoretical claim is an object with statement, source, check and verdict.

A claim's *recorded* verdict is what the lab asserts after checking (``holds``, ``refined`` or
``falsified``); its check recomputes the evidence and returns the verdict the evidence supports.
``attnlab verify`` and the test suite fail when the two disagree, so a regression in an operator or
a wrong recorded verdict is caught the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["holds", "refined", "falsified"]
VERDICTS: tuple[str, ...] = ("holds", "refined", "falsified")
Kind = Literal["paper", "reading", "derived"]


@dataclass(frozen=True)
class Mutant:
    """A deliberately wrong variant a claim's check must catch: keyword ``overrides`` of the check."""

    name: str
    description: str
    overrides: Any


@dataclass(frozen=True)
class CheckResult:
    """What a check measured.

    Attributes:
        verdict: the verdict the evidence supports.
        evidence: one line for the verdict table: the measured quantity beside its bound, e.g.
            ``"max ‖J‖₂ = 0.4999 ≤ 0.5 over 2000 draws"``.
        data: JSON-serialisable numbers behind the evidence (for ``--json`` and the book).
    """

    verdict: Verdict
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """One theoretical claim.

    Attributes:
        id: dotted stable id, ``family.topic.name`` (e.g. ``softmax.jacobian.spectral_half``).
        family: one of the claim families (``softmax``, ``laser``, ``tensor``, ``heads``, ``pavlov``).
        statement: the claim in LaTeX.
        source: paper, arXiv id and version (or ``derived`` for the lab's own lemmas).
        assumptions: conditions under which the statement is asserted.
        verdict: the recorded verdict.
        reason: one line explaining a verdict other than ``holds`` (empty for ``holds``).
        quick: a check that runs in at most ~10 s.
        full: a longer check (minutes), run by ``attnlab verify --full``; defaults to ``quick``.
        figure: writes the claim's figure into a folder; returns the files written.
    """

    id: str
    family: str
    statement: str
    source: Any
    verdict: Verdict
    quick: Callable[..., CheckResult]
    assumptions: tuple[str, ...] = ()
    reason: str = ""
    full: Callable[..., CheckResult] | None = None
    figure: Callable[[Path], list[Path]] | None = None
    kind: Kind = "paper"
    mutants: tuple[Mutant, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")
        if self.verdict != "holds" and not self.reason:
            raise ValueError(f"reason: claim {self.id} is {self.verdict!r} and needs a one-line reason")


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    result: CheckResult

    @property
    def consistent(self) -> bool:
        return self.result.verdict == self.claim.verdict


_CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in _CLAIMS:
        raise ValueError(f"claim id {claim.id!r} is registered twice")
    _CLAIMS[claim.id] = claim
    return claim


def claims(family: str | None = None) -> list[Claim]:
    """Registered claims (all families, or one), in registration order."""
    _load_families()
    return [c for c in _CLAIMS.values() if family is None or c.family == family]


def get(claim_id: str) -> Claim:
    _load_families()
    try:
        return _CLAIMS[claim_id]
    except KeyError:
        raise KeyError(f"claim: no claim with id {claim_id!r}; see `attnlab verify`") from None


def run(claim: Claim, *, full: bool = False) -> Outcome:
    check = claim.full if (full and claim.full is not None) else claim.quick
    return Outcome(claim, check())


#: Modules that register claims on import: the operator invariants, then one module per family.
FAMILY_MODULES: tuple[str, ...] = (
    "attnlab.operator_claims",
    "attnlab.theory.softmax",
    "attnlab.theory.laser",
    "attnlab.theory.tensor",
    "attnlab.theory.heads",
    "attnlab.theory.pavlov",
    "attnlab.theory.differential",
    "attnlab.theory.lla",
    "attnlab.theory.softplus",
)
FAMILIES: tuple[str, ...] = (
    "operators",
    "softmax",
    "laser",
    "tensor",
    "heads",
    "pavlov",
    "differential",
    "lla",
    "softplus",
)


def _load_families() -> None:
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(module)  # a missing family module is an error, never a silently shorter table
