"""The ``attnlab`` command line (typer + rich).

Verbs defined here: ``forms``. The other verbs live next to the code they drive: ``verify`` and
``figure`` in :mod:`attnlab.theory.cli`, ``reproduce`` in :mod:`attnlab.synthetic.cli`, ``bench`` in
:mod:`attnlab.bench`, ``check`` in :mod:`attnlab.testing.cli`. Each such module exposes
``register(app)`` and is listed in ``_PLUGINS``.
"""

from __future__ import annotations

import importlib

import typer
from rich.table import Table

from attnlab.console import wide_console

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


@app.command()
def forms() -> None:
    """List the attention forms: status, fast paths, invariants, mutants, bad inputs and source."""
    from attnlab.forms import all_forms

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
    for form in all_forms():
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
