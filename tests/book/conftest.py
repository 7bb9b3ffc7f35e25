"""Fixtures of the book tests: the built HTML (``make book`` / ``attnlab book --quick``) and a browser.

Tests that read the built book skip, saying so, when it has not been built: building it takes minutes,
so the default test run does not; ``.ci/run`` builds it and then runs these tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attnlab.book.generate import toc_files

BOOK = Path(__file__).resolve().parents[2] / "book"
HTML = Path(os.environ.get("ATTNLAB_BOOK_HTML", BOOK / "_build" / "html"))


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML / "intro.html").exists():
        pytest.skip(f"the book is not built ({HTML / 'intro.html'} is missing): run `make book` first")
    return HTML


@pytest.fixture(scope="session")
def chapter_pages(html_dir: Path) -> dict[str, Path]:
    """Every page the table of contents lists, as docname → built HTML file."""
    return {doc: html_dir / f"{doc}.html" for doc in toc_files(BOOK)}
