"""Cached, resumable sweeps of a synthetic :class:`~attnlab.synthetic.base.Task` over configs × seeds.

On-disk layout under ``root`` (``results/`` by default)::

    <task>/<config-hash>/config.json               the config (class name + fields)
    <task>/<config-hash>/seed-<s>/metrics.json     one finished (config, seed) run — the cache unit
    <task>/<config-hash>/seed-<s>/work/            the run's private checkpoint folder (resume)
    <task>/<config-hash>/metrics.json              all finished seeds of the config, keyed by seed
    <task>/<experiment-hash>/config.json           the experiment: quick flag, seeds, config hashes
    <task>/<experiment-hash>/metrics.json          the summary (what ``--json`` prints)
    <task>/<experiment-hash>/*.png|svg|json        the figures and their data

Every file is written atomically (temporary file, then ``os.replace``). A run whose
``metrics.json`` exists is never recomputed; an interrupted sweep therefore resumes with the missing
runs only, and a run interrupted mid-training resumes from the checkpoints in its ``work/`` folder.

Runs execute in-process (``workers <= 1``), on a local process pool (``workers > 1``; the ``spawn``
start method, so each worker imports torch afresh) or on a Dask distributed cluster given its scheduler
address. Metrics files are written by the calling process as results arrive, so every backend fills
the same cache.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import queue as queue_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from attnlab.io import atomic_write_json, read_json
from attnlab.synthetic.base import Progress, Task, config_hash, config_to_dict

Result = tuple[Any, int, dict[str, Any]]
RunFunction = Callable[[Any, int, Progress, Path], dict[str, Any]]


class CacheMissError(LookupError):
    """``--replot`` was asked for runs that have no cached metrics."""


class Reporter(Protocol):
    """Receives sweep progress (the CLI draws rich progress bars from it)."""

    def sweep_started(self, total: int, cached: int) -> None: ...

    def run_progress(self, key: str, fraction: float, message: str) -> None: ...

    def run_finished(self, key: str) -> None: ...


class SilentReporter:
    """A reporter that ignores every event."""

    def sweep_started(self, total: int, cached: int) -> None:
        pass

    def run_progress(self, key: str, fraction: float, message: str) -> None:
        pass

    def run_finished(self, key: str) -> None:
        pass


@dataclass(frozen=True)
class RunSpec:
    """One ``(config, seed)`` run and where its files live."""

    config: Any
    seed: int
    config_dir: Path

    @property
    def key(self) -> str:
        label = getattr(self.config, "name", type(self.config).__name__)
        return f"{label}[{self.config_dir.name[:6]}]/seed{self.seed}"

    @property
    def metrics_path(self) -> Path:
        return self.config_dir / f"seed-{self.seed}" / "metrics.json"

    @property
    def workdir(self) -> Path:
        return self.config_dir / f"seed-{self.seed}" / "work"


@dataclass
class SweepOutcome:
    """What :func:`reproduce` did: the results, the summary, the figures and the cache statistics."""

    task: str
    results: list[Result]
    summary: dict[str, Any]
    experiment_dir: Path
    figures: list[Path] = field(default_factory=list)
    executed: int = 0
    cached: int = 0


def experiment_hash(task_name: str, configs: Sequence[Any], seeds: Sequence[int], quick: bool) -> str:
    """12-hex-digit hash of an experiment: the task, its config hashes (in order), the seeds, quick."""
    hashes = [config_hash(c) for c in configs]
    payload = json.dumps({"task": task_name, "configs": hashes, "seeds": list(seeds), "quick": quick})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def plan(task: Task, configs: Sequence[Any], seeds: Sequence[int], root: Path) -> list[RunSpec]:
    """The runs of a sweep (config-major order) with their cache folders."""
    return [RunSpec(c, int(s), root / task.name / config_hash(c)) for c in configs for s in seeds]


def _validate_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values:
        raise ValueError("seeds must name at least one seed")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in values):
        raise ValueError(f"seeds must be non-negative integers, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds must be distinct, got {values}")
    return values


class _QueueProgress:
    """A picklable progress callback that forwards updates to the parent through a queue."""

    def __init__(self, channel: Any, key: str) -> None:
        self.channel, self.key = channel, key

    def __call__(self, fraction: float, message: str) -> None:
        self.channel.put((self.key, float(fraction), message))


def _execute(run: RunFunction, config: Any, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = run(config, seed, progress, workdir)
    if not isinstance(metrics, dict):
        raise TypeError(f"a task's run must return a dict of metrics, got {type(metrics).__name__}")
    return metrics


def _record(spec: RunSpec, metrics: dict[str, Any]) -> None:
    atomic_write_json(spec.metrics_path, metrics)


def _run_in_process(task: Task, pending: list[RunSpec], reporter: Reporter) -> None:
    for spec in pending:

        def progress(fraction: float, message: str, key: str = spec.key) -> None:
            reporter.run_progress(key, fraction, message)

        _record(spec, _execute(task.run, spec.config, spec.seed, progress, spec.workdir))
        reporter.run_finished(spec.key)


def _drain(channel: Any, reporter: Reporter) -> None:
    while True:
        try:
            key, fraction, message = channel.get_nowait()
        except (queue_module.Empty, EOFError, OSError):
            return
        reporter.run_progress(key, fraction, message)


def _run_on_pool(task: Task, pending: list[RunSpec], workers: int, reporter: Reporter) -> None:
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
    ):
        channel = manager.Queue()
        futures = {
            pool.submit(_execute, task.run, s.config, s.seed, _QueueProgress(channel, s.key), s.workdir): s
            for s in pending
        }
        try:
            remaining = set(futures)
            while remaining:
                done, remaining = cf.wait(remaining, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                _drain(channel, reporter)
                for future in done:
                    spec = futures[future]
                    _record(spec, future.result())
                    reporter.run_finished(spec.key)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_on_dask(task: Task, pending: list[RunSpec], address: str, reporter: Reporter) -> None:
    from distributed import Client, as_completed

    with Client(address) as client:
        futures = {
            client.submit(_execute, task.run, s.config, s.seed, _dask_progress, s.workdir, pure=False): s
            for s in pending
        }
        try:
            for future in as_completed(list(futures)):
                spec = futures[future]
                _record(spec, future.result())
                reporter.run_finished(spec.key)
        except BaseException:
            client.cancel(list(futures))
            raise


def _dask_progress(fraction: float, message: str) -> None:
    """Per-step progress stays on the Dask worker (the dashboard shows it); the sweep bar advances per run."""


def load_results(specs: Sequence[RunSpec]) -> list[Result]:
    """The cached ``(config, seed, metrics)`` of every run, in plan order."""
    missing = [s.key for s in specs if not s.metrics_path.exists()]
    if missing:
        raise CacheMissError(f"no cached metrics for {len(missing)} run(s): {', '.join(missing[:5])}")
    return [(s.config, s.seed, read_json(s.metrics_path)) for s in specs]


def _write_config_files(specs: Sequence[RunSpec]) -> None:
    for config_dir, config in {s.config_dir: s.config for s in specs}.items():
        path = config_dir / "config.json"
        if not path.exists():
            atomic_write_json(path, config_to_dict(config))


def _write_config_metrics(specs: Sequence[RunSpec]) -> None:
    for config_dir in {s.config_dir for s in specs}:
        seeds = {
            path.parent.name.removeprefix("seed-"): read_json(path)
            for path in sorted(config_dir.glob("seed-*/metrics.json"))
        }
        atomic_write_json(config_dir / "metrics.json", {"seeds": seeds})


def reproduce(
    task: Task,
    *,
    root: Path,
    quick: bool = False,
    seeds: Sequence[int] = (0,),
    workers: int = 1,
    scheduler: str | None = None,
    replot: bool = False,
    reporter: Reporter | None = None,
) -> SweepOutcome:
    """Run (or reuse) every ``(config, seed)`` of ``task.configs(quick)``, then summarise and plot.

    Args:
        task: the task to reproduce.
        root: the results root (``results/`` by default in the CLI).
        quick: use the task's quick experiment.
        seeds: the seeds, run for every config.
        workers: ``<= 1`` runs in this process; more uses a local process pool of that size.
        scheduler: a Dask scheduler address (``tcp://host:port``); overrides ``workers``.
        replot: never train; summarise and redraw from cached metrics (raises
            :class:`CacheMissError` if a run is missing).
        reporter: receives progress events.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    seed_list = _validate_seeds(seeds)
    reporter = reporter or SilentReporter()
    configs = task.configs(quick)
    if not configs:
        raise ValueError(f"task {task.name!r} declares no configs")
    specs = plan(task, configs, seed_list, Path(root))
    pending = [s for s in specs if not s.metrics_path.exists()]
    if replot and pending:
        raise CacheMissError(
            f"--replot needs cached metrics, but {len(pending)} of {len(specs)} run(s) of {task.name!r} are "
            f"missing (first: {pending[0].key}); run without --replot first"
        )
    _write_config_files(specs)
    reporter.sweep_started(len(specs), len(specs) - len(pending))
    if pending:
        try:
            if scheduler is not None:
                _run_on_dask(task, pending, scheduler, reporter)
            elif workers > 1 and len(pending) > 1:
                _run_on_pool(task, pending, min(workers, len(pending)), reporter)
            else:
                _run_in_process(task, pending, reporter)
        finally:
            _write_config_metrics(specs)
    results = load_results(specs)
    summary = task.summarize(results)
    experiment_dir = Path(root) / task.name / experiment_hash(task.name, configs, seed_list, quick)
    atomic_write_json(
        experiment_dir / "config.json",
        {"task": task.name, "quick": quick, "seeds": seed_list,
         "configs": {config_hash(c): config_to_dict(c) for c in configs}},
    )
    atomic_write_json(experiment_dir / "metrics.json", summary)
    figures = task.plot(results, summary, experiment_dir)
    return SweepOutcome(
        task=task.name,
        results=results,
        summary=summary,
        experiment_dir=experiment_dir,
        figures=list(figures),
        executed=len(pending),
        cached=len(specs) - len(pending),
    )
