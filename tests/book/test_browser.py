"""The built book in a real browser: headless Chromium (Debian's package, driven by Playwright).

Opens the introduction, one claim chapter and one task chapter from the built files and checks what a
reader would see: MathJax typeset every formula (and reported no TeX error), every image loaded (a
non-zero natural width), no console error or uncaught exception was logged, and nothing was requested
from the network. Screenshots of the three pages are written to ``book/_build/screenshots/``.
Skipped, with the reason, where Playwright or a Chromium binary is not installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.book, pytest.mark.slow]

#: The pages opened: the introduction, a claim chapter and a task chapter.
PAGES = ("intro", "generated/theory/softmax", "tasks/icl")
#: Flags for a sandbox without a GPU, a display or a network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str | None:
    candidates = [os.environ.get("ATTNLAB_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (the book extra) drives the browser")
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=PAGES)
def opened(request: pytest.FixtureRequest, browser: Any, html_dir: Path) -> dict[str, Any]:
    """The page loaded, MathJax finished, images loaded; with what the browser logged on the way."""
    doc = request.param
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log: dict[str, list[str]] = {"console": [], "errors": [], "network": [], "failed": []}
    page.on("console", lambda m: log["console"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: log["errors"].append(str(exc)))
    page.on("requestfailed", lambda r: log["failed"].append(r.url))

    def only_files(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            log["network"].append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.goto((html_dir / f"{doc}.html").as_uri(), wait_until="load")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")
    # lazy images load only near the viewport: ask for all of them, then wait for each
    page.evaluate("() => document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=30_000)
    facts = page.evaluate(
        """() => ({
            math: document.querySelectorAll('article .math').length,
            typeset: document.querySelectorAll('article .math mjx-container').length,
            texErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
            images: [...document.querySelectorAll('article img')].map(i => [i.getAttribute('src'), i.naturalWidth]),
        })"""
    )
    shots = html_dir.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / f"{doc.replace('/', '_')}.png"))
    context.close()
    return {"doc": doc, "log": log, **facts}


def test_mathjax_typeset_every_formula(opened: dict[str, Any]) -> None:
    assert opened["math"] > 0, f"{opened['doc']}: no formula on the page"
    assert opened["typeset"] == opened["math"], (
        f"{opened['doc']}: MathJax typeset {opened['typeset']} of {opened['math']} formulas"
    )
    assert opened["texErrors"] == 0, f"{opened['doc']}: MathJax reported {opened['texErrors']} TeX errors"


def test_every_image_loaded(opened: dict[str, Any]) -> None:
    if opened["doc"] != "intro":
        assert opened["images"], f"{opened['doc']}: no image on the page"
    blank = [src for src, width in opened["images"] if width == 0]
    assert not blank, f"{opened['doc']}: images that did not load: {blank}"


def test_no_console_error_and_no_network(opened: dict[str, Any]) -> None:
    log = opened["log"]
    assert not log["errors"], f"{opened['doc']}: uncaught exceptions: {log['errors']}"
    assert not log["console"], f"{opened['doc']}: console errors: {log['console']}"
    assert not log["network"], f"{opened['doc']}: requests to the network: {log['network']}"
    assert not log["failed"], f"{opened['doc']}: requests that failed: {log['failed']}"
