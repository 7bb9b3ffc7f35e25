"""The ``attnlab`` command line (typer + rich).

Verbs defined here: ``forms``. The other verbs live next to the code they drive: ``verify`` and
``figure`` in :mod:`attnlab.theory.cli`, ``reproduce`` in :mod:`attnlab.synthetic.cli`, ``bench`` in
:mod:`attnlab.fastpath.bench`. Each such module exposes ``register(app)`` and is listed in ``_PLUGINS``.
"""

from __future__ import annotations

import importlib

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="attnlab",
    help="Reference operators, theory claims, fast paths and synthetic tasks for attention.",
    no_args_is_help=True,
    add_completion=False,
)


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 200 columns when output goes to a file or pipe
    (rich would otherwise fold long claim ids and evidence at 80 columns)."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 200)


console = wide_console()

#: Modules that add verbs: each defines ``register(app: typer.Typer) -> None``.
_PLUGINS: list[str] = ["attnlab.synthetic.cli", "attnlab.theory.cli", "attnlab.fastpath.bench"]


@app.command()
def forms() -> None:
    """List the registered attention forms with their fast paths and invariant counts."""
    from attnlab.registry import forms as registered

    table = Table(title="attnlab operator registry")
    for column in ("form", "reference", "fast paths", "gradients", "invariants", "bad inputs", "source"):
        table.add_column(column)
    for info in registered():
        table.add_row(
            info.name,
            info.reference.__name__,
            ", ".join(sorted(info.fast_paths)) or "-",
            ", ".join(sorted(name for name, path in info.fast_paths.items() if path.differentiable)) or "-",
            str(len(info.invariants)),
            str(len(info.bad_inputs())),
            info.source,
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
