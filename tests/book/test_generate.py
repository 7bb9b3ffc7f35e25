"""The registry-derived pages, without building the book: they run in the default test suite.

A new form, claim or task must appear in the generated pages and the table of contents without anyone
editing a page; a claim's check must follow its statement; text shown to readers must not cite the
lab's planning notes; regenerating an unchanged book must write nothing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from attnlab.book import execute, generate, pages, text
from attnlab.forms import all_forms
from attnlab.theory import registry

BOOK = Path(__file__).resolve().parents[2] / "book"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated files written into a copy of the book's hand-written pages."""
    root = tmp_path_factory.mktemp("book")
    for path in BOOK.glob("*.md"):
        shutil.copy(path, root / path.name)
    generate.generate(root)
    return root


def test_forms_are_grouped_by_their_reference_module() -> None:
    families = generate.operator_families()
    placed = [form.name for forms in families.values() for form in forms]
    assert sorted(placed) == sorted(f.name for f in all_forms()), "a form is missing from, or repeated in, the pages"
    for family, forms in families.items():
        assert {f.module.__name__ for f in forms} == {f"attnlab.reference.{family}"}


def test_every_form_has_its_section(generated: Path) -> None:
    for family, forms in generate.operator_families().items():
        page = (generated / f"{generate.operator_page(family)}.md").read_text()
        for form in forms:
            assert f"({text.anchor('form', form.name)})=" in page
            assert form.equation.strip() in page
            assert f'pages.invariant_table("{form.name}")' in page
            assert f'pages.parity_table("{form.name}")' in page


def test_every_claim_is_stated_then_checked(generated: Path) -> None:
    for family, claims in generate.claim_families().items():
        page = (generated / f"{generate.theory_page(family)}.md").read_text()
        for claim in claims:
            label = page.index(f"({text.anchor('claim', claim.id)})=")
            statement = page.index("**Statement**", label)
            check = page.index(f'registry.get("{claim.id}")', statement)
            following = [page.find(f"({text.anchor('claim', c.id)})=") for c in claims]
            next_label = min([i for i in following if i > label] or [len(page)])
            assert label < statement < check < next_label, f"{claim.id}: its check does not follow its statement"


def test_each_claim_figure_is_shown_once(generated: Path) -> None:
    for family, claims in generate.claim_families().items():
        page = (generated / f"{generate.theory_page(family)}.md").read_text()
        shown = re.findall(r'pages\.claim_figure\("([^"]+)"\)', page)
        figures = {id(c.figure) for c in claims if c.figure is not None}
        assert len(shown) == len(figures) == len(set(shown))


def test_toc_lists_every_page_and_each_exists(generated: Path) -> None:
    toc = (generated / "_toc.yml").read_text()
    files = generate.toc_files(generated)
    for family in generate.operator_families():
        assert f"file: {generate.operator_page(family)}" in toc
    for family in generate.claim_families():
        assert f"file: {generate.theory_page(family)}" in toc
    missing = [doc for doc in files if not (generated / f"{doc}.md").exists()]
    assert not missing, f"the table of contents names pages that do not exist: {missing}"


def test_a_task_without_a_chapter_gets_a_generated_one(generated: Path) -> None:
    # the copy holds no tasks/ folder, so every task's chapter is generated
    from attnlab.synthetic.registry import task_names

    for name in task_names():
        page = generated / generate.GENERATED / "tasks" / f"{name}.md"
        assert page.exists() and f'pages.criteria_table("{name}")' in page.read_text()
    assert generate.task_page("icl", BOOK) == "tasks/icl"


def test_regenerating_writes_nothing_and_removes_stale_pages(generated: Path) -> None:
    assert generate.generate(generated) == []
    stale = generated / generate.GENERATED / "operators" / "retired_form.md"
    stale.write_text("# gone\n")
    assert stale in generate.generate(generated)
    assert not stale.exists()


def test_bibliography_is_written_from_the_papers(generated: Path) -> None:
    bib = (generated / "references.bib").read_text()
    keys = set(pages.bibliography())
    assert keys >= {form.source.paper.key for form in all_forms() if form.source.paper is not None}
    assert all(f"@misc{{{key}," in bib for key in keys)


def test_cited_keys_exist_in_the_bibliography() -> None:
    known = set(pages.bibliography())
    keys = set()
    for path in BOOK.rglob("*.md"):
        if "_build" not in path.parts and generate.GENERATED not in path.parts:
            keys |= set(re.findall(r"\{cite:[pt]\}`([^`]+)`", path.read_text()))
    assert keys and keys <= known, f"pages cite keys the bibliography lacks: {sorted(keys - known)}"


def test_scrub_removes_property_labels_and_no_claim_names_the_planning_notes() -> None:
    assert text.scrub("rows sum to 1 (G1)") == "rows sum to 1"
    assert text.scrub("no note here (see Eq. 3)") == "no note here (see Eq. 3)"
    notes = re.compile(r"\b(?:claims|operators|tasks|engineering)\.md\b")
    for claim in registry.claims():
        source = claim.source if isinstance(claim.source, str) else claim.source.cite()
        for shown in (source, claim.statement, *claim.assumptions, claim.reason):
            assert not notes.search(text.scrub(shown)), f"{claim.id}: {text.scrub(shown)!r}"


def test_statements_are_math_only_when_they_are_latex() -> None:
    assert text.statement_markdown(r"\|J\|_2 \le \tfrac12").startswith("$$")
    assert not text.statement_markdown("each visible row sums to 1").startswith("$$")
    assert text.cell("a | b\nc") == r"a \| b c"


def test_pages_reading_results_wait_for_them() -> None:
    handwritten = [BOOK / f"{d}.md" for d in generate.toc_files(BOOK) if not d.startswith(generate.GENERATED)]
    independent, dependent = execute.split_pages(handwritten)
    names = {p.relative_to(BOOK).as_posix() for p in dependent}
    assert {"tasks/icl.md", "tasks/ocr.md", "tasks/laundry.md", "appendix.md"} <= names
    assert {"intro.md", "validate.md", "fastpaths.md"} <= {p.relative_to(BOOK).as_posix() for p in independent}


def test_invariant_table_runs_the_invariants_and_their_mutants() -> None:
    rows = pages.invariant_results("softmax")
    form = next(f for f in all_forms() if f.name == "softmax")
    assert [r["name"] for r in rows] == [inv.name for inv in form.invariants]
    for row in rows:
        assert row["samples"] > 0 and not row["failures"], row
        assert all(count > 0 for count in row["caught"].values()), f"{row['name']}: a mutant escaped: {row['caught']}"
    shown = str(pages.invariant_table("softmax"))
    assert "Every mutant is caught." in shown and "**fails**" not in shown


def test_run_jobs_runs_every_job_and_raises_the_first_failure() -> None:
    from attnlab.book.results import Job, run_jobs

    ran: list[str] = []

    def fail() -> None:
        ran.append("bad")
        raise RuntimeError("boom")

    jobs = [Job("ok", lambda: ran.append("ok")), Job("bad", fail), Job("also", lambda: ran.append("also"))]
    with pytest.raises(RuntimeError, match="boom"):
        run_jobs(jobs, 2, echo=lambda line: None)
    assert sorted(ran) == ["also", "bad", "ok"]


def test_book_verb_is_registered() -> None:
    from typer.testing import CliRunner

    from attnlab.cli import build_app

    result = CliRunner().invoke(build_app(), ["book", "--help"])
    assert result.exit_code == 0
    assert "--quick" in result.output and "--open" in result.output
