"""``attnlab book``: fill the results cache, generate the registry pages, install MathJax, build the HTML.

The build is offline: MathJax 3 comes from the npm registry into ``book/_extra/mathjax/`` (a package
install, not a CDN link), and pages read only local results. ``jupyter-book build -W -n --keep-going``
turns every Sphinx warning — a broken reference, a missing image, an executed cell that raised or wrote
to stderr — into a failed build.

Order of work, on ``jobs`` cores (default: all):

1. the CPU benchmark, alone (it times things);
2. side by side: the missing task sweeps and claim figures, and the pages that read no cached result;
3. side by side: the pages that read cached results;
4. Sphinx, which then finds every page's outputs in jupyter-cache.

A page is executed again when its code changed (jupyter-cache's own rule), when the lab's sources
changed, or — for a page that reads cached results — when those results changed; the digests are kept
in ``book/_build/.attnlab-inputs.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from attnlab.book import execute, generate, results

#: The MathJax release installed from npm (3.x: ``tex-chtml.js`` with its fonts).
MATHJAX = "3.2.2"
INPUTS_FILE = ".attnlab-inputs.json"
#: Seconds a notebook cell may run (the same limit as ``execute.timeout`` in ``book/_config.yml``).
CELL_TIMEOUT = 900


class BookError(RuntimeError):
    """The book could not be built (the message says what to do)."""


@dataclass(frozen=True)
class BuildResult:
    index: Path
    seconds: dict[str, float]


def install_mathjax(book: Path, version: str = MATHJAX, echo: Callable[[str], None] = print) -> Path:
    """``npm install mathjax@version`` into a temporary folder and copy its ``es5/`` build to ``_extra/mathjax``."""
    target = book / "_extra" / "mathjax"
    stamp = target / "VERSION"
    if stamp.exists() and stamp.read_text().strip() == version and (target / "tex-chtml.js").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise BookError("npm is needed once to install MathJax into book/_extra/mathjax (apt-get install npm)")
    echo(f"attnlab book: installing MathJax {version} from npm into {target}")
    with tempfile.TemporaryDirectory(prefix="attnlab-mathjax-") as tmp:
        command = [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", tmp, f"mathjax@{version}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BookError(f"`{' '.join(command)}` failed:\n{done.stderr[-2000:]}")
        source = Path(tmp) / "node_modules" / "mathjax" / "es5"
        if not (source / "tex-chtml.js").exists():
            raise BookError(f"mathjax@{version} from npm has no es5/tex-chtml.js")
        staging = target.with_name(".mathjax-staging")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        (staging / "VERSION").write_text(version + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)
    return target


def jupyter_book() -> list[str]:
    """The ``jupyter-book`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "jupyter-book"
    if script.exists():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed: pip install -e '.[book]'")
    return [found]


def locate_book(source: Path | None) -> Path:
    candidates = [source] if source is not None else [Path.cwd() / "book", results.repository_root() / "book"]
    for candidate in candidates:
        if candidate is not None and (candidate / "_config.yml").exists():
            return candidate.resolve()
    raise BookError("no book sources (book/_config.yml) found; run from a clone of the repository or pass --source")


class PageInputs:
    """Per-page digests of what a page's outputs depend on besides its code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digests: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def changed(self, page: Path, digest: str) -> bool:
        return self.digests.get(str(page)) != digest

    def record(self, page: Path, digest: str) -> None:
        self.digests[str(page)] = digest

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.digests, indent=1, sort_keys=True))


def page_jobs(
    book: Path, pages: Sequence[Path], cache: execute.NotebookCache, inputs: PageInputs, digest: str, failed: list[str]
) -> list[results.Job]:
    """One job per page: execute it into the cache (again, when its inputs changed)."""

    def job(page: Path) -> results.Job:
        def run() -> None:
            force = inputs.changed(page, digest)
            if force:
                os.utime(page)  # Sphinx re-reads a page only when its file is newer than its last read
            done = execute.execute(cache, page, CELL_TIMEOUT, force=force)
            if done is not None and done.error is not None:
                failed.append(f"{page.name}: {done.error.splitlines()[0] if done.error else ''}")
                return
            inputs.record(page, digest)

        return results.Job(f"page {page.relative_to(book)}", run)

    return [job(p) for p in pages]


def build(
    *,
    quick: bool,
    source: Path | None = None,
    results_root: Path | None = None,
    jobs: int | None = None,
    echo: Callable[[str], None] = print,
) -> BuildResult:
    """Build the book; returns the path of ``index.html`` and the seconds each stage took."""
    book = locate_book(source)
    root = (results_root or results.results_root()).resolve()
    os.environ[results.RESULTS_ENV] = str(root)
    os.environ[results.MODE_ENV] = "quick" if quick else "full"
    os.environ[generate.BOOK_ENV] = str(book)
    os.environ.setdefault("MPLBACKEND", "Agg")
    workers = max(1, jobs or os.cpu_count() or 1)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    changed = generate.generate(book)
    install_mathjax(book, echo=echo)
    seconds["generate"] = time.perf_counter() - start
    if changed:
        echo(f"attnlab book: {len(changed)} generated file(s) changed")

    parallel, alone = results.pending_jobs(quick=quick, root=root)
    seconds["benchmark"] = results.run_jobs(alone, 1, echo)

    build_dir = book / "_build"
    cache = execute.NotebookCache(build_dir / ".jupyter_cache")
    inputs = PageInputs(build_dir / INPUTS_FILE)
    independent, dependent = execute.split_pages([book / f"{doc}.md" for doc in generate.toc_files(book)])
    sources = results.sources_digest()
    failed: list[str] = []
    try:
        start = time.perf_counter()
        results.run_jobs(parallel + page_jobs(book, independent, cache, inputs, sources, failed), workers, echo)
        seconds["results and pages"] = time.perf_counter() - start
        start = time.perf_counter()
        both = f"{sources}-{results.results_digest(quick=quick, root=root)}"
        results.run_jobs(page_jobs(book, dependent, cache, inputs, both, failed), workers, echo)
        seconds["pages reading results"] = time.perf_counter() - start
    finally:
        inputs.save()
    if failed:
        echo(f"attnlab book: {len(failed)} page(s) failed to execute; Sphinx runs them again to report: {failed}")

    start = time.perf_counter()
    command = [*jupyter_book(), "build", str(book), "-W", "-n", "--keep-going"]
    echo(f"attnlab book: {' '.join(command)}")
    done = subprocess.run(command)
    seconds["jupyter-book"] = time.perf_counter() - start
    if done.returncode != 0:
        raise BookError(
            f"jupyter-book build failed (exit {done.returncode}); the warnings above say where "
            f"(execution logs: {build_dir / 'html' / 'reports'})"
        )
    index = build_dir / "html" / "index.html"
    if not index.exists():
        raise BookError(f"jupyter-book finished but wrote no {index}")
    return BuildResult(index, seconds)
