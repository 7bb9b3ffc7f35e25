"""Claim records: whose statement each verdict judges, and numbers that come from the check itself.

A claim's stated assumptions (ranges, trial counts, tolerances) and the numbers its reason and
condition quote must be the ones its check uses or measures: every number in them (other than small
structural integers) has to appear, at its printed precision, in the quick check's evidence, in the
claim's statement, or among the constants the quick and full checks are called with (their keyword
defaults and the arguments bound by ``functools.partial``).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from attnlab.theory import registry
from attnlab.theory.registry import Claim, claims, run

#: Every theory family (the operator invariants' claims are exercised by the form tests).
FAMILIES = tuple(f for f in registry.FAMILIES if f != "operators")
ALL_CLAIMS: list[Claim] = [claim for family in FAMILIES for claim in claims(family)]

# A number not glued to a word or another number ("float64", "ℓ1.5" and "2^14"'s "2" are not quoted
# numbers; "2^14"'s "14" is).
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])")
#: Integers up to this are structural (N = 2, d_v = 1, n ≥ 3, "4 SE") and need no backing.
SMALL_INTEGER = 10


#: Citations are not quoted numbers: arXiv ids, a year after an author, a locator (Prop. 4.1, Eq. 3, §2.1).
_CITATION = re.compile(
    r"arXiv\s+\d{4}\.\d{4,5}(?:v\d+)?|(?<=[A-Za-z.] )(?:19|20)\d\d\b"
    r"|(?:Prop\.|Proposition|Theorem|Thm\.|Lemma|Corollary|Eq\.|Section|§)\s*\d+(?:\.\d+)*"
)


def quoted_numbers(text: str) -> list[str]:
    text = _CITATION.sub(" ", text)
    return [match.rstrip(".") for match in _NUMBER.findall(text)]


def _needs_backing(token: str) -> bool:
    value = float(token)
    return not (value.is_integer() and abs(value) <= SMALL_INTEGER and "e" not in token.lower())


def _flatten(value: Any) -> Iterator[float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float, np.integer, np.floating)):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _flatten(item)


def _check_constants(check: Callable[..., Any] | None) -> list[float]:
    if check is None:
        return []
    values: list[float] = []
    if isinstance(check, functools.partial):
        values.extend(_flatten(list(check.args)))
        values.extend(_flatten(dict(check.keywords)))
    for parameter in inspect.signature(check).parameters.values():
        if parameter.default is not inspect.Parameter.empty:
            values.extend(_flatten(parameter.default))
    return values


def _backed(token: str, corpus: list[float]) -> bool:
    value = float(token)
    decimals = len(token.split(".")[1].split("e")[0].split("E")[0]) if "." in token else 0
    slack = 0.5 * 10.0**-decimals if "e" not in token.lower() else 0.0
    return any(abs(value - known) <= slack or math.isclose(value, known, rel_tol=1e-9) for known in corpus)


@functools.cache
def _quick_evidence(claim_id: str) -> str:
    claim = next(c for c in ALL_CLAIMS if c.id == claim_id)
    return run(claim).result.evidence


def _corpus(claim: Claim) -> list[float]:
    texts = (_quick_evidence(claim.id), claim.statement)
    numbers = [float(token) for text in texts for token in quoted_numbers(text)]
    return numbers + _check_constants(claim.quick) + _check_constants(claim.full)


@pytest.mark.parametrize("claim", ALL_CLAIMS, ids=lambda c: c.id)
def test_record_numbers_come_from_the_check(claim: Claim) -> None:
    corpus = _corpus(claim)
    fields = {"assumptions": " ; ".join(claim.assumptions), "reason": claim.reason, "condition": claim.condition}
    unbacked = {
        name: [token for token in quoted_numbers(text) if _needs_backing(token) and not _backed(token, corpus)]
        for name, text in fields.items()
    }
    unbacked = {name: tokens for name, tokens in unbacked.items() if tokens}
    assert not unbacked, f"{claim.id}: numbers not found in the evidence or the check's constants: {unbacked}"


@pytest.mark.parametrize("claim", ALL_CLAIMS, ids=lambda c: c.id)
def test_record_says_whose_statement_it_judges(claim: Claim) -> None:
    assert claim.kind in ("paper", "reading", "derived")
    if claim.kind == "paper":
        paper = claim.source.paper
        assert paper is not None and paper.arxiv and claim.source.locator
        assert re.search(r"\bv\d\b", claim.source.locator) or paper.version or claim.source.abstract_level, (
            f"{claim.id}: a paper claim names the arXiv version it read (or judges the abstract)"
        )
        assert claim.source.quote, f"{claim.id}: a paper claim quotes (or closely paraphrases) its source"
        assert "the paper's statement" in claim.judges
    else:
        assert "attnlab" in claim.judges and "paper's statement" not in claim.judges
    if claim.kind == "reading":
        assert claim.reads and claim.source.paper is not None
    if claim.verdict == "refined":
        assert claim.condition
    if claim.verdict != "holds":
        assert claim.reason


def test_the_number_matcher_sees_drift() -> None:
    # The drift this test exists for: a record stating 16…512 and 100 trials beside a check run at 16…256, 60.
    corpus = [16.0, 32.0, 64.0, 128.0, 256.0, 60.0]
    record = "quick: d_k ∈ 16…512 (100 trials), knee exponent ≈ 0.8"
    tokens = [t for t in quoted_numbers(record) if _needs_backing(t)]
    assert tokens == ["16", "512", "100", "0.8"]
    assert [t for t in tokens if not _backed(t, corpus)] == ["512", "100", "0.8"]
    assert _backed("0.73", [0.7312]) and not _backed("0.73", [0.74])
    assert quoted_numbers("float64 and ℓ1.5 but 2^14 and 1e-10·σ₁") == ["2", "14", "1e-10"]
