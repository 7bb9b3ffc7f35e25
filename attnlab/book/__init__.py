"""The attnlab Jupyter Book: the ``attnlab book`` verb and the helpers its pages call.

* :mod:`attnlab.book.build` — fills the results cache, generates the registry pages, installs MathJax
  from npm and runs ``jupyter-book build -W -n --keep-going`` (offline);
* :mod:`attnlab.book.generate` — the pages derived from the registries, ``_toc.yml``, ``references.bib``;
* :mod:`attnlab.book.pages` — what the pages' code cells call (verdict table, invariants, parity,
  checks, benchmarks, task results);
* :mod:`attnlab.book.results` — where the cached results live and how missing ones are computed;
* :mod:`attnlab.book.reported` — each task paper's reported figures, beside the lab's.

Importing this package loads neither torch nor Jupyter Book.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``book`` verb to the ``attnlab`` CLI (the plugin hook of :mod:`attnlab.cli`)."""
    from attnlab.book.cli import register as add_book

    add_book(app)
