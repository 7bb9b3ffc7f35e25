"""The claim registry: each theoretical claim is an object with statement, source, kind, check and verdict.

A claim's *recorded* verdict is what the lab asserts after checking (``holds``, ``refined`` or
``falsified``); its check recomputes the evidence and returns the verdict the evidence supports.
``attnlab verify`` and the test suite fail when the two disagree, so a regression in an operator or
a wrong recorded verdict is caught the same way.

Whose statement a verdict judges is part of the record (:data:`Kind`):

* ``paper``: the source's own statement (its :class:`~attnlab.papers.Source` gives arXiv id, version,
  the place in the paper and a quote or close paraphrase; ``abstract_level`` when only the abstract
  was read). The verdict speaks for the paper's statement.
* ``reading``: the lab's precise interpretation of a vague statement; ``reads`` names the paper
  statement it interprets. The verdict speaks for the reading only.
* ``derived``: the lab's own lemma (``Source(None)``, or the paper whose setting it is about). The
  verdict speaks for the lemma only.

Checks are callables ``quick(**overrides) -> CheckResult`` (and ``full(**overrides)``) whose keyword
parameters, all with defaults, are the operators they run and the constants they use. A
:class:`Mutant` is a named set of overrides that plants a deliberate error (a perturbed operator, a
wrong constant, a dropped term); ``run_mutant`` runs the check with it, and the mutant is *killed*
when the check no longer returns the recorded verdict. Every claim registers at least one mutant, so
every check is shown to be able to come out differently.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attnlab.papers import Source
from attnlab.proofs_checks.results import VERDICTS, CheckResult, Verdict

__all__ = [
    "KINDS",
    "VERDICTS",
    "CheckResult",
    "Claim",
    "Kind",
    "Mutant",
    "MutantOutcome",
    "Outcome",
    "Verdict",
    "claims",
    "get",
    "register",
    "run",
    "run_mutant",
    "run_mutants",
]

Kind = Literal["paper", "reading", "derived"]
KINDS: tuple[str, ...] = ("paper", "reading", "derived")


@dataclass(frozen=True)
class Mutant:
    """A deliberately wrong variant of a claim's check, under which the check must change its verdict.

    Attributes:
        name: short snake_case id, unique within the claim (``"operator_without_row_shift"``).
        description: what is wrong, in one line.
        overrides: keyword overrides passed to the claim's check (``{"operator": wrong_laser}``).
    """

    name: str
    description: str
    overrides: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name: expected a non-empty snake_case mutant name, got {self.name!r}")
        if not self.description:
            raise ValueError(f"description: mutant {self.name!r} needs a one-line description")
        if not self.overrides:
            raise ValueError(f"overrides: mutant {self.name!r} overrides nothing, so it cannot change the check")


def _check_parameters(check: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword parameters a check accepts, and whether it accepts arbitrary ``**kwargs``."""
    parameters = inspect.signature(check).parameters.values()
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = {p.name for p in parameters if p.kind in named}
    return names, accepts_any


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One theoretical claim.

    Attributes:
        id: dotted stable id, ``family.topic.name`` (e.g. ``softmax.jacobian.spectral_bound``).
        family: the claim family (``softmax``, ``laser``, …, ``operators``).
        statement: the claim in LaTeX.
        kind: whose statement the verdict judges: ``paper``, ``reading`` or ``derived``.
        source: where the statement comes from (paper, locator, quote, abstract-level flag).
        verdict: the recorded verdict.
        quick: a check that runs in at most ~10 s.
        mutants: deliberately wrong variants of the check, each of which must change its verdict.
        reads: for a ``reading``: the paper statement it interprets.
        condition: for a ``refined`` verdict: the narrower condition under which the statement holds.
        assumptions: conditions under which the statement is asserted.
        reason: one line explaining a verdict other than ``holds`` (empty for ``holds``).
        full: a longer check (minutes), run by ``attnlab verify --full``; defaults to ``quick``.
        figure: writes the claim's figure into a folder; returns the files written.
    """

    id: str
    family: str
    statement: str
    kind: Kind
    source: Source
    verdict: Verdict
    quick: Callable[..., CheckResult]
    mutants: tuple[Mutant, ...]
    reads: str = ""
    condition: str = ""
    assumptions: tuple[str, ...] = ()
    reason: str = ""
    full: Callable[..., CheckResult] | None = None
    figure: Callable[[Path], list[Path]] | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind: claim {self.id} expected one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.source, Source):
            raise TypeError(
                f"source: claim {self.id} expected an attnlab.papers.Source, got {type(self.source).__name__}"
            )
        if self.kind == "paper" and (self.source.paper is None or not self.source.locator):
            raise ValueError(f"source: claim {self.id} is a 'paper' claim and needs a paper and a locator")
        if self.kind == "reading" and not self.reads:
            raise ValueError(f"reads: claim {self.id} is a 'reading' and must name the paper statement it reads")
        if self.kind != "reading" and self.reads:
            raise ValueError(f"reads: only a 'reading' claim reads a paper statement, claim {self.id} is {self.kind!r}")
        if self.verdict != "holds" and not self.reason:
            raise ValueError(f"reason: claim {self.id} is {self.verdict!r} and needs a one-line reason")
        if self.verdict == "refined" and not self.condition:
            raise ValueError(f"condition: claim {self.id} is 'refined' and must name the narrower condition")
        if self.verdict != "refined" and self.condition:
            raise ValueError(f"condition: only a 'refined' claim has a condition, claim {self.id} is {self.verdict!r}")
        mutants = tuple(self.mutants)
        if not mutants or not all(isinstance(m, Mutant) for m in mutants):
            raise ValueError(f"mutants: claim {self.id} needs at least one Mutant its check must kill")
        object.__setattr__(self, "mutants", mutants)
        names = [m.name for m in mutants]
        if len(set(names)) != len(names):
            raise ValueError(f"mutants: claim {self.id} has duplicate mutant names {names}")
        for label, check in (("quick", self.quick), ("full", self.full)):
            if check is None:
                continue
            accepted, accepts_any = _check_parameters(check)
            for mutant in mutants:
                unknown = set(mutant.overrides) - accepted
                if unknown and not accepts_any:
                    raise ValueError(
                        f"mutants: {self.id} mutant {mutant.name!r} overrides {sorted(unknown)}, which the "
                        f"{label} check does not accept (it takes {sorted(accepted)})"
                    )

    @property
    def judges(self) -> str:
        """Whose statement the verdict speaks for, in words (for the verdict table and the book)."""
        cited = self.source.cite()
        if self.kind == "paper":
            return f"the paper's statement: {cited}"
        if self.kind == "reading":
            return f"attnlab's reading of {cited} ({self.reads}); not the paper's own statement"
        if self.source.paper is None:
            return "attnlab's own lemma"
        return f"attnlab's own lemma, in the setting of {cited}"

    def mutant(self, name: str) -> Mutant:
        for candidate in self.mutants:
            if candidate.name == name:
                return candidate
        raise KeyError(f"mutant: claim {self.id} has no mutant {name!r}; it has {[m.name for m in self.mutants]}")


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    result: CheckResult

    @property
    def consistent(self) -> bool:
        return self.result.verdict == self.claim.verdict


MutantStatus = Literal["killed", "killed_by_assertion", "survived", "crashed"]


@dataclass(frozen=True)
class MutantOutcome:
    """What a check did under a mutant.

    ``killed`` when the check returned a verdict other than the claim's recorded one (``status =
    "killed"``) or raised ``AssertionError`` (``"killed_by_assertion"``). Any other exception is a
    crash, reported apart from a clean kill and not counted as one: a mutant that breaks the check's
    plumbing shows nothing about the check's power.
    """

    claim: Claim
    mutant: Mutant
    status: MutantStatus
    result: CheckResult | None
    error: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.status in ("killed", "killed_by_assertion")

    @property
    def observed(self) -> str:
        if self.result is not None:
            return self.result.verdict
        return "assertion" if self.status == "killed_by_assertion" else "error"


_CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in _CLAIMS:
        raise ValueError(f"claim id {claim.id!r} is registered twice")
    _CLAIMS[claim.id] = claim
    return claim


def claims(family: str | None = None) -> list[Claim]:
    """Registered claims (all families, or one), in registration order.

    Asking for one family imports only the module that registers it (when the family is listed in
    :data:`FAMILY_MODULE`), so a broken module of another family does not hide it; asking for all
    imports every family module and fails loudly if one is missing or broken.
    """
    if family is not None and family in FAMILY_MODULE:
        import importlib

        importlib.import_module(FAMILY_MODULE[family])
    else:
        _load_families()
    return [c for c in _CLAIMS.values() if family is None or c.family == family]


def get(claim_id: str) -> Claim:
    """The claim with id ``claim_id`` (its family's module is imported first, as for :func:`claims`)."""
    family = claim_id.split(".", 1)[0]
    if claim_id not in _CLAIMS:
        claims(family if family in FAMILY_MODULE else None)
    try:
        return _CLAIMS[claim_id]
    except KeyError:
        raise KeyError(f"claim: no claim with id {claim_id!r}; see `attnlab verify`") from None


def _check_for(claim: Claim, full: bool) -> Callable[..., CheckResult]:
    return claim.full if (full and claim.full is not None) else claim.quick


def run(claim: Claim, *, full: bool = False, overrides: Mapping[str, Any] | None = None) -> Outcome:
    """Run the claim's quick (or full) check, with keyword ``overrides`` passed to it."""
    return Outcome(claim, _check_for(claim, full)(**dict(overrides or {})))


def run_mutant(claim: Claim, mutant: Mutant, *, full: bool = False) -> MutantOutcome:
    """Run the claim's check under ``mutant``; see :class:`MutantOutcome` for killed / crashed."""
    check = _check_for(claim, full)
    start = time.perf_counter()
    try:
        result = check(**dict(mutant.overrides))
    except AssertionError as exc:
        return MutantOutcome(claim, mutant, "killed_by_assertion", None, f"AssertionError: {exc}", _since(start))
    except Exception as exc:
        return MutantOutcome(claim, mutant, "crashed", None, f"{type(exc).__name__}: {exc}", _since(start))
    status: MutantStatus = "killed" if result.verdict != claim.verdict else "survived"
    return MutantOutcome(claim, mutant, status, result, "", _since(start))


def run_mutants(claim: Claim, *, full: bool = False) -> list[MutantOutcome]:
    """Every registered mutant of ``claim``, in registration order."""
    return [run_mutant(claim, mutant, full=full) for mutant in claim.mutants]


def _since(start: float) -> float:
    return time.perf_counter() - start


#: Modules of the theory package that hold no claims (infrastructure); every other public module
#: ``attnlab.theory.<family>`` registers the claims of ``<family>`` on import.
_NOT_FAMILIES = frozenset({"registry", "cli", "opcount", "ssm"})


def _discover_family_modules() -> dict[str, str]:
    import pkgutil

    import attnlab.theory as package

    found = {"operators": "attnlab.operator_claims"}  # the form declarations' invariants, as derived claims
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name not in _NOT_FAMILIES:
            found[info.name] = f"{package.__name__}.{info.name}"
    return found


#: The module that registers each family's claims on import, discovered from the theory package (the
#: operator invariants first): a new family module is found without being listed anywhere.
FAMILY_MODULE: dict[str, str] = _discover_family_modules()
FAMILY_MODULES: tuple[str, ...] = tuple(FAMILY_MODULE.values())
FAMILIES: tuple[str, ...] = tuple(FAMILY_MODULE)


def _load_families() -> None:
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(module)  # a missing family module is an error, never a silently shorter table
