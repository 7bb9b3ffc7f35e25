"""Execute the book's notebooks side by side into the jupyter-cache that MyST-NB reads.

MyST-NB's ``cache`` mode executes notebooks one after another while Sphinx reads them. On a machine
with several cores ``attnlab book`` instead executes the pages whose outputs are missing from the
cache in parallel — together with the result jobs they do not depend on — and stores each executed
notebook under the same hash MyST-NB looks up (the code cells and the kernelspec), so Sphinx then only
reads cached outputs. A page that fails here is left out of the cache: Sphinx executes it again and
reports the failure as a build warning, which fails the ``-W`` build with the page and the traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: jupyter-cache's reader plugin for MyST Markdown notebooks (registered by MyST-NB).
MYST_READER = {"type": "plugin", "name": "myst_nb_md"}
#: Helpers whose output comes from the results cache: a page calling one waits for the result jobs.
RESULT_READERS = (
    "pages.claim_figure(",
    "pages.task_",
    "pages.criteria_table(",
    "pages.reported_table(",
    "pages.lab_notes(",
    "pages.cache_layout(",
    "results.task_outcome(",
)


def is_notebook(path: Path) -> bool:
    """A MyST Markdown notebook: a page with a ``kernelspec`` in its front matter."""
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


def reads_results(path: Path) -> bool:
    text = path.read_text()
    return any(reader in text for reader in RESULT_READERS)


@dataclass
class Executed:
    path: Path
    seconds: float
    error: str | None


class NotebookCache:
    """The book's jupyter-cache, guarded by a lock (jobs run in threads; SQLite is written from one at a time)."""

    def __init__(self, folder: Path) -> None:
        from jupyter_cache import get_cache

        folder.parent.mkdir(parents=True, exist_ok=True)
        self.cache = get_cache(str(folder))
        self.lock = threading.Lock()

    def stage(self, path: Path, *, force: bool = False) -> Any | None:
        """The notebook as MyST-NB will read it, or None when its outputs are cached and ``force`` is off.

        With ``force`` the cached outputs are removed first: if the execution then fails, Sphinx finds
        nothing stale to show and executes the page itself.
        """
        with self.lock:
            record = self.cache.add_nb_to_project(str(path), read_data=MYST_READER)
            notebook = self.cache.get_project_notebook(record.pk).nb
            try:
                cached = self.cache.match_cache_notebook(notebook)
            except KeyError:
                return notebook
            if not force:
                return None
            self.cache.remove_cache(cached.pk)
            return notebook

    def store(self, path: Path, notebook: Any, seconds: float) -> None:
        from jupyter_cache.base import CacheBundleIn

        with self.lock:
            bundle = CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds})
            self.cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)


def execute(cache: NotebookCache, path: Path, timeout: int, *, force: bool = False) -> Executed | None:
    """Execute ``path`` (in its own folder, like MyST-NB) into ``cache``; None when it was already cached."""
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = cache.stage(path, force=force)
    if notebook is None:
        return None
    result = single_nb_execution(notebook, cwd=str(path.parent), timeout=timeout, allow_errors=False)
    if result.err is not None:
        return Executed(path, result.time, f"{type(result.err).__name__}: {result.err}")
    cache.store(path, result.nb, result.time)
    return Executed(path, result.time, None)


def split_pages(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(notebooks that read no cached result, notebooks that do)."""
    notebooks = [p for p in paths if is_notebook(p)]
    return [p for p in notebooks if not reads_results(p)], [p for p in notebooks if reads_results(p)]
