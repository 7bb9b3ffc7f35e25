"""The rich console the command-line tables print to."""

from __future__ import annotations

import sys

from rich.console import Console


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 200 columns when output goes to a file or pipe
    (rich would otherwise fold long claim ids and evidence at 80 columns)."""
    return Console(width=None if sys.stdout.isatty() else 200)
