"""Atomic file writes, cache healing and figure saving shared by theory figures, benchmarks and synthetic
tasks.

Every writer goes through a hidden temporary file in the destination folder (``.<name>.<random>.tmp``)
followed by ``os.replace``, so a killed process never leaves a half-written JSON or image behind; what it
may leave is the temporary file, which :func:`remove_stale_temporaries` deletes on the next run.

A cached file that cannot be read back (truncated, empty, garbage) is *quarantined*: renamed to
``<name>.corrupt-<UTC timestamp>`` beside the original, with a one-line warning naming it on the
``attnlab`` logger, and the caller recomputes it (:func:`load_or_quarantine`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: Warnings about the cache (corrupt files moved aside, folders that cannot be written) go here.
cache_log = logging.getLogger("attnlab.cache")

TEMPORARY_SUFFIX = ".tmp"
CORRUPT_MARKER = ".corrupt-"


class CacheWriteError(OSError):
    """A cache file or folder cannot be written (read-only folder, missing permission, full disk)."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_text(payload: Any) -> str:
    """The exact text :func:`atomic_write_json` writes for ``payload`` (indented, key-sorted, NumPy
    scalars and arrays converted, trailing newline)."""
    return json.dumps(payload, indent=2, sort_keys=True, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON (NumPy scalars/arrays converted)."""
    return atomic_write_text(path, json_text(payload))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of an atomic write (hidden, ending in ``.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(TEMPORARY_SUFFIX)


def stale_temporaries(folder: Path, *, recursive: bool) -> list[Path]:
    """Temporary files of atomic writes under ``folder`` (only its own entries unless ``recursive``)."""
    if not folder.is_dir():
        return []
    candidates = folder.rglob(f".*{TEMPORARY_SUFFIX}") if recursive else folder.glob(f".*{TEMPORARY_SUFFIX}")
    return sorted(p for p in candidates if p.is_file() and is_temporary(p))


def remove_stale_temporaries(folder: Path, *, recursive: bool) -> list[Path]:
    """Delete the temporary files a killed writer left under ``folder``; returns the deleted paths.

    Call it only while no other process writes there (the synthetic runner holds the folder's lock).
    """
    removed = []
    for path in stale_temporaries(folder, recursive=recursive):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def one_line(text: object, limit: int = 160) -> str:
    """``text`` on one line (whitespace runs collapsed), cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def quarantine(path: Path, reason: str) -> Path:
    """Move the unreadable cache file ``path`` aside to ``<name>.corrupt-<timestamp>`` and say so in one
    line on the ``attnlab.cache`` logger. Returns the new path.

    Raises:
        CacheWriteError: the folder does not allow the rename (read-only cache).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}{CORRUPT_MARKER}{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}{CORRUPT_MARKER}{stamp}-{counter}")
    try:
        os.replace(path, target)
    except OSError as error:
        raise CacheWriteError(
            error.errno or errno.EACCES,
            f"corrupt cache file {path} ({one_line(reason)}) cannot be moved aside: {error.strerror or error}",
        ) from error
    cache_log.warning("corrupt cache file %s (%s): moved to %s, recomputing", path, one_line(reason), target.name)
    return target


def describe_error(error: BaseException) -> str:
    """``TypeName: message`` on one line, for quarantine reasons."""
    return one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def load_or_quarantine(path: Path, loader: Callable[[Path], T]) -> T | None:
    """``loader(path)``, or ``None`` when ``path`` does not exist or cannot be loaded.

    A file that exists but fails to load (``loader`` raises any :class:`Exception`: truncated, empty,
    garbage, wrong structure) is quarantined (see :func:`quarantine`) so the caller recomputes it and
    the next run does not trip over it again. Tasks load every file they cache through this.
    """
    if not path.exists():
        return None
    if path.stat().st_size == 0:
        quarantine(path, "empty file")
        return None
    try:
        return loader(path)
    except Exception as error:
        quarantine(path, describe_error(error))
        return None


def read_json_dict(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ValueError`` when the file holds anything else."""
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object, found {type(payload).__name__}")
    return payload


def save_figure(fig: Any, outdir: str | Path, name: str, data: Any | None = None) -> list[Path]:
    """Save a matplotlib figure as ``name.png`` and ``name.svg`` (+ ``name.json`` with its data).

    The figure is closed afterwards. Returns the written paths.
    """
    import io

    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    written: list[Path] = []
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight")
        written.append(atomic_write_bytes(outdir / f"{name}.{fmt}", buffer.getvalue()))
    plt.close(fig)
    if data is not None:
        written.append(atomic_write_json(outdir / f"{name}.json", data))
    return written
