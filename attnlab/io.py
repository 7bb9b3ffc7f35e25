"""Atomic file writes and figure saving shared by theory figures, benchmarks and synthetic tasks.

Every writer goes through a temporary file in the destination folder followed by ``os.replace``, so
a killed process never leaves a half-written JSON or image behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON (NumPy scalars/arrays converted)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default, allow_nan=True)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


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
