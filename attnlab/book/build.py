"""``attnlab book``: fill the results cache, generate the registry pages, install MathJax, build the HTML.

The build is offline: MathJax 3 comes from the npm registry into ``book/_extra/mathjax/`` (a package
install, not a CDN link), and pages read only local results. ``jupyter-book build -W -n --keep-going``
turns every Sphinx warning — a broken reference, a missing image, an executed cell that raised or wrote
to stderr — into a failed build. Execution is cached by jupyter-cache; the cache is cleared when the
lab's sources or the results the pages read change (:func:`attnlab.book.results.inputs_digest`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attnlab.book import generate, results

#: The MathJax release installed from npm (3.x: ``tex-chtml.js`` with its fonts).
MATHJAX = "3.2.2"
INPUTS_FILE = ".attnlab-inputs.json"


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
    raise BookError(
        "no book sources (book/_config.yml) found; run from a clone of the repository or pass --source"
    )


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
    seconds: dict[str, float] = {}

    seconds["results"] = results.prepare(quick=quick, root=root, jobs=jobs, echo=echo)

    start = time.perf_counter()
    changed = generate.generate(book)
    seconds["generate"] = time.perf_counter() - start
    if changed:
        echo(f"attnlab book: {len(changed)} generated file(s) changed")

    start = time.perf_counter()
    install_mathjax(book, echo=echo)
    seconds["mathjax"] = time.perf_counter() - start

    build_dir = book / "_build"
    digest = results.inputs_digest(quick=quick, root=root)
    inputs = build_dir / INPUTS_FILE
    if not results.same_inputs(inputs, digest):
        cache = build_dir / ".jupyter_cache"
        if cache.exists():
            echo("attnlab book: the library or the results changed since the last build; re-executing every page")
            shutil.rmtree(cache)
        # Sphinx re-reads (and so re-executes) only sources it thinks changed: forget them all.
        for stale in ("jupyter_execute", ".doctrees"):
            shutil.rmtree(build_dir / stale, ignore_errors=True)
        # The execution cache now holds only outputs computed from these inputs, whatever the build's fate.
        build_dir.mkdir(exist_ok=True)
        inputs.write_text(json.dumps(digest, indent=1, sort_keys=True))

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
