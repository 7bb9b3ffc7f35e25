"""The result every check returns: a verdict and the evidence behind it.

Defined here, below the claim registry, so the exact (SymPy/mpmath) checks in this package can return
it without importing the registry; :mod:`attnlab.theory.registry` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["holds", "refined", "falsified"]
VERDICTS: tuple[str, ...] = ("holds", "refined", "falsified")


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
