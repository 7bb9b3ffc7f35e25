"""The results the book reads, and how ``attnlab book`` fills the cache before any page runs.

Pages never train or sweep: they read

* ``<root>/<task>/<experiment-hash>/`` — a synthetic task's summary (``metrics.json``) and figures, as
  written by ``attnlab reproduce`` (:mod:`attnlab.synthetic.runner`);
* ``<root>/figures/`` — the claim figures (``attnlab figure``), with ``book-manifest.json`` naming the
  files each claim's figure function wrote;
* ``<root>/bench/bench-<mode>-float32.json`` — the CPU benchmark (``attnlab bench --output``);
* ``bench/results/*.json`` in the repository — GPU records kept in git.

``<root>`` is ``$ATTNLAB_RESULTS`` (``attnlab book`` sets it to an absolute path for the page kernels),
else ``results/`` in the current folder. :func:`pending_jobs` lists what is missing — in quick mode for
``attnlab book --quick`` — and :func:`run_jobs` runs independent jobs side by side on the cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlab.io import atomic_write_json, read_json

#: Environment variables ``attnlab book`` sets for the page kernels.
RESULTS_ENV = "ATTNLAB_RESULTS"
MODE_ENV = "ATTNLAB_BOOK_MODE"
#: Name of the claim-figure manifest under ``<root>/figures``.
MANIFEST = "book-manifest.json"
#: The CPU benchmark's dtype in the book.
BENCH_DTYPE = "float32"


def results_root() -> Path:
    """The results cache root (absolute)."""
    return Path(os.environ.get(RESULTS_ENV, "results")).resolve()


def book_mode() -> str:
    """``quick`` or ``full``: which experiments the book shows (``attnlab book --quick`` sets ``quick``)."""
    mode = os.environ.get(MODE_ENV, "quick")
    if mode not in ("quick", "full"):
        raise ValueError(f"{MODE_ENV}: expected 'quick' or 'full', got {mode!r}")
    return mode


def repository_root() -> Path:
    """The checkout the package was installed from in editable mode (holds ``book/`` and ``bench/``)."""
    return Path(__file__).resolve().parents[2]


def task_seeds(quick: bool) -> list[int]:
    """The seeds ``attnlab reproduce`` uses by default: one with ``--quick``, two otherwise."""
    return [0] if quick else [0, 1]


def experiment_dir(task_name: str, *, quick: bool, root: Path | None = None) -> Path:
    """Where ``attnlab reproduce <task> [--quick]`` writes the summary and figures of its default seeds."""
    from attnlab.synthetic.registry import get_task
    from attnlab.synthetic.runner import experiment_hash

    task = get_task(task_name)
    digest = experiment_hash(task.name, task.configs(quick), task_seeds(quick), quick)
    return (root or results_root()) / task.name / digest


def figure_files(folder: Path) -> list[Path]:
    """The figures in ``folder``: one per stem, SVG where there is one, else PNG, sorted by name."""
    stems: dict[str, Path] = {}
    for path in sorted(folder.glob("*.png")) + sorted(folder.glob("*.svg")):
        if path.stat().st_size > 0 and (path.suffix == ".svg" or path.stem not in stems):
            stems[path.stem] = path
    return [stems[stem] for stem in sorted(stems)]


def task_outcome(task_name: str, *, quick: bool | None = None) -> tuple[dict[str, Any], list[Path], Path]:
    """A task's cached summary, its figures and its experiment folder.

    Raises ``FileNotFoundError`` naming the command that fills the cache: a page never trains.
    """
    quick = book_mode() == "quick" if quick is None else quick
    folder = experiment_dir(task_name, quick=quick)
    summary_path = folder / "metrics.json"
    if not summary_path.exists():
        flag = " --quick" if quick else ""
        raise FileNotFoundError(
            f"no cached results for task {task_name!r} in {folder}; run `attnlab reproduce {task_name}{flag}` "
            f"or `attnlab book{flag}` (which fills the cache before building)"
        )
    return read_json(summary_path), figure_files(folder), folder


def bench_path(quick: bool | None = None, root: Path | None = None) -> Path:
    quick = book_mode() == "quick" if quick is None else quick
    return (root or results_root()) / "bench" / f"bench-{'quick' if quick else 'full'}-{BENCH_DTYPE}.json"


def cpu_bench(quick: bool | None = None) -> dict[str, Any]:
    """The cached CPU benchmark (``{"meta", "records", "scaling"}``)."""
    path = bench_path(quick)
    if not path.exists():
        raise FileNotFoundError(f"no CPU benchmark at {path}; run `attnlab book` or `attnlab bench --output {path}`")
    return read_json(path)


def gpu_records(folder: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every GPU benchmark file kept in ``bench/results/`` (``{"meta", "records"}`` each)."""
    folder = folder or repository_root() / "bench" / "results"
    files = []
    for path in sorted(folder.glob("*.json")):
        payload = read_json(path)
        if isinstance(payload, dict) and isinstance(payload.get("records"), list):
            files.append((path, payload))
    return files


def claim_figures(claim_id: str, root: Path | None = None) -> list[Path]:
    """The figure files of a claim, from the manifest ``attnlab book`` writes (empty if it has none)."""
    folder = (root or results_root()) / "figures"
    manifest = folder / MANIFEST
    if not manifest.exists():
        return []
    names = read_json(manifest).get(claim_id, [])
    return figure_files_named(folder, names)


def figure_files_named(folder: Path, names: Sequence[str]) -> list[Path]:
    stems = {Path(name).stem for name in names if Path(name).suffix in (".png", ".svg")}
    return [path for path in figure_files(folder) if path.stem in stems]


# ------------------------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class Job:
    """One step of :func:`prepare`: a name and what to run."""

    name: str
    run: Callable[[], None]


def _attnlab(*args: str, log: Path) -> None:
    """Run ``python -m attnlab ARGS`` with its output in ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        code = subprocess.call([sys.executable, "-m", "attnlab", *args], stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"`attnlab {' '.join(args)}` exited {code}; last lines of {log}:\n{tail}")


def _task_job(name: str, quick: bool, root: Path) -> Job | None:
    folder = experiment_dir(name, quick=quick, root=root)
    if (folder / "metrics.json").exists() and figure_files(folder):
        return None
    # --json: the summary goes to the log as JSON (the table view does not know every task's criteria)
    args = ["reproduce", name, "--workers", "1", "--out", str(root), "--json"] + (["--quick"] if quick else [])
    return Job(
        f"reproduce {name}{' --quick' if quick else ''}",
        lambda: _attnlab(*args, log=root / "book-logs" / f"{name}.log"),
    )


def _claim_figure_job(root: Path) -> Job | None:
    from attnlab.theory import registry

    folder = root / "figures"
    manifest_path = folder / MANIFEST
    manifest: dict[str, list[str]] = read_json(manifest_path) if manifest_path.exists() else {}

    def complete(claim_id: str) -> bool:
        return claim_id in manifest and all((folder / name).exists() for name in manifest[claim_id])

    missing = [c for c in registry.claims() if c.figure is not None and not complete(c.id)]
    if not missing:
        return None

    def run() -> None:
        written: dict[int, list[str]] = {}
        for claim in missing:
            assert claim.figure is not None
            key = id(claim.figure)
            if key not in written:
                written[key] = [Path(p).name for p in claim.figure(folder)]
            manifest[claim.id] = written[key]
        atomic_write_json(manifest_path, manifest)

    return Job(f"claim figures ({len(missing)} claims)", run)


def _bench_job(quick: bool, root: Path) -> Job | None:
    from attnlab.bench import cases

    path = bench_path(quick, root)
    mode = "quick" if quick else "full"
    wanted = {form.name for form, _ in cases(mode)}
    if path.exists():
        have = {r.get("form") for r in read_json(path).get("records", [])}
        if wanted <= have:
            return None
    args = ["bench", "--output", str(path), "--dtype", BENCH_DTYPE] + (["--quick"] if quick else [])
    return Job(f"bench{' --quick' if quick else ''}", lambda: _attnlab(*args, log=root / "book-logs" / "bench.log"))


def pending_jobs(*, quick: bool, root: Path) -> tuple[list[Job], list[Job]]:
    """What is missing from the cache: (jobs that may run side by side, timing jobs to run alone)."""
    from attnlab.synthetic.registry import task_names

    parallel = [job for name in task_names() if (job := _task_job(name, quick, root)) is not None]
    figures = _claim_figure_job(root)
    if figures is not None:
        parallel.append(figures)
    alone = [job for job in [_bench_job(quick, root)] if job is not None]
    return parallel, alone


def run_jobs(jobs: Sequence[Job], workers: int, echo: Callable[[str], None] = print) -> float:
    """Run ``jobs`` ``workers`` at a time (threads; the heavy ones start subprocesses); returns the seconds.

    Every job runs even when another fails; the first failure is raised at the end.
    """
    if not jobs:
        return 0.0
    start = time.perf_counter()
    failures: list[BaseException] = []

    def timed(job: Job) -> None:
        began = time.perf_counter()
        try:
            job.run()
        except Exception as exc:
            failures.append(exc)
            echo(f"attnlab book: {job.name} failed: {exc}")
            return
        echo(f"attnlab book: {job.name}: {time.perf_counter() - began:.0f} s")

    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(timed, jobs))
    if failures:
        raise failures[0]
    return time.perf_counter() - start


def _digest(paths: Sequence[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for path in sorted(paths):
        if path.is_file():
            h.update(str(path).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def sources_digest() -> str:
    """A digest of the lab's Python sources: every page's outputs depend on them."""
    repo = repository_root()
    roots = ["attnlab", "reference", "theory", "synthetic", "fastpath", "proofs_checks"]
    return _digest([p for r in roots for p in (repo / r).rglob("*.py") if "__pycache__" not in p.parts])


def results_digest(*, quick: bool, root: Path) -> str:
    """A digest of the cached results the pages read (summaries, benchmark, figure manifest, GPU
    records, lab notes) and of the mode; computed after the result jobs have run."""
    from attnlab.synthetic.registry import task_names

    files = [experiment_dir(name, quick=quick, root=root) / "metrics.json" for name in task_names()]
    files += [bench_path(quick, root), root / "figures" / MANIFEST]
    files += [p for p, _ in gpu_records()]
    from attnlab.book.generate import book_dir

    files += sorted((book_dir() / "tasks").glob("*_notes.md"))
    return f"{'quick' if quick else 'full'}-{_digest(files)}"
