"""``attnlab verify`` and ``attnlab figure``: run the claim registry's checks and write claim figures.

``verify`` recomputes every registered claim's evidence and compares the verdict it supports with the
recorded one; every row shows the claim's kind (``paper``, ``reading`` or ``derived``: whose statement
the verdict judges). It exits 1 when any differ or a check raises, 2 on a bad ``--family``/``--claim``.
``verify --mutants`` runs every registered mutant of the selected claims instead and exits 1 when one
survives (its check still returns the recorded verdict) or crashes.
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
                    "kind": "-",
                    "source": "",
                    "judges": "",
                    "reads": "",
                    "condition": "",
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


def _record(claim: Claim) -> dict[str, Any]:
    """The recorded side of a row: whose statement the verdict judges, and under what condition."""
    return {
        "id": claim.id,
        "family": claim.family,
        "kind": claim.kind,
        "source": claim.source.cite(),
        "judges": claim.judges,
        "reads": claim.reads,
        "condition": claim.condition,
    }


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
        **_record(claim),
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
    for column in ("family", "id", "kind", "recorded", "observed", "evidence", "s"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "green" if row["consistent"] else "bold red"
        table.add_row(
            escape(row["family"]),
            escape(row["id"]),
            escape(row["kind"]),
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


def _mutant_row(outcome: registry.MutantOutcome) -> dict[str, Any]:
    return {
        "id": outcome.claim.id,
        "family": outcome.claim.family,
        "kind": outcome.claim.kind,
        "mutant": outcome.mutant.name,
        "description": outcome.mutant.description,
        "verdict": outcome.claim.verdict,
        "observed": outcome.observed,
        "status": outcome.status,
        "killed": outcome.killed,
        "evidence": outcome.result.evidence if outcome.result is not None else outcome.error,
        "seconds": round(outcome.seconds, 4),
    }


def _print_mutant_table(rows: list[dict[str, Any]], *, full: bool) -> None:
    console = wide_console()
    table = Table(title=f"attnlab claim mutants ({'full' if full else 'quick'} checks)", show_lines=False)
    for column in ("id", "kind", "mutant", "recorded", "observed", "status", "s"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "green" if row["killed"] else "bold red"
        table.add_row(
            escape(row["id"]),
            escape(row["kind"]),
            escape(row["mutant"]),
            row["verdict"],
            escape(row["observed"]),
            f"[{style}]{escape(row['status'])}[/{style}]",
            f"{row['seconds']:.2f}",
        )
    console.print(table)
    alive = [f"{row['id']}:{row['mutant']}" for row in rows if not row["killed"]]
    claims = len({row["id"] for row in rows})
    total = sum(row["seconds"] for row in rows)
    killed = len(rows) - len(alive)
    summary = f"{len(rows)} mutants of {claims} claims, {killed} killed, {len(alive)} not ({total:.1f} s)"
    console.print(f"[bold red]{summary}: {', '.join(alive)}[/bold red]" if alive else f"[green]{summary}[/green]")


def verify(
    family: Annotated[str | None, typer.Option("--family", "-f", help="Only this claim family.")] = None,
    claim: Annotated[str | None, typer.Option("--claim", "-c", help="Only this claim id.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Run the longer full checks where a claim has one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of rows and nothing else.")] = False,
    mutants: Annotated[
        bool,
        typer.Option("--mutants", help="Run every registered mutant instead; exit 1 if one survives or crashes."),
    ] = False,
) -> None:
    """Run every registered claim's check and compare its observed verdict with the recorded one.

    With ``--mutants``: run each claim's deliberately wrong variants and report, per mutant, the
    verdict observed and whether the check caught it (killed) or not (survived / crashed).
    """
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
    if mutants:
        mutant_rows = [_mutant_row(o) for c in selected for o in registry.run_mutants(c, full=full)]
        import_rows = [{**f, "mutant": "-", "description": "", "status": "crashed", "killed": False} for f in failures]
        rows = import_rows + mutant_rows
        if as_json:
            typer.echo(json.dumps(rows, indent=2, allow_nan=False))
        else:
            _print_mutant_table(rows, full=full)
        if not all(row["killed"] for row in rows):
            raise typer.Exit(EXIT_INCONSISTENT)
        return
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
