"""The built book, read as HTML: pages, images, cell outputs, math, links, citations, offline assets.

Each test reads ``book/_build/html`` as ``attnlab book --quick`` wrote it (skipped, with the reason, when
the book is not built) and would fail on the defect it names: a page missing from the build, an image
that is not there or is empty, a cell that raised or wrote to stderr, TeX left unrendered in the text,
a link to a page or anchor that does not exist, a page without a citation, an asset fetched from the
network, a registry entry without its page.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = [pytest.mark.book, pytest.mark.slow]

bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (installed with the book extra) parses the HTML")

#: Pages exempt from "cites its sources": the bibliography, the build notes, and a task's own lab notes
#: (included as the task ships them, inside a chapter that cites the task's paper).
NO_CITATION_NEEDED = {"references", "appendix"}
#: TeX that would show as source text if MathJax or the Markdown parser missed it.
RAW_TEX = re.compile(
    r"\\(?:frac|left|right|operatorname|mathrm|mathbb|text|sum|sqrt|alpha|sigma|le|ge|top)\b|\$\$|\\\(|\\\["
)
#: The lab's planning notes, which readers do not have.
NOTES = re.compile(r"\b(?:claims|operators|tasks|engineering)\.md\b")


def soup_of(path: Path) -> bs4.BeautifulSoup:
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def article(soup: bs4.BeautifulSoup) -> bs4.Tag:
    main = soup.find("article") or soup.find("main")
    assert main is not None, "no <article> in the page"
    return main


@pytest.fixture(scope="module")
def soups(chapter_pages: dict[str, Path]) -> dict[str, bs4.BeautifulSoup]:
    return {doc: soup_of(path) for doc, path in chapter_pages.items() if path.exists()}


def test_every_chapter_page_is_built(chapter_pages: dict[str, Path]) -> None:
    missing = [doc for doc, path in chapter_pages.items() if not path.exists() or path.stat().st_size == 0]
    assert not missing, f"pages in the table of contents without HTML: {missing}"
    assert len(chapter_pages) >= 12


def test_every_image_exists_and_is_not_empty(
    soups: dict[str, bs4.BeautifulSoup], chapter_pages: dict[str, Path]
) -> None:
    problems, count = [], 0
    for doc, soup in soups.items():
        for img in article(soup).find_all("img"):
            count += 1
            src = img.get("src", "")
            assert not src.startswith(("http:", "https:", "//")), f"{doc}: image fetched from the network: {src}"
            target = (chapter_pages[doc].parent / unquote(urlsplit(src).path)).resolve()
            if not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{doc}: {src}")
    assert not problems, f"images missing or empty: {problems}"
    assert count >= 10, f"only {count} images in the book: the task and claim figures are missing"


def test_task_and_claim_chapters_show_figures(soups: dict[str, bs4.BeautifulSoup]) -> None:
    for doc in ("tasks/icl", "tasks/ocr", "tasks/laundry", "generated/theory/softmax"):
        assert article(soups[doc]).find_all("img"), f"{doc} shows no figure"


def test_no_cell_raised_or_wrote_to_stderr(soups: dict[str, bs4.BeautifulSoup]) -> None:
    bad = []
    for doc, soup in soups.items():
        for output in article(soup).select(".cell_output"):
            classes = " ".join(" ".join(el.get("class", [])) for el in [output, *output.find_all(True)])
            if (
                re.search(r"\b(?:stderr|traceback|error)\b", classes)
                or "Traceback (most recent call last)" in output.get_text()
            ):
                bad.append(f"{doc}: {output.get_text(' ', strip=True)[:200]}")
    assert not bad, f"cells with error or warning output: {bad}"


def test_cells_were_executed(soups: dict[str, bs4.BeautifulSoup]) -> None:
    for doc in ("intro", "generated/operators/softmax", "generated/theory/softmax", "validate", "tasks/icl"):
        outputs = article(soups[doc]).select(".cell_output")
        assert outputs, f"{doc}: its code cells have no output (not executed?)"


def test_no_raw_tex_outside_rendered_math(chapter_pages: dict[str, Path]) -> None:
    leaks = []
    for doc, path in chapter_pages.items():
        body = article(soup_of(path))  # a fresh parse: the math is cut out of it below
        for element in body.select(".math, pre, code, script, style, .highlight"):
            element.decompose()
        text = body.get_text(" ")
        for match in RAW_TEX.finditer(text):
            leaks.append(f"{doc}: …{text[max(0, match.start() - 40) : match.end() + 40]}…")
    assert not leaks, f"TeX left outside math: {leaks[:10]}"


def test_math_is_marked_for_mathjax_and_mathjax_is_local(
    soups: dict[str, bs4.BeautifulSoup], chapter_pages: dict[str, Path]
) -> None:
    for doc in ("intro", "generated/theory/softmax", "tasks/icl"):
        assert article(soups[doc]).select(".math"), f"{doc} has no math for MathJax to typeset"
    for doc, soup in soups.items():
        if not article(soup).select(".math"):
            continue  # Sphinx loads MathJax only where there is math
        scripts = [s["src"] for s in soup.find_all("script", src=True)]
        mathjax = [s for s in scripts if "tex-chtml" in s]
        assert mathjax, f"{doc}: has math but does not load MathJax"
        target = chapter_pages[doc].parent / urlsplit(mathjax[0]).path
        assert target.resolve().is_file(), f"{doc}: MathJax script {mathjax[0]} is not in the build"


def test_nothing_is_fetched_from_the_network(soups: dict[str, bs4.BeautifulSoup]) -> None:
    remote = []
    for doc, soup in soups.items():
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
            for element in soup.find_all(tag):
                url = element.get(attr, "")
                if tag == "link" and "stylesheet" not in element.get("rel", []) and element.get("as") is None:
                    continue
                if url.startswith(("http:", "https:", "//")):
                    remote.append(f"{doc}: <{tag} {attr}={url}>")
    assert not remote, f"assets loaded from the network at view time: {remote}"


def test_every_internal_link_resolves(html_dir: Path) -> None:
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = soup_of(path)
            ids[path] = {el["id"] for el in soup.find_all(id=True)} | {
                el["name"] for el in soup.find_all("a", attrs={"name": True})
            }
        return ids[path]

    broken, checked = [], 0
    pages = [p for p in html_dir.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts]
    for page in pages:
        for link in soup_of(page).find_all("a", href=True):
            href = link["href"]
            parts = urlsplit(href)
            if parts.scheme or href.startswith(("mailto:", "//")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            checked += 1
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(html_dir)} → {href}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in anchors(target):
                broken.append(f"{page.relative_to(html_dir)} → {href} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal links: {broken[:15]}"
    assert checked > 200


def test_every_content_page_cites_its_sources(soups: dict[str, bs4.BeautifulSoup]) -> None:
    uncited = [
        doc
        for doc, soup in soups.items()
        if doc not in NO_CITATION_NEEDED
        and not doc.endswith("_notes")
        and not article(soup).select('a[href*="references.html#"]')
    ]
    assert not uncited, f"pages without a citation into the bibliography: {uncited}"


def test_bibliography_lists_the_papers(soups: dict[str, bs4.BeautifulSoup]) -> None:
    from attnlab.book.pages import bibliography

    text = " ".join(article(soups["references"]).get_text(" ").split())

    def shown(title: str) -> str:  # how the title reads once BibTeX escapes and braces are rendered
        return " ".join(title.replace("\\", "").replace("{", "").replace("}", "").split(":")[0].split())[:30]

    missing = [key for key, p in bibliography().items() if shown(p.title) not in text]
    assert not missing, f"papers of attnlab.bibliography missing from the References page: {missing}"


def test_no_page_names_the_planning_notes(soups: dict[str, bs4.BeautifulSoup]) -> None:
    named = [doc for doc, soup in soups.items() if NOTES.search(article(soup).get_text(" "))]
    assert not named, f"pages that cite the lab's planning notes: {named}"


def test_every_registry_entry_has_its_place(soups: dict[str, bs4.BeautifulSoup]) -> None:
    from attnlab.book.generate import operator_families, operator_page, theory_page
    from attnlab.book.text import anchor
    from attnlab.theory import registry

    intro = article(soups["intro"]).get_text(" ")
    for claim in registry.claims():
        assert claim.id in intro, f"claim {claim.id} is not in the verdict table"
        page = soups[theory_page(claim.family)]
        assert page.find(id=anchor("claim", claim.id)), f"claim {claim.id} has no section in its chapter"
    for family, forms in operator_families().items():
        page = soups[operator_page(family)]
        for form in forms:
            assert page.find(id=anchor("form", form.name)), f"form {form.name} has no section on {family}'s page"


def test_verdict_table_reports_consistent_verdicts(soups: dict[str, bs4.BeautifulSoup]) -> None:
    text = " ".join(article(soups["intro"]).get_text(" ").split())
    assert "each observed verdict equals the recorded one" in text, "a claim's check disagrees with its verdict"


def test_validate_page_shows_the_pass_and_the_diagnosed_failure(soups: dict[str, bs4.BeautifulSoup]) -> None:
    text = " ".join(article(soups["validate"]).get_text(" ").split())
    assert "PASS" in text and "FAIL" in text
    assert "top-left causal alignment" in text


def test_laundry_notes_are_in_the_laundry_chapter(chapter_pages: dict[str, Path]) -> None:
    from attnlab.book.generate import notes_page

    notes = notes_page("laundry")
    if notes is None:
        pytest.skip("book/tasks/laundry_notes.md is not in this checkout (the laundry task ships it)")
    assert chapter_pages[notes].exists()


def test_task_chapters_read_every_reported_quantity(soups: dict[str, bs4.BeautifulSoup]) -> None:
    from attnlab.book.generate import task_page
    from attnlab.synthetic.registry import task_names

    for name in task_names():
        text = article(soups[task_page(name)]).get_text(" ")
        assert "not in this run's summary" not in text, f"{name}: a reported quantity has no value in the summary"
        assert "criteria met" in text, f"{name}: no reproduction criteria"
