"""``attnlab book [--quick] [--open]``: build the Jupyter Book offline and print the path of its index page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``book`` verb to the ``attnlab`` CLI."""

    @app.command("book")
    def book(
        quick: Annotated[
            bool, typer.Option("--quick", help="Show quick-mode task results (computed in minutes when missing).")
        ] = False,
        open_: Annotated[bool, typer.Option("--open", help="Open the built index page in a browser.")] = False,
        source: Annotated[Path | None, typer.Option("--source", help="The book's folder (default: ./book).")] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Results cache root (default: $ATTNLAB_RESULTS or ./results).")
        ] = None,
        jobs: Annotated[
            int | None, typer.Option("--jobs", min=1, help="Result jobs run side by side (default: the cores).")
        ] = None,
    ) -> None:
        """Build the book: fill the results cache (never inside a page), generate the registry pages, install
        MathJax from npm, run `jupyter-book build -W -n --keep-going`. Without --quick the full task
        experiments are computed where missing, which takes hours on a CPU."""
        from attnlab.book.build import BookError, build

        try:
            result = build(quick=quick, source=source, results_root=out, jobs=jobs, echo=typer.echo)
        except BookError as exc:
            typer.echo(f"attnlab book: {exc}", err=True)
            raise typer.Exit(1) from None
        timing = ", ".join(f"{stage} {secs:.0f} s" for stage, secs in result.seconds.items())
        typer.echo(f"attnlab book: built in {sum(result.seconds.values()):.0f} s ({timing})")
        typer.echo(str(result.index))
        if open_:
            import webbrowser

            webbrowser.open(result.index.as_uri())
