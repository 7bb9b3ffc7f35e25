"""``attnlab reproduce TASK``: run, cache and plot a synthetic-task experiment.

Progress bars go to stderr; with ``--json`` stdout carries only the summary JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from attnlab.synthetic.registry import TaskUnavailableError, get_task, task_names
from attnlab.synthetic.runner import CacheMissError
from attnlab.synthetic.runner import reproduce as run_reproduction

_DEFAULT_ROOT = Path("results")
_DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


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
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def sweep_started(self, total: int, cached: int) -> None:
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
            table.add_row(name, f"{item['measured']:.4g}", f"{item['op']} {item['threshold']:g}",
                          "yes" if item["passed"] else "NO")
        console.print(table)
    if "reproduced" in summary:
        console.print(f"reproduced: {'yes' if summary['reproduced'] else 'no'}")


def reproduce(
    task: Annotated[str, typer.Argument(help=f"the task: {' | '.join(task_names())}")],
    quick: Annotated[bool, typer.Option("--quick", help="the small, fast experiment")] = False,
    seeds: Annotated[
        int, typer.Option("--seeds", min=0, help="number of seeds (0: 1 with --quick, else 2)")
    ] = 0,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="local process-pool size (1 = in-process)")
    ] = _DEFAULT_WORKERS,
    as_json: Annotated[bool, typer.Option("--json", help="print only the summary JSON on stdout")] = False,
    replot: Annotated[
        bool, typer.Option("--replot", help="redraw figures from cached metrics, never train")
    ] = False,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address (tcp://host:port)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="results root folder")] = _DEFAULT_ROOT,
) -> None:
    """Run (or reuse from the cache) a synthetic-task experiment, then write its summary and figures
    under OUT/TASK/<hash>/."""
    err = Console(stderr=True)
    try:
        task_obj = get_task(task)
    except TaskUnavailableError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    seed_count = seeds or (1 if quick else 2)
    try:
        with RichReporter(err) as reporter:
            outcome = run_reproduction(
                task_obj,
                root=out,
                quick=quick,
                seeds=list(range(seed_count)),
                workers=workers,
                scheduler=scheduler,
                replot=replot,
                reporter=reporter,
            )
    except CacheMissError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from error
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
    app.command(name="reproduce")(reproduce)
