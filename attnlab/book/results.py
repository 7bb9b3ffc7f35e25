"""The results the book reads, and how ``attnlab book`` fills the cache before any page runs.

Pages never train or sweep: they read

* ``<root>/<task>/<experiment-hash>/`` — a synthetic task's summary (``metrics.json``) and figures, as
  written by ``attnlab reproduce`` (:mod:`attnlab.synthetic.runner`);
* ``<root>/figures/`` — the claim figures (``attnlab figure``), with ``book-manifest.json`` naming the
  files each claim's figure function wrote;
* ``<root>/bench/bench-<mode>-float32.json`` — the CPU benchmark (``attnlab bench --output``);
* ``bench/results/*.json`` in the repository — GPU records kept in git.

``<root>`` is ``$ATTNLAB_RESULTS`` (``attnlab book`` sets it to an absolute path for the page kernels),
else ``results/`` in the current folder. :func:`prepare` computes whatever is missing — in quick mode
for ``attnlab book --quick`` — running independent jobs side by side on the machine's cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
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
    args = ["reproduce", name, "--workers", "1", "--out", str(root)] + (["--quick"] if quick else [])
    return Job(f"reproduce {name}{' --quick' if quick else ''}", lambda: _attnlab(*args, log=root / "book-logs" / f"{name}.log"))


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


def prepare(*, quick: bool, root: Path, jobs: int | None = None, echo: Callable[[str], None] = print) -> float:
    """Compute every missing result the book reads; returns the seconds spent.

    Task sweeps and claim figures run ``jobs`` at a time (default: the number of cores); the
    benchmark runs afterwards on an otherwise idle machine, since it times things.
    """
    start = time.perf_counter()
    parallel, alone = pending_jobs(quick=quick, root=root)
    workers = max(1, jobs or os.cpu_count() or 1)

    def timed(job: Job) -> str:
        began = time.perf_counter()
        job.run()
        return f"{job.name}: {time.perf_counter() - began:.0f} s"

    if parallel:
        echo(f"attnlab book: computing {', '.join(j.name for j in parallel)} ({workers} at a time)")
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            for line in pool.map(timed, parallel):
                echo(f"attnlab book: {line}")
    for job in alone:
        echo(f"attnlab book: computing {job.name}")
        echo(f"attnlab book: {timed(job)}")
    return time.perf_counter() - start


def inputs_digest(*, quick: bool, root: Path) -> dict[str, Any]:
    """What the pages' outputs depend on besides their own code: the lab's sources and the results read.

    ``attnlab book`` clears the execution cache when this changes, so a page is re-executed when the
    library or a result it shows changed, and only a page whose code changed otherwise.
    """
    import hashlib

    from attnlab.synthetic.registry import task_names

    def digest(paths: Sequence[Path]) -> str:
        h = hashlib.sha256()
        for path in sorted(paths):
            if path.is_file():
                h.update(str(path).encode())
                h.update(path.read_bytes())
        return h.hexdigest()[:16]

    repo = repository_root()
    roots = ["attnlab", "reference", "theory", "synthetic", "fastpath", "proofs_checks"]
    sources = [p for r in roots for p in (repo / r).rglob("*.py") if "__pycache__" not in p.parts]
    results = [experiment_dir(name, quick=quick, root=root) / "metrics.json" for name in task_names()]
    results += [bench_path(quick, root), root / "figures" / MANIFEST]
    results += [p for p, _ in gpu_records()]
    notes = sorted((repo / "book" / "tasks").glob("*_notes.md"))
    return {
        "mode": "quick" if quick else "full",
        "sources": digest(sources),
        "results": digest(results),
        "notes": digest(notes),
        "python": sys.version.split()[0],
    }


def same_inputs(path: Path, digest: dict[str, Any]) -> bool:
    return path.exists() and json.loads(path.read_text()) == digest
