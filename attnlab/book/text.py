"""Text helpers for the book: declarations' strings turned into MyST Markdown.

The declarations (forms, claims, tasks) carry LaTeX equations, one-line descriptions and docstrings
written for the terminal (reStructuredText ``literals``). These helpers make them safe in MyST:
inline literals become backtick code, table cells lose their pipes and newlines, a statement is put in
display math only when it is LaTeX, and internal references to the lab's planning notes (which readers
of the book do not have) are dropped.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

#: Internal labels of generic property tests, "(G1)" or "(G5, G7)", meaningless to a reader.
_TEST_LABEL = re.compile(r"\s*\((?:G\d+(?:[,;]\s*)?)+\)")


def scrub(text: str) -> str:
    """``text`` without internal property-test labels, and without the punctuation they leave."""
    out = _TEST_LABEL.sub("", text)
    out = re.sub(r"\(\s*(?:[;,]\s*)*\)", "", out)  # "( )" or "(; )" left where a note was the only content
    out = re.sub(r"\(\s*[;,]\s*", "(", out)
    out = re.sub(r"\s*[;,]\s*\)", ")", out)
    out = re.sub(r"\s*[;,]\s*(?=[;,.])", "", out)
    out = re.sub(r"[;,]\s*$", "", out.rstrip())
    out = re.sub(r"[,;]?\s*\b(?:as restated in(?: attnlab)?|see|in|from)\s*(?=[.;,):]|$)", "", out)
    out = re.sub(r"[ \t]{2,}", " ", out)
    out = re.sub(r" +([.,;:)])", r"\1", out)
    return out.strip()


def literals(text: str) -> str:
    """reStructuredText ``literal`` → MyST `literal`; ``:func:`x``` roles → `x`."""
    text = re.sub(r":(?:func|class|mod|meth|attr|data|obj):`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def docstring(obj: Any) -> str:
    """The cleaned docstring of ``obj`` as Markdown (empty if it has none)."""
    doc = inspect.getdoc(obj) or ""
    return literals(scrub_lines(doc))


def scrub_lines(text: str) -> str:
    """:func:`scrub` applied line by line (keeps paragraph breaks and indentation of lists)."""
    lines = []
    for line in text.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        cleaned = scrub(line) if line.strip() else ""
        lines.append(indent + cleaned if cleaned else "")
    return "\n".join(lines).strip()


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (up to the first '. ' or the end of its first paragraph)."""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(?:\s|$)", paragraph)
    return (match.group(1) if match else paragraph).rstrip(".")


def is_latex(statement: str) -> bool:
    """Whether a claim's statement is LaTeX (a command, or a sub/superscript group) rather than prose."""
    return bool(re.search(r"\\[A-Za-z]+|[_^]\{", statement))


def statement_markdown(statement: str) -> str:
    """A statement as display math when it is LaTeX, else as a paragraph."""
    if is_latex(statement):
        return "$$\n" + statement.strip() + "\n$$"
    return literals(scrub(statement))


def cell(text: Any) -> str:
    """One Markdown table cell: no pipes, no line breaks, literals as code."""
    value = "" if text is None else str(text)
    value = " ".join(value.split())
    return literals(value).replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown (GFM) table."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: Any, spec: str = ".3g") -> str:
    """A number for a table cell (``-`` for None, strings passed through)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def anchor(*parts: str) -> str:
    """A label usable as a MyST target and in links: lowercase, ``[a-z0-9-]`` only."""
    joined = "-".join(parts)
    return re.sub(r"[^a-z0-9]+", "-", joined.lower()).strip("-")


def indent(text: str, prefix: str = "  ") -> str:
    return textwrap.indent(text, prefix)
