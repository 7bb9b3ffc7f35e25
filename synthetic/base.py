"""Shared interface of the synthetic tasks (zoology/dtsip style).

A task is a module-level :class:`Task` object. Its configs are frozen dataclasses whose
``build(seed)`` makes the data; an experiment is a plain list of configs; one *run* is one
``(config, seed)`` pair whose metrics are a JSON-serialisable dict. The runner
(:mod:`attnlab.synthetic.runner`) caches runs under ``results/<task>/<config-hash>/``, so a finished
run is reused and an interrupted sweep resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: progress(fraction_done in [0, 1], message) — called by long runs; may be a no-op.
Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores updates."""


class TaskConfig(Protocol):
    """A frozen dataclass describing one experimental setting."""

    def build(self, seed: int) -> Any: ...


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass, tagged with its class name."""
    return {"__class__": type(config).__name__, **dataclasses.asdict(config)}


def fingerprint(*arrays: Any) -> str:
    """16-hex-digit SHA-256 of arrays' dtypes, shapes and bytes (NumPy arrays or torch tensors).

    Runs record fingerprints of the data and initial weights they drew, so it can be checked from the
    cache alone that two seeds saw different data and the same seed the same data, whichever backend ran
    them.
    """
    digest = hashlib.sha256()
    for array in arrays:
        if hasattr(array, "detach"):
            array = array.detach().cpu().contiguous().numpy()
        values = np.ascontiguousarray(array)
        digest.update(f"{values.dtype.str}{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def config_hash(config: Any) -> str:
    """Stable 12-hex-digit hash of a config (sorted-key JSON of its fields)."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Task:
    """A synthetic task as the runner and the CLI see it.

    Attributes:
        name: ``icl``, ``ocr`` or ``laundry``.
        configs: ``configs(quick) -> list of configs`` (the experiment).
        run: ``run(config, seed, progress, workdir) -> metrics`` trains and evaluates one setting;
            ``workdir`` is a private folder for checkpoints so an interrupted run can resume.
        summarize: ``summarize(results) -> summary`` where ``results`` is a list of
            ``(config, seed, metrics)``; the summary is what ``--json`` prints.
        plot: ``plot(results, summary, outdir) -> files`` writes PNG + SVG figures.
        full_seeds: the number of seeds of a full run when the caller does not say (a quick run uses one).
    """

    name: str
    configs: Callable[[bool], list[Any]]
    run: Callable[[Any, int, Progress, Path], dict[str, Any]]
    summarize: Callable[[list[tuple[Any, int, dict[str, Any]]]], dict[str, Any]]
    plot: Callable[[list[tuple[Any, int, dict[str, Any]]], dict[str, Any], Path], list[Path]]
    full_seeds: int = 2
