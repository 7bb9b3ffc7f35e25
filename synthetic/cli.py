"""``attnlab reproduce TASK``: run, cache and plot a synthetic-task experiment.

Progress bars, warnings and errors go to stderr; with ``--json`` stdout carries only the summary JSON.
Every bad argument ends with one ``error: ...`` line and exit code 2; a missing cache for ``--replot``
or a results folder that cannot be written ends with one line and exit code 1; an interrupted run
(Ctrl-C, SIGTERM) keeps its finished runs, says so in one line and exits with 130 or 143.

A fully cached run reads the cache without writing, so ``--out`` may be a read-only folder (a shared
or archived cache). ``--replot`` always redraws, so on a read-only folder it stops with a one-line
error and writes nothing; copy the cache somewhere writable to redraw it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from attnlab.io import CacheWriteError, one_line
from attnlab.synthetic.registry import TaskUnavailableError, get_task, task_names
from attnlab.synthetic.runner import (
    CacheMissError,
    SchedulerUnavailableError,
    SweepArgumentError,
    SweepInterrupted,
    WorkerDiedError,
    validate_scheduler_address,
)
from attnlab.synthetic.runner import reproduce as run_reproduction

_DEFAULT_ROOT = "results"
_DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


def _fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` as one stderr line and exit with ``code``."""
    typer.echo(f"error: {one_line(message, limit=400)}", err=True)
    raise typer.Exit(code=code)


class OneLineErrorsCommand(typer.core.TyperCommand):
    """A command whose usage errors (bad option values, unknown options, a missing argument) are one
    ``error: ...`` line with exit code 2, instead of a usage block and a framed message."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as error:
            # Usage errors (click's UsageError and BadParameter, vendored by recent typer) carry exit code 2.
            format_message = getattr(error, "format_message", None)
            if getattr(error, "exit_code", None) == 2 and callable(format_message):
                _fail(str(format_message()), 2)
            raise


class _ConsoleLogHandler(logging.Handler):
    """Prints ``attnlab`` log records (cache healing, waits for other processes) as one stderr line each."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        self.console.print(f"{prefix}{one_line(record.getMessage(), limit=400)}", markup=False, highlight=False)


@contextmanager
def _log_to(console: Console) -> Iterator[None]:
    logger = logging.getLogger("attnlab")
    handler = _ConsoleLogHandler(console)
    previous = logger.level
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _results_root(out: str) -> Path:
    if not out.strip():
        _fail("--out: expected a folder path, got an empty string", 2)
    root = Path(out)
    if root.exists() and not root.is_dir():
        _fail(f"--out: {root} exists and is not a folder", 2)
    return root


class RichReporter:
    """Draws one bar for the sweep and one per running run (on stderr)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=False,
        )
        self.sweep: TaskID | None = None
        self.runs: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sweep is not None:
            self.progress.stop()

    def sweep_started(self, total: int, cached: int) -> None:
        # Started here, not on entry: an argument or cache error raised before the sweep starts then
        # prints its one line with no empty progress display around it.
        self.progress.start()
        self.sweep = self.progress.add_task("runs", total=total, completed=cached, note=f"{cached} cached")

    def run_progress(self, key: str, fraction: float, message: str) -> None:
        if key not in self.runs:
            self.runs[key] = self.progress.add_task(f"  {key}", total=100, note="")
        self.progress.update(self.runs[key], completed=round(100 * fraction), note=message)

    def run_finished(self, key: str) -> None:
        if key in self.runs:
            self.progress.remove_task(self.runs.pop(key))
        if self.sweep is not None:
            self.progress.advance(self.sweep)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return "-" if value is None else one_line(value, limit=40)


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    loss = summary.get("loss", {})
    if isinstance(loss, dict) and loss and all(isinstance(v, dict) for v in loss.values()):
        lengths = sorted({k for curve in loss.values() for k in curve}, key=lambda k: (len(k), k))
        table = Table(title=f"{summary.get('task', '')} loss")
        table.add_column("model")
        for length in lengths:
            table.add_column(length, justify="right")
        for model, curve in loss.items():
            table.add_row(model, *(f"{curve[k]:.4f}" if k in curve else "-" for k in lengths))
        console.print(table)
    criteria = summary.get("criteria", {})
    if isinstance(criteria, dict) and criteria:
        table = Table(title="reproduction criteria")
        for column in ("criterion", "measured", "threshold", "passed"):
            table.add_column(column)
        for name, item in criteria.items():
            # Tasks state a criterion as {measured, op, threshold: number} or {value, threshold: text or number}.
            measured = item.get("measured", item.get("value"))
            threshold = item.get("threshold")
            bound = f"{item['op']} {_cell(threshold)}" if "op" in item else _cell(threshold)
            table.add_row(name, _cell(measured), bound, "yes" if item.get("passed") else "NO")
        console.print(table)
    if "reproduced" in summary:
        console.print(f"reproduced: {'yes' if summary['reproduced'] else 'no'}")


def reproduce(
    task: Annotated[str, typer.Argument(help=f"the task: {' | '.join(task_names())}")],
    quick: Annotated[bool, typer.Option("--quick", help="the small, fast experiment")] = False,
    seeds: Annotated[
        int, typer.Option("--seeds", min=0, help="number of seeds (0: 1 with --quick, else the task's full_seeds)")
    ] = 0,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help=f"local process-pool size (1 = in-process; default {_DEFAULT_WORKERS})"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the summary JSON on stdout")] = False,
    replot: Annotated[bool, typer.Option("--replot", help="redraw figures from cached metrics, never train")] = False,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (tcp://host:port); excludes --workers"),
    ] = None,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="results root folder (may be read-only when fully cached)")
    ] = _DEFAULT_ROOT,
) -> None:
    """Run (or reuse from the cache) a synthetic-task experiment, then write its summary and figures
    under OUT/TASK/<hash>/.

    Finished runs are reused, interrupted ones resume, corrupt cache files are recomputed.
    Concurrent runs into one OUT share the work.
    A fully cached run only reads OUT, which may be read-only.
    --replot on a read-only OUT stops with an error and writes nothing."""
    try:
        task_obj = get_task(task)
    except TaskUnavailableError as error:
        _fail(str(error), 2)
    if scheduler is not None and workers is not None:
        _fail("--workers and --scheduler exclude each other: the Dask cluster sets the parallelism", 2)
    if scheduler is not None:
        try:
            validate_scheduler_address(scheduler)
        except SweepArgumentError as error:
            _fail(f"--{error}", 2)
    root = _results_root(out)
    seed_count = seeds or (1 if quick else task_obj.full_seeds)
    err = Console(stderr=True, soft_wrap=True)
    try:
        with _log_to(err), RichReporter(err) as reporter:
            outcome = run_reproduction(
                task_obj,
                root=root,
                quick=quick,
                seeds=list(range(seed_count)),
                workers=_DEFAULT_WORKERS if workers is None else workers,
                scheduler=scheduler,
                replot=replot,
                reporter=reporter,
            )
    except (SweepArgumentError, SchedulerUnavailableError) as error:
        _fail(str(error), 2)
    except (CacheMissError, CacheWriteError, WorkerDiedError) as error:
        _fail(str(error.strerror if isinstance(error, OSError) and error.strerror else error), 1)
    except SweepInterrupted as interrupted:
        typer.echo(str(interrupted), err=True)
        raise typer.Exit(code=128 + int(interrupted.signal_number)) from None
    if as_json:
        typer.echo(json.dumps(outcome.summary, sort_keys=True))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    _print_summary(console, outcome.summary)
    console.print(
        f"{outcome.executed} run(s) executed, {outcome.cached} reused from the cache; "
        f"results in {outcome.experiment_dir}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``reproduce`` verb to the ``attnlab`` CLI."""
    app.command(name="reproduce", cls=OneLineErrorsCommand)(reproduce)
