"""``attnlab verify`` and ``attnlab figure``: run the claim registry's checks and write claim figures.

``verify`` recomputes every registered claim's evidence and compares the verdict it supports with the
recorded one; it exits 1 when any differ or a check raises, 2 on a bad ``--family``/``--claim``.
``figure`` writes each claim's figure (PNG + SVG + JSON) once, even when several claims share it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from attnlab.console import wide_console
from attnlab.theory import registry
from attnlab.theory.registry import Claim

DEFAULT_FIGURE_DIR = Path("results/figures")

#: Exit codes: 1 = a claim's observed verdict differs from the recorded one (or its check raised),
#: 2 = the request itself is wrong (unknown family or claim, nothing to do).
EXIT_INCONSISTENT = 1
EXIT_USAGE = 2


def _jsonable(value: Any) -> Any:
    """Strict-JSON form of check data: arrays to lists, NumPy scalars to Python, ±inf/NaN to strings."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _load_claims() -> tuple[list[Claim], list[dict[str, Any]]]:
    """All registered claims, plus an error row for each family module that fails to import.

    Importing module by module keeps one broken family from hiding every other family's verdicts.
    """
    failures: list[dict[str, Any]] = []
    for module in registry.FAMILY_MODULES:
        try:
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
        except Exception as exc:
            failures.append(
                {
                    "id": module,
                    "family": "(import)",
                    "verdict": "-",
                    "observed": "error",
                    "consistent": False,
                    "evidence": f"{type(exc).__name__}: {exc}",
                    "data": {},
                    "seconds": 0.0,
                }
            )
    if not failures:
        return registry.claims(), failures
    # registry.claims() would retry the failed import and raise; read what did register instead.
    return list(registry._CLAIMS.values()), failures


def _select(claims: list[Claim], family: str | None, claim_id: str | None) -> list[Claim]:
    known_families = set(registry.FAMILIES) | {c.family for c in claims}
    if family is not None and family not in known_families:
        raise _UsageError(f"--family: unknown family {family!r}; expected one of {sorted(known_families)}")
    selected = claims
    if family is not None:
        selected = [c for c in selected if c.family == family]
    if claim_id is not None:
        selected = [c for c in selected if c.id == claim_id]
        if not selected:
            where = f" in family {family!r}" if family is not None else ""
            ids = sorted(c.id for c in claims if family is None or c.family == family)
            close = difflib.get_close_matches(claim_id, ids, n=5, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else "`attnlab verify` lists every id"
            raise _UsageError(f"--claim: no claim with id {claim_id!r}{where}; {hint}")
    if not selected:
        raise _UsageError(f"--family: no claims are registered for family {family!r}")
    return selected


class _UsageError(Exception):
    pass


def _run_row(claim: Claim, *, full: bool) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        outcome = registry.run(claim, full=full)
    except Exception as exc:
        observed, evidence, data, consistent = "error", f"{type(exc).__name__}: {exc}", {}, False
    else:
        observed = outcome.result.verdict
        evidence, data, consistent = outcome.result.evidence, outcome.result.data, outcome.consistent
    return {
        "id": claim.id,
        "family": claim.family,
        "verdict": claim.verdict,
        "observed": observed,
        "consistent": consistent,
        "evidence": evidence,
        "data": _jsonable(data),
        "seconds": round(time.perf_counter() - start, 4),
    }


def _print_table(rows: list[dict[str, Any]], *, full: bool) -> None:
    console = wide_console()
    table = Table(title=f"attnlab claims ({'full' if full else 'quick'} checks)", show_lines=False)
    for column in ("family", "id", "recorded", "observed", "evidence", "s"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "green" if row["consistent"] else "bold red"
        table.add_row(
            escape(row["family"]),
            escape(row["id"]),
            row["verdict"],
            f"[{style}]{escape(row['observed'])}[/{style}]",
            escape(row["evidence"]),
            f"{row['seconds']:.2f}",
        )
    console.print(table)
    bad = [row["id"] for row in rows if not row["consistent"]]
    total = sum(row["seconds"] for row in rows)
    summary = f"{len(rows)} checks, {len(rows) - len(bad)} consistent, {len(bad)} not ({total:.1f} s)"
    console.print(f"[bold red]{summary}: {', '.join(bad)}[/bold red]" if bad else f"[green]{summary}[/green]")


def verify(
    family: Annotated[str | None, typer.Option("--family", "-f", help="Only this claim family.")] = None,
    claim: Annotated[str | None, typer.Option("--claim", "-c", help="Only this claim id.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Run the longer full checks where a claim has one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of rows and nothing else.")] = False,
) -> None:
    """Run every registered claim's check and compare its observed verdict with the recorded one."""
    claims, failures = _load_claims()
    try:
        selected = _select(claims, family, claim)
    except _UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if family is not None or claim is not None:
        # A filtered run reports only what was asked for; broken modules still get a warning.
        for failure in failures:
            typer.echo(f"warning: {failure['id']} failed to import: {failure['evidence']}", err=True)
        failures = []
    rows = failures + [_run_row(c, full=full) for c in selected]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, allow_nan=False))
    else:
        _print_table(rows, full=full)
    if not all(row["consistent"] for row in rows):
        raise typer.Exit(EXIT_INCONSISTENT)


def figure(
    claim_id: Annotated[str | None, typer.Argument(help="Claim id whose figure to write.")] = None,
    all_figures: Annotated[bool, typer.Option("--all", help="Write every claim figure.")] = False,
    family: Annotated[str | None, typer.Option("--family", "-f", help="With --all: only this family.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = DEFAULT_FIGURE_DIR,
) -> None:
    """Write claim figures as PNG + SVG + JSON; figures shared by several claims are written once."""
    if (claim_id is None) == (not all_figures):
        typer.echo("error: give exactly one of a claim ID or --all", err=True)
        raise typer.Exit(EXIT_USAGE)
    claims, _ = _load_claims()
    try:
        selected = _select(claims, family, claim_id)
    except _UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    with_figure = [c for c in selected if c.figure is not None]
    if not with_figure:
        typer.echo(f"error: no figure for {claim_id or family or 'any claim'}", err=True)
        raise typer.Exit(EXIT_USAGE)
    written_by: dict[int, list[Path]] = {}
    failed = False
    for claim in with_figure:
        assert claim.figure is not None
        key = id(claim.figure)
        if key in written_by:
            continue
        try:
            written_by[key] = claim.figure(out)
        except Exception as exc:
            written_by[key] = []
            failed = True
            typer.echo(f"error: figure of {claim.id} failed: {type(exc).__name__}: {exc}", err=True)
            continue
        for path in written_by[key]:
            typer.echo(str(path))
    if failed:
        raise typer.Exit(EXIT_INCONSISTENT)


def register(app: typer.Typer) -> None:
    """Add the ``verify`` and ``figure`` verbs to the ``attnlab`` command line."""
    app.command("verify")(verify)
    app.command("figure")(figure)
