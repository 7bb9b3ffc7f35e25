"""Seeds reach training: each random stream a seed feeds (training data, initialisation) changes what a
run learns on its own, and the same seed reproduces every number.

Each test holds every stream but one at seed 0 and varies the remaining one: if that stream ignored
its seed, or training ignored that stream, both runs would be identical. The runner-level checks (the
same seeds through the serial, pool and Dask runners) are in ``test_runner.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from attnlab.synthetic import icl, ocr
from attnlab.synthetic.base import fingerprint, no_progress
from attnlab.synthetic.models import stream_generator

torch.set_num_threads(1)

ICL_TINY = icl.ICLConfig(
    model="softmax", heads=2, steps=30, batch=32, eval_prompts=200, eval_lengths=(10, 40), checkpoint_every=10
)
OCR_TINY = ocr.OCRConfig(init="default", steps=20, eval_every=10, checkpoint_every=10, eval_per_subject=1, device="cpu")

ICL_STREAMS = {"train": icl._TRAIN_STREAM, "init": icl._INIT_STREAM, "eval": icl._EVAL_STREAM, "tune": icl._TUNE_STREAM}


def _icl_streams_seeded_only(monkeypatch: pytest.MonkeyPatch, varying: str) -> None:
    """Make every ICL random stream but ``varying`` use seed 0 whatever the run's seed."""
    kept = ICL_STREAMS[varying]

    def only_one_stream_seeded(seed: int, stream: int) -> torch.Generator:
        return stream_generator(seed if stream == kept else 0, stream)

    monkeypatch.setattr(icl, "stream_generator", only_one_stream_seeded)


def _learned(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in ("loss", "train_loss_history", "kq", "ov")}


def test_icl_training_stream_alone_changes_what_is_learned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _icl_streams_seeded_only(monkeypatch, "train")
    first, second = (icl.run(ICL_TINY, seed, no_progress, tmp_path / f"s{seed}") for seed in (0, 1))
    assert first["provenance"]["init"] == second["provenance"]["init"]
    assert first["provenance"]["eval_data"] == second["provenance"]["eval_data"]
    assert first["provenance"]["train_data"] != second["provenance"]["train_data"]
    assert first["train_loss_history"] != second["train_loss_history"]
    assert first["kq"] != second["kq"]


def test_icl_initialisation_alone_changes_what_is_learned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _icl_streams_seeded_only(monkeypatch, "init")
    first, second = (icl.run(ICL_TINY, seed, no_progress, tmp_path / f"s{seed}") for seed in (0, 1))
    assert first["provenance"]["train_data"] == second["provenance"]["train_data"]
    assert first["provenance"]["init"] != second["provenance"]["init"]
    assert first["kq"] != second["kq"] and first["loss"] != second["loss"]


def test_icl_same_seed_same_run_and_provenance_matches_what_the_seed_draws(tmp_path: Path) -> None:
    first, again = (icl.run(ICL_TINY, 3, no_progress, tmp_path / name) for name in ("a", "b"))
    assert first == again
    data = ICL_TINY.build(3)
    batch = data.train_batch()  # the stream's first batch: what training consumes first
    assert first["provenance"]["train_data"] == fingerprint(batch.x, batch.y, batch.x_query, batch.y_query, batch.beta)
    assert first["provenance"]["init"] == fingerprint(
        *ICL_TINY.make_model(ICL_TINY.build(3).init_generator).state_dict().values()
    )
    other = icl.run(ICL_TINY, 4, no_progress, tmp_path / "c")
    assert all(first["provenance"][k] != other["provenance"][k] for k in first["provenance"])
    assert _learned(first) != _learned(other)


def test_icl_baselines_see_the_seeds_prompts(tmp_path: Path) -> None:
    baselines = replace(ICL_TINY, model="baselines")
    zero, again, one = (icl.run(baselines, s, no_progress, tmp_path / f"{i}") for i, s in enumerate((0, 0, 1)))
    assert zero == again
    assert zero["provenance"] != one["provenance"] and zero["loss"] != one["loss"]


def _ocr_seeds_only(monkeypatch: pytest.MonkeyPatch, varying: str) -> None:
    """Make every derived OCR seed but ``varying`` that of seed 0, whatever the run's seed."""
    derive: Callable[[int], ocr.DerivedSeeds] = ocr.DerivedSeeds.from_seed

    def only_one_seeded(seed: int) -> ocr.DerivedSeeds:
        base, own = derive(0), derive(seed)
        return dataclasses.replace(base, **{varying: getattr(own, varying)})

    monkeypatch.setattr(ocr.DerivedSeeds, "from_seed", staticmethod(only_one_seeded))


def _ocr_learned(metrics: dict[str, Any]) -> list[Any]:
    return [metrics["history"], metrics["w_ov_singular_values"], metrics["norms"]]


def test_ocr_batch_stream_alone_changes_what_is_learned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ocr_seeds_only(monkeypatch, "batches")
    first, second = (ocr.run(OCR_TINY, seed, no_progress, tmp_path / f"s{seed}") for seed in (0, 1))
    assert first["provenance"]["init"] == second["provenance"]["init"]
    assert first["provenance"]["eval_data"] == second["provenance"]["eval_data"]
    assert first["provenance"]["train_data"] != second["provenance"]["train_data"]
    assert _ocr_learned(first) != _ocr_learned(second)


def test_ocr_initialisation_alone_changes_what_is_learned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ocr_seeds_only(monkeypatch, "init")
    first, second = (ocr.run(OCR_TINY, seed, no_progress, tmp_path / f"s{seed}") for seed in (0, 1))
    assert first["provenance"]["train_data"] == second["provenance"]["train_data"]
    assert first["provenance"]["init"] != second["provenance"]["init"]
    assert _ocr_learned(first) != _ocr_learned(second)


def test_ocr_same_seed_same_run_different_seed_different_run(tmp_path: Path) -> None:
    first, again, other = (ocr.run(OCR_TINY, s, no_progress, tmp_path / f"{i}") for i, s in enumerate((5, 5, 6)))
    for metrics in (first, again, other):
        metrics.pop("runtime_s")
    assert first == again
    assert all(first["provenance"][k] != other["provenance"][k] for k in ("init", "train_data", "eval_data"))
    assert _ocr_learned(first) != _ocr_learned(other)


def test_ocr_identity_init_is_the_same_for_every_seed_by_design(tmp_path: Path) -> None:
    """The official initialisation is deterministic (1e-4 entries); the seed still changes the data."""
    identity = replace(OCR_TINY, init="identity", steps=10)
    zero, one = (ocr.run(identity, s, no_progress, tmp_path / f"{s}") for s in (0, 1))
    assert zero["provenance"]["init"] == one["provenance"]["init"]
    assert zero["provenance"]["train_data"] != one["provenance"]["train_data"]
    assert zero["history"] != one["history"]
