"""The ``attnlab`` command line (typer + rich).

Verbs defined here: ``forms``. The other verbs live next to the code they drive: ``verify`` and
``figure`` in :mod:`attnlab.theory.cli`, ``reproduce`` in :mod:`attnlab.synthetic.cli`, ``bench`` in
:mod:`attnlab.bench`, ``check`` in :mod:`attnlab.testing.cli`. Each such module exposes
``register(app)`` and is listed in ``_PLUGINS``.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from attnlab.console import wide_console

if TYPE_CHECKING:
    from attnlab.core import Form

app = typer.Typer(
    name="attnlab",
    help="Reference operators, theory claims, fast paths and synthetic tasks for attention.",
    no_args_is_help=True,
    add_completion=False,
)


console = wide_console()

#: Modules that add verbs: each defines ``register(app: typer.Typer) -> None``.
_PLUGINS: list[str] = [
    "attnlab.synthetic.cli",
    "attnlab.theory.cli",
    "attnlab.bench",
    "attnlab.testing.cli",
    "attnlab.book",
]


def _form_record(form: Form) -> dict[str, Any]:
    """Everything ``attnlab forms`` shows about ``form``, as plain JSON-ready data."""
    return {
        "name": form.name,
        "title": form.title,
        "order": form.order,
        "status": form.status,
        "equation": form.equation,
        "reference": f"{form.reference.__module__}:{form.reference.__name__}",
        "source": form.source.cite(),
        "note": form.note,
        "array_args": list(form.array_args),
        "invariants": [
            {"name": inv.name, "description": inv.description, "mutants": list(inv.mutants)} for inv in form.invariants
        ],
        "mutants": [{"name": m.name, "description": m.description} for m in form.mutants],
        "bad_inputs": len(form.bad_inputs()),
        "fast_paths": [
            {
                "name": path.name,
                "fn": path.fn,
                "kind": path.kind,
                "dtypes": list(path.dtypes),
                "devices": list(path.devices),
                "gradients": path.differentiable,
                "vjp": path.vjp,
                "tiles": list(path.tiles),
                "tolerance": {
                    "k": path.tolerance.k,
                    "floors": {d: path.tolerance.floor(d) for d in path.dtypes},
                    "reason": path.tolerance.reason,
                },
            }
            for path in form.fast_paths
        ],
        "peers": dict(form.peers),
        "bench": [{"label": case.label, "modes": list(case.modes)} for case in form.bench],
        "flop_convention": form.flop_convention,
    }


def _print_form(form: Form) -> None:
    record = _form_record(form)
    console.print(f"[bold]{form.name}[/bold]: {form.title} ({form.status})")
    console.print(f"  source: {record['source']}")
    console.print(f"  reference: {record['reference']}  arrays: {', '.join(form.array_args)}")
    console.print(f"  equation: {form.equation}", markup=False)
    if form.note:
        console.print(f"  note: {form.note}", markup=False)
    invariants = Table(title=f"{form.name}: invariants (each must catch its mutants)")
    for column in ("invariant", "what it checks", "mutants it must catch"):
        invariants.add_column(column)
    for inv in form.invariants:
        invariants.add_row(inv.name, inv.description, ", ".join(inv.mutants))
    console.print(invariants)
    paths = Table(title=f"{form.name}: fast paths")
    for column in ("path", "function", "dtypes", "devices", "gradients", "k", "floors", "tiles", "reason"):
        paths.add_column(column)
    for path in record["fast_paths"]:
        tolerance = path["tolerance"]
        paths.add_row(
            path["name"],
            path["fn"],
            "/".join(path["dtypes"]),
            "/".join(path["devices"]),
            "vjp" if path["vjp"] else ("autograd" if path["gradients"] else "-"),
            f"{tolerance['k']:g}",
            ", ".join(f"{d} {f:.0e}" for d, f in tolerance["floors"].items()),
            ", ".join(map(str, path["tiles"])) or "-",
            tolerance["reason"] or "-",
        )
    console.print(paths)
    console.print(
        f"  {len(form.mutants)} mutants, {record['bad_inputs']} bad inputs, "
        f"{len(form.bench)} benchmark cases, peers: {', '.join(form.peers) or '-'}"
    )


@app.command()
def forms(
    name: Annotated[str | None, typer.Argument(help="one form, shown in full (default: a table of all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the declarations as JSON on stdout")] = False,
) -> None:
    """List the attention forms: status, fast paths, invariants, mutants, bad inputs and source."""
    from attnlab.forms import all_forms, form_names, get_form

    if name is not None and name not in form_names():
        typer.echo(f"attnlab forms: unknown form {name!r}; expected one of: {', '.join(form_names())}", err=True)
        raise typer.Exit(2)
    selected = [get_form(name)] if name is not None else list(all_forms())
    if as_json:
        typer.echo(json.dumps([_form_record(form) for form in selected], indent=2))
        return
    if name is not None:
        _print_form(selected[0])
        return
    table = Table(title="attnlab forms")
    for column in (
        "form",
        "status",
        "reference",
        "fast paths",
        "gradients",
        "invariants",
        "mutants",
        "bad inputs",
        "source",
    ):
        table.add_column(column)
    for form in selected:
        paths = [f"{p.name} ({'/'.join(d for d in p.dtypes)})" for p in form.fast_paths]
        table.add_row(
            form.name,
            form.status,
            form.reference.__name__,
            ", ".join(paths) or "-",
            ", ".join(p.name for p in form.fast_paths if p.differentiable) or "-",
            str(len(form.invariants)),
            str(len(form.mutants)),
            str(len(form.bad_inputs())),
            form.source.cite(),
        )
    console.print(table)
    console.print("`attnlab forms NAME` shows one form in full.")


_plugins_registered = False


def build_app() -> typer.Typer:
    """The ``attnlab`` app with every plugin verb registered (idempotent)."""
    global _plugins_registered
    if not _plugins_registered:
        _plugins_registered = True
        for module in _PLUGINS:
            importlib.import_module(module).register(app)
    return app


def main() -> None:
    build_app()()
