"""The pages that are derived from the registries, the table of contents and the bibliography.

Written by ``attnlab book`` before Jupyter Book runs, under ``book/generated/`` (never committed):

* one Operators page per *family*, a family being the reference module that defines a form's operator
  (``Form.module``: forms implemented in the same ``reference/<family>.py`` share a page);
* one Theory chapter per claim family (``Claim.family``), each claim stated and then checked;
* a page for any synthetic task that has no hand-written chapter in ``book/tasks/``;
* ``_toc.yml`` (hand-written chapters, then the generated ones in registry order) and
  ``references.bib`` (:func:`attnlab.bibliography.bibtex`: every paper a form, a claim or a task cites).

A new form, claim or task therefore appears in the book without editing a page. Files are rewritten only
when their content changes, so Sphinx and jupyter-cache see unchanged pages as unchanged.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any

from attnlab.book import text

#: Environment variable naming the book's source folder (set by ``attnlab book``).
BOOK_ENV = "ATTNLAB_BOOK_DIR"
GENERATED = "generated"

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def book_dir() -> Path:
    from attnlab.book.results import repository_root

    return Path(os.environ.get(BOOK_ENV, repository_root() / "book")).resolve()


def code(source: str, *tags: str) -> str:
    """A MyST-NB code cell."""
    head = "```{code-cell} ipython3\n"
    if tags:
        head += f":tags: [{', '.join(tags)}]\n\n"
    return head + source.strip() + "\n```"


def literal_block(body: str) -> str:
    fence = "````" if "```" in body else "```"
    return f"{fence}text\n{body.strip()}\n{fence}"


# ------------------------------------------------------------------------------------- operators


def family_of(form: Any) -> str:
    """A form's family: the name of the reference module that defines its operator."""
    return form.module.__name__.rsplit(".", 1)[-1]


def operator_families() -> dict[str, list[Any]]:
    """Family → its forms, in the order of :data:`attnlab.forms.FORMS`."""
    from attnlab.forms import all_forms

    families: dict[str, list[Any]] = {}
    for form in all_forms():
        families.setdefault(family_of(form), []).append(form)
    return families


def operator_page(family: str) -> str:
    return f"{GENERATED}/operators/{family}"


def _family_title(family: str, forms: list[Any]) -> str:
    if len(forms) == 1:
        return forms[0].title
    doc = sys.modules[forms[0].module.__name__].__doc__ or ""
    return text.literals(text.first_sentence(text.scrub(doc))) or family


def operator_markdown(family: str, forms: list[Any]) -> str:
    from attnlab.book.pages import cited, source_markdown

    lines = [HEADER, f"# {_family_title(family, forms)}", ""]
    names = ", ".join(f"`{f.name}`" for f in forms)
    lines.append(
        f"This page is generated from the declaration{'s' if len(forms) > 1 else ''} of {names} "
        f"(`attnlab.forms`), whose reference operator{'s live' if len(forms) > 1 else ' lives'} in "
        f"`{forms[0].module.__name__}`. The tables below are computed while the page is built: each invariant "
        "is run on the form's fixed samples together with the mutants it must catch, and each fast path is "
        "compared with the float64 reference in every dtype it supports."
    )
    lines += ["", code("from attnlab.book import pages", "remove-cell"), ""]
    for form in forms:
        status = (
            "exact — the paper defines one operator, and this is it"
            if form.status == "exact"
            else "reading — the paper leaves details open; the lab implements the reading spelled out below"
        )
        reference = f"`{form.reference.__module__}.{form.reference.__name__}`"
        lines += [
            f"({text.anchor('form', form.name)})=",
            f"## `{form.name}`" + ("" if len(forms) == 1 else f": {form.title}"),
            "",
            "$$",
            form.equation.strip(),
            "$$",
            "",
            f"- **Source:** {source_markdown(form.source)}",
            f"- **Status:** {status}.",
            f"- **Reference:** {reference} (float64 NumPy), a scalar brute-force loop "
            f"`{form.brute_force.__name__}` and an independent composed-torch oracle.",
            f"- **FLOPs:** {text.literals(form.flop_convention)}.",
            f"- **Bad inputs:** {len(form.bad_inputs())} malformed calls, each of which must raise an error "
            "naming the argument.",
        ]
        if form.note:
            lines += ["", cited(form.note)]
        doc = inspect.getdoc(form.reference)
        if doc:
            lines += [
                "",
                ":::{dropdown} The reference operator's docstring",
                literal_block(text.scrub_lines(doc)),
                ":::",
            ]
        lines += [
            "",
            "### Invariants and their current result",
            "",
            code(f'pages.invariant_table("{form.name}")'),
            "",
            "### Fast paths and their agreement with the reference",
            "",
            code(f'pages.parity_table("{form.name}")'),
            "",
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- theory


def claim_families() -> dict[str, list[Any]]:
    """Claim family → its claims, in registration order."""
    from attnlab.theory import registry

    families: dict[str, list[Any]] = {}
    for claim in registry.claims():
        families.setdefault(claim.family, []).append(claim)
    return families


def theory_page(family: str) -> str:
    return f"{GENERATED}/theory/{family}"


def _check_function(claim: Any) -> Any:
    from attnlab.book.pages import _check_function as unwrap

    return unwrap(claim)


def family_lead(claims: list[Any]) -> tuple[str, str]:
    """(lead sentence, remaining docstring) of the module that registers a family's checks."""
    module = sys.modules.get(_check_function(claims[0]).__module__)
    doc = text.scrub_lines(inspect.getdoc(module) or "") if module else ""
    paragraphs = doc.split("\n\n", 1)
    lead = text.literals(" ".join(paragraphs[0].split()))
    lead = _strip_family_label(lead)
    rest = text.literals(paragraphs[1]) if len(paragraphs) > 1 else ""
    return lead, rest


def _strip_family_label(lead: str) -> str:
    import re

    lead = re.sub(r"^(?:Claim\s+)?[Ff]amily\s+`\w+`\s*:\s*", "", lead)
    lead = re.sub(r",\s*(?:registered as claims of\s+)?family\s+`\w+`", "", lead)
    return lead[:1].upper() + lead[1:]


def claim_markdown(claim: Any, figure_owner: str | None) -> str:
    from attnlab.book.pages import source_markdown

    kind = getattr(claim, "kind", None)
    lines = [f"({text.anchor('claim', claim.id)})=", f"## `{claim.id}`", ""]
    lines += [f"**Statement**{f' ({kind} claim)' if kind else ''}:", "", text.statement_markdown(claim.statement), ""]
    lines.append(f"**Source:** {source_markdown(claim.source)}")
    judges = getattr(claim, "judges", None)
    if judges:
        lines += ["", f"**Whose statement the verdict judges:** {text.literals(text.scrub(judges))}."]
    reads = getattr(claim, "reads", "")
    if reads:
        lines += ["", f"**The paper's statement this reading interprets:** {text.literals(text.scrub(reads))}"]
    if claim.assumptions:
        lines += ["", "**Assumptions:**", ""] + [f"- {text.literals(text.scrub(a))}" for a in claim.assumptions]
    doc = text.docstring(_check_function(claim))
    lines += ["", "**How the check tests it:** " + (doc if doc else "see the code of the check below.")]
    recorded = f"**Recorded verdict:** {claim.verdict}"
    if claim.reason:
        recorded += f" — {text.literals(text.scrub(claim.reason))}"
    condition = getattr(claim, "condition", "")
    if condition:
        recorded += f" It holds under a narrower condition: {text.literals(text.scrub(condition))}"
    lines += ["", recorded]
    mutants = getattr(claim, "mutants", ())
    if mutants:
        lines += ["", "**Mutants the check must kill** (`attnlab verify --mutants` runs them):", ""]
        lines += [f"- `{m.name}`: {text.literals(m.description)}" for m in mutants]
    lines += [
        "",
        "The check, run now:",
        "",
        code(f'claim = registry.get("{claim.id}")\nresult = claim.quick()\npages.check_outcome(claim, result)'),
    ]
    if figure_owner == claim.id:
        lines += ["", code(f'pages.claim_figure("{claim.id}")')]
    elif figure_owner is not None:
        lines += ["", f"Its figure is shown with {{ref}}`{figure_owner} <{text.anchor('claim', figure_owner)}>`."]
    return "\n".join(lines) + "\n"


def theory_markdown(family: str, claims: list[Any]) -> str:
    from attnlab.book.pages import figure_claims

    lead, rest = family_lead(claims)
    owners = figure_claims(family)
    verdicts = {v: sum(1 for c in claims if c.verdict == v) for v in ("holds", "refined", "falsified")}
    counts = ", ".join(f"{n} {v}" for v, n in verdicts.items() if n)
    lines = [HEADER, f"# Claims of family `{family}`", ""]
    if lead:
        lines += [lead + ("" if lead.endswith(".") else "."), ""]
    lines += [
        f"{len(claims)} claims ({counts}). Each is stated as recorded in the claim registry "
        "(`attnlab.theory.registry`), with its source, and is followed by its check, executed while this "
        "page was built; the observed verdict is compared with the recorded one.",
        "",
    ]
    if rest:
        lines += [":::{dropdown} Notation and sources of this family", rest, ":::", ""]
    lines += [code("from attnlab.book import pages\nfrom attnlab.theory import registry", "remove-cell"), ""]
    for claim in claims:
        lines.append(claim_markdown(claim, owners.get(claim.id)))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- tasks


def task_page(name: str, root: Path | None = None) -> str:
    root = root or book_dir()
    return f"tasks/{name}" if (root / "tasks" / f"{name}.md").exists() else f"{GENERATED}/tasks/{name}"


def notes_page(name: str, root: Path | None = None) -> str | None:
    root = root or book_dir()
    return f"tasks/{name}_notes" if (root / "tasks" / f"{name}_notes.md").exists() else None


def task_markdown(name: str) -> str:
    from attnlab.synthetic.registry import TASKS

    module = sys.modules.get(TASKS[name].split(":")[0])
    doc = text.scrub_lines(inspect.getdoc(module) or "") if module else ""
    lines = [
        HEADER,
        f"# Task `{name}`",
        "",
        "This chapter is generated from the task registry "
        "(`attnlab.synthetic.registry`); the task's own description follows.",
        "",
    ]
    if doc:
        lines += [literal_block(doc), ""]
    lines += [
        code("from attnlab.book import pages", "remove-cell"),
        "",
        "## Reproduction criteria",
        "",
        code(f'pages.criteria_table("{name}")'),
        "",
        "## Figures",
        "",
        code(f'pages.task_figures("{name}")'),
        "",
        "## Configuration",
        "",
        code(f'pages.task_configs("{name}")'),
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ toc and files


def write_if_changed(path: Path, content: str) -> bool:
    """Write ``content`` unless the file already holds it; returns whether it wrote."""
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    tmp.replace(path)
    return True


def toc_entries(root: Path) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """The book's parts: ``(caption, [(chapter, [sections])])``, registry pages in registry order."""
    from attnlab.synthetic.registry import task_names

    tasks = [(task_page(name, root), [n] if (n := notes_page(name, root)) else []) for name in task_names()]
    return [
        ("Operators", [("operators", []), *((operator_page(f), []) for f in operator_families())]),
        ("Theory", [("theory", []), *((theory_page(f), []) for f in claim_families())]),
        ("Fast paths", [("fastpaths", []), ("validate", [])]),
        ("Synthetic tasks", [("tasks", []), *tasks]),
        ("Appendix", [("appendix", []), ("references", [])]),
    ]


def toc_files(root: Path) -> list[str]:
    """Every page of the book (docnames, the root first)."""
    files = ["intro"]
    for _, chapters in toc_entries(root):
        for chapter, sections in chapters:
            files += [chapter, *sections]
    return files


def toc(root: Path) -> str:
    lines = [
        "# Written by `attnlab book` from the registries; do not edit.",
        "format: jb-book",
        "root: intro",
        "parts:",
    ]
    for caption, chapters in toc_entries(root):
        lines += [f"- caption: {caption}", "  chapters:"]
        for chapter, sections in chapters:
            lines.append(f"  - file: {chapter}")
            if sections:
                lines += ["    sections:"] + [f"    - file: {s}" for s in sections]
    return "\n".join(lines) + "\n"


def generate(root: Path | None = None) -> list[Path]:
    """Write the generated pages, ``_toc.yml`` and ``references.bib`` into ``root``; remove stale pages.

    Returns the files whose content changed.
    """
    from attnlab.bibliography import bibtex
    from attnlab.synthetic.registry import task_names

    root = root or book_dir()
    pages: dict[Path, str] = {}
    for family, forms in operator_families().items():
        pages[root / f"{operator_page(family)}.md"] = operator_markdown(family, forms)
    for family, claims in claim_families().items():
        pages[root / f"{theory_page(family)}.md"] = theory_markdown(family, claims)
    for name in task_names():
        if task_page(name, root).startswith(GENERATED):
            pages[root / f"{task_page(name, root)}.md"] = task_markdown(name)
    pages[root / "_toc.yml"] = toc(root)
    pages[root / "references.bib"] = bibtex()
    changed = [path for path, content in pages.items() if write_if_changed(path, content)]
    for stale in (root / GENERATED).rglob("*.md"):
        if stale not in pages:
            stale.unlink()
            changed.append(stale)
    return changed
