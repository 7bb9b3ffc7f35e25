"""One Laundry List run (train, evaluate, analyse, intervene) and the experiment's configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnlab.synthetic.base import Progress, fingerprint
from attnlab.synthetic.laundry.analysis import (
    ablation_analysis,
    accuracy_tables,
    composition_analysis,
    mechanism_statistics,
)
from attnlab.synthetic.laundry.config import LaundryConfig, item_coded, positional, value_readout
from attnlab.synthetic.laundry.data import Prompts, Stream, build_test_set, training_batch
from attnlab.synthetic.laundry.intervention import intervene, top_directions
from attnlab.synthetic.laundry.model import init_model
from attnlab.synthetic.laundry.training import train_model
from attnlab.synthetic.models import stream_generator, torch_threads


def _prompts_fingerprint(*batches: Prompts) -> str:
    return fingerprint(*(t for b in batches for t in (b.tokens, b.answers, *(() if b.items is None else (b.items,)))))


def provenance(config: LaundryConfig, seed: int, data: dict[int, Prompts]) -> dict[str, str]:
    """Fingerprints of what the seed drew: initial weights, first training batch, evaluation prompts."""
    return {
        "init": fingerprint(*init_model(config, seed).state_dict().values()),
        "train_data": _prompts_fingerprint(training_batch(config, stream_generator(seed, Stream.TRAIN))),
        "eval_data": _prompts_fingerprint(*(data[n] for n in sorted(data))),
    }


def configs(quick: bool) -> list[LaundryConfig]:
    """The experiment: the positional design (the headline), the item-coded design and, in the full
    run, the value-readout variant.

    Quick: the positional design as in the full run (4000 steps) and the item-coded design at 2500
    steps on 512 evaluation prompts per length. Full: positional (4000 steps), item-coded (6000
    steps), value-readout (10 000 steps). One torch thread per run.
    """
    if quick:
        return [positional(), item_coded(steps=2500, eval_size=512, calibration_size=4096)]
    return [positional(), item_coded(), value_readout()]


def run(config: LaundryConfig, seed: int, progress: Progress, workdir: Path | None) -> dict[str, Any]:
    """Train the model of ``(config, seed)``, then measure everything the summary reports (JSON-ready)."""
    model = train_model(config, seed, progress, workdir)
    with torch_threads(config.threads):
        data = build_test_set(config, seed)
        n_max = config.max_length
        accuracy_by_length, accuracy_by_position = accuracy_tables(model, data)
        mechanism = {str(n): mechanism_statistics(model, prompts) for n, prompts in data.items()}
        progress(0.88, "composition analysis")
        composition = composition_analysis(model, seed)
        ablation = ablation_analysis(model, data[n_max], composition)
        progress(0.94, "intervention")
        inhibition_scores = {int(h): np.asarray(v) for h, v in ablation["inhibition_score_by_head"].items()}
        inhibition_channel = top_directions(model, inhibition_scores, config.channel_rank)
        intervention = intervene(model, config, seed, data, composition, inhibition_channel=inhibition_channel)
    progress(1.0, "done")
    at_max = accuracy_by_position[str(n_max)]
    return {
        "design": config.name,
        "accuracy_by_length": accuracy_by_length,
        "accuracy_by_position": accuracy_by_position,
        "position_spread_at_max_length": float(max(at_max) - min(at_max)),
        "mechanism": mechanism,
        "composition": composition,
        "ablation": ablation,
        "intervention": intervention,
        "provenance": provenance(config, seed, data),
    }
