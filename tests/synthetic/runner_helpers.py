"""Tasks for the runner tests, importable by name so pool workers and subprocesses can load them.

The test modules put this folder on ``sys.path`` (spawned pool workers inherit it; subprocesses get it
through ``PYTHONPATH``).

* :data:`FAKE_TASK` — a torch-free task whose runs take milliseconds (or as long as a test asks, through
  :data:`DELAYS_ENV`), checkpoint every step through :func:`attnlab.io.load_or_quarantine`, and log every
  call and plot to :data:`LOG_ENV`, so tests can count training calls across processes.
* :func:`mixed_task` — tiny real in-context-regression and OCR configs in one sweep, to check that seeds
  reach training through every backend.
* ``python -c "import runner_helpers; runner_helpers.main()" reproduce fake ...`` — the ``reproduce`` verb
  with the fake task registered, as a user would run it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnlab.io import atomic_write_json, atomic_write_text, load_or_quarantine, read_json, read_json_dict
from attnlab.synthetic.base import Progress, Task

#: Folder that receives one file per training call (``call-*.json``) and per plot (``plot-*.json``).
LOG_ENV = "ATTNLAB_FAKE_TASK_LOG"
#: JSON ``{"quick": [config fields...], "full": [...]}`` read by :data:`FAKE_TASK`'s ``configs``.
CONFIGS_ENV = "ATTNLAB_FAKE_TASK_CONFIGS"
#: JSON ``{label: seconds per step}``; runs whose label is absent do not sleep. Not part of the config,
#: so a rerun without delays hits the same cache entries.
DELAYS_ENV = "ATTNLAB_FAKE_TASK_DELAYS"

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class FakeConfig:
    """A fake run: ``steps`` deterministic draws of ``(label, seed)`` summed, one checkpoint per step;
    then it raises (``fail``) or kills its process (``crash``) if asked to."""

    label: str
    steps: int = 3
    fail: bool = False
    crash: bool = False

    @property
    def name(self) -> str:
        return self.label

    def build(self, seed: int) -> list[float]:
        return [random.Random(f"{self.label}/{seed}/{k}").random() for k in range(self.steps)]


def _log_event(kind: str, payload: dict[str, Any]) -> None:
    folder = os.environ.get(LOG_ENV)
    if folder:
        name = f"{kind}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"  # names sort by time
        atomic_write_json(Path(folder) / name, {**payload, "pid": os.getpid()})


def events(folder: Path, kind: str = "call") -> list[dict[str, Any]]:
    """The logged events of one kind (``call`` or ``plot``), oldest first."""
    return [read_json(p) for p in sorted(folder.glob(f"{kind}-*.json"))]


def run(config: FakeConfig, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    checkpoint = workdir / "checkpoint.json"
    state = load_or_quarantine(checkpoint, read_json_dict) or {"step": 0, "total": 0.0}
    step, total = int(state["step"]), float(state["total"])
    _log_event("call", {"label": config.label, "seed": seed, "start_step": step})
    delay = float(json.loads(os.environ.get(DELAYS_ENV, "{}")).get(config.label, 0.0))
    draws = config.build(seed)
    while step < config.steps:
        time.sleep(delay)
        total += draws[step]
        step += 1
        atomic_write_json(checkpoint, {"step": step, "total": total})
        progress(step / config.steps, f"step {step}")
    if config.fail:
        raise RuntimeError(f"{config.label} fails on purpose")
    if config.crash:
        os._exit(3)
    return {"label": config.label, "seed": seed, "total": total, "steps": config.steps}


def summarize(results: list[tuple[Any, int, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "task": "fake",
        "runs": len(results),
        "total": sum(m["total"] for _c, _s, m in results),
        "labels": sorted({m["label"] for _c, _s, m in results}),
    }


def plot(results: list[tuple[Any, int, dict[str, Any]]], summary: dict[str, Any], outdir: Path) -> list[Path]:
    _log_event("plot", {"runs": len(results)})
    bars = "".join(
        f'<rect x="{i * 12}" width="10" height="{m["total"] * 50:.3f}"/>' for i, (_c, _s, m) in enumerate(results)
    )
    return [
        atomic_write_text(outdir / "totals.svg", f'<svg xmlns="http://www.w3.org/2000/svg">{bars}</svg>\n'),
        atomic_write_json(outdir / "totals.json", {"totals": [m["total"] for _c, _s, m in results]}),
    ]


def make_task(quick: list[FakeConfig], full: list[FakeConfig] | None = None) -> Task:
    """The fake task with the given quick (and full) experiments."""
    full_configs = list(quick if full is None else full)

    def configs(is_quick: bool) -> list[FakeConfig]:
        return list(quick) if is_quick else full_configs

    return Task(name="fake", configs=configs, run=run, summarize=summarize, plot=plot)


def configs_env(quick: list[FakeConfig], full: list[FakeConfig] | None = None) -> str:
    """The :data:`CONFIGS_ENV` value for :data:`FAKE_TASK`."""
    return json.dumps({"quick": [asdict(c) for c in quick], "full": [asdict(c) for c in (full or quick)]})


def _configs_from_env(quick: bool) -> list[FakeConfig]:
    declared = json.loads(os.environ.get(CONFIGS_ENV, '{"quick": [{"label": "a"}], "full": [{"label": "a"}]}'))
    return [FakeConfig(**fields) for fields in declared["quick" if quick else "full"]]


#: The fake task as the registry sees it (configs from :data:`CONFIGS_ENV`).
FAKE_TASK = Task(name="fake", configs=_configs_from_env, run=run, summarize=summarize, plot=plot)


def main() -> None:
    """``reproduce`` with the fake task registered (the CLI's own parsing, messages and exit codes)."""
    import typer

    from attnlab.synthetic import registry
    from attnlab.synthetic.cli import register

    registry.TASKS["fake"] = "runner_helpers:FAKE_TASK"
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """attnlab (fake-task harness)."""

    register(app)
    app(sys.argv[1:], prog_name="attnlab")


def _watched_child(parent_pid: int) -> None:
    from attnlab.synthetic.runner import _die_with_parent

    _die_with_parent(parent_pid, kernel_signal=False)
    time.sleep(120)


def watchdog_parent() -> None:
    """Start a child that relies on the runner's watchdog alone, print its pid, then wait to be killed."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=_watched_child, args=(os.getpid(),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)


# ----------------------------------------------------------------------------- real tasks, tiny


def mixed_configs(quick: bool) -> list[Any]:
    """Two tiny in-context-regression configs (a trained softmax model, the closed-form baselines), a
    tiny OCR config with the seeded ``default`` initialisation and a tiny positional Laundry List model."""
    from dataclasses import replace

    from attnlab.synthetic import icl, ocr
    from attnlab.synthetic.laundry.config import positional

    small = [c for c in icl.smoke_configs(quick) if c.name in ("softmax_h2", "baselines")]
    tiny_ocr = ocr.OCRConfig(
        init="default", steps=20, eval_every=10, checkpoint_every=10, eval_per_subject=1, device="cpu"
    )
    tiny_laundry = positional(
        name="tiny-laundry",
        d_model=16,
        max_length=3,
        d_heads=(4, 4, 0),
        qk_widths=(4, 4, 2),
        steps=20,
        batch_size=16,
        eval_size=32,
        calibration_size=64,
        checkpoint_every=10,
        channel_rank=2,
    )
    return [*(replace(c, steps=20, eval_prompts=200) for c in small), tiny_ocr, tiny_laundry]


def mixed_run(config: Any, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    from attnlab.synthetic import icl, laundry, ocr
    from attnlab.synthetic.laundry.config import LaundryConfig

    if isinstance(config, icl.ICLConfig):
        return icl.run(config, seed, progress, workdir)
    if isinstance(config, LaundryConfig):
        return laundry.TASK.run(config, seed, progress, workdir)
    metrics = ocr.run(config, seed, progress, workdir)
    metrics.pop("runtime_s")  # wall time differs between runs; everything else must not
    return metrics


def mixed_summarize(results: list[tuple[Any, int, dict[str, Any]]]) -> dict[str, Any]:
    from attnlab.synthetic import icl, ocr

    icl_results = [r for r in results if isinstance(r[0], icl.ICLConfig)]
    ocr_results = [r for r in results if isinstance(r[0], ocr.OCRConfig)]
    laundry_runs = {(c.name, s): m["intervention"] for c, s, m in results if getattr(c, "name", "") == "tiny-laundry"}
    return {
        "icl": icl.summarize(icl_results),
        "ocr": ocr.summarize(ocr_results),
        "laundry": sorted(laundry_runs.items()),
    }


def no_plot(results: list[tuple[Any, int, dict[str, Any]]], summary: dict[str, Any], outdir: Path) -> list[Path]:
    return []


def mixed_task() -> Task:
    return Task(name="mixed", configs=mixed_configs, run=mixed_run, summarize=mixed_summarize, plot=no_plot)
