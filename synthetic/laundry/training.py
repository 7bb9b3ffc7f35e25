"""Resumable training of the Laundry List model: AdamW with a one-cycle schedule (10% warm-up).

Every ``checkpoint_every`` steps the model, optimiser, schedule, data generator state and step go to
``workdir/checkpoint.pt`` atomically, so a killed run resumes and ends bitwise equal to an
uninterrupted one (on CPU, at a fixed thread count).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.io import load_or_quarantine
from attnlab.synthetic.base import Progress
from attnlab.synthetic.laundry.config import LaundryConfig
from attnlab.synthetic.laundry.data import Stream, targets, training_batch
from attnlab.synthetic.laundry.model import LaundryModel, init_model, run_model
from attnlab.synthetic.models import save_checkpoint, stream_generator, torch_threads


def resolve_device(config: LaundryConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


_CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "data_generator", "step")


def _read_checkpoint(path: Path, *, device: torch.device) -> dict[str, Any]:
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or any(key not in state for key in _CHECKPOINT_KEYS):
        raise ValueError(f"expected a checkpoint with keys {_CHECKPOINT_KEYS}")
    return state


def train_model(config: LaundryConfig, seed: int, progress: Progress, workdir: Path | None) -> LaundryModel:
    """Train the model of ``(config, seed)``; checkpoint to and resume from ``workdir`` (if given).

    The initialisation comes from the seed's init stream and every batch from its training stream
    (:class:`~attnlab.synthetic.laundry.data.Stream`), so the seed reaches both.
    """
    device = resolve_device(config)
    with torch_threads(config.threads):
        model = init_model(config, seed).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
        )
        data_generator = stream_generator(seed, Stream.TRAIN)
        step = 0
        checkpoint = None if workdir is None else Path(workdir) / "checkpoint.pt"
        # An unreadable checkpoint (a killed write, a full disk) is moved aside and training restarts.
        state = None if checkpoint is None else load_or_quarantine(checkpoint, partial(_read_checkpoint, device=device))
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            data_generator.set_state(state["data_generator"])
            step = int(state["step"])
        model.train()
        while step < config.steps:
            batch = training_batch(config, data_generator)
            loss = nn.functional.cross_entropy(run_model(model, batch), targets(config, batch).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % config.checkpoint_every == 0 or step == config.steps:
                if checkpoint is not None:
                    save_checkpoint(
                        checkpoint,
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": schedule.state_dict(),
                            "data_generator": data_generator.get_state(),
                            "step": step,
                        },
                    )
                progress(0.85 * step / config.steps, f"step {step}/{config.steps} loss {loss.item():.3f}")
        model.eval()
    return model
