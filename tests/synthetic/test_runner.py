"""The synthetic-task runner: cache layout, atomic writes, reuse, resume, replot, pool and Dask backends."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from attnlab.io import read_json
from attnlab.synthetic import icl
from attnlab.synthetic.base import Progress, Task, config_hash
from attnlab.synthetic.registry import TaskUnavailableError, get_task
from attnlab.synthetic.runner import CacheMissError, experiment_hash, plan, reproduce

torch.set_num_threads(1)


@dataclass(frozen=True)
class ToyConfig:
    scale: float

    def build(self, seed: int) -> float:
        return self.scale * (seed + 1)

    @property
    def name(self) -> str:
        return f"scale{self.scale:g}"


class ToyTask:
    """A task whose run records every call and can be told to fail on the n-th call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[tuple[float, int]] = []
        self.plots = 0
        self.fail_on_call = fail_on_call

    def configs(self, quick: bool) -> list[ToyConfig]:
        return [ToyConfig(1.0), ToyConfig(2.0)] if quick else [ToyConfig(1.0), ToyConfig(2.0), ToyConfig(3.0)]

    def run(self, config: ToyConfig, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
        self.calls.append((config.scale, seed))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        progress(1.0, "done")
        return {"value": config.build(seed), "workdir_exists": workdir.is_dir()}

    def summarize(self, results: list[tuple[Any, int, dict[str, Any]]]) -> dict[str, Any]:
        return {"task": "toy", "total": sum(m["value"] for _c, _s, m in results), "runs": len(results)}

    def plot(self, results: list[tuple[Any, int, dict[str, Any]]], summary: dict[str, Any], outdir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from attnlab.io import save_figure

        self.plots += 1
        fig, ax = plt.subplots()
        ax.plot([m["value"] for _c, _s, m in results])
        return save_figure(fig, outdir, "values")

    def as_task(self) -> Task:
        return Task(name="toy", configs=self.configs, run=self.run, summarize=self.summarize, plot=self.plot)


def test_sweep_writes_the_cache_layout_atomically(tmp_path: Path) -> None:
    toy = ToyTask()
    outcome = reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0, 1])
    assert outcome.executed == 4 and outcome.cached == 0
    assert outcome.summary == {"task": "toy", "total": 1 + 2 + 2 + 4, "runs": 4}
    for config in toy.configs(True):
        folder = tmp_path / "toy" / config_hash(config)
        assert read_json(folder / "config.json") == {"__class__": "ToyConfig", "scale": config.scale}
        assert set(read_json(folder / "metrics.json")["seeds"]) == {"0", "1"}
        assert read_json(folder / "seed-1" / "metrics.json")["value"] == config.build(1)
        assert read_json(folder / "seed-1" / "metrics.json")["workdir_exists"]
    experiment = tmp_path / "toy" / experiment_hash("toy", toy.configs(True), [0, 1], True)
    assert outcome.experiment_dir == experiment
    assert read_json(experiment / "metrics.json") == outcome.summary
    assert {p.name for p in outcome.figures} == {"values.png", "values.svg"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_unserialisable_metrics_leave_no_partial_file(tmp_path: Path) -> None:
    def bad_run(config: ToyConfig, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
        return {"value": object()}

    toy = ToyTask()
    task = Task(name="toy", configs=toy.configs, run=bad_run, summarize=toy.summarize, plot=toy.plot)
    with pytest.raises(TypeError, match="JSON"):
        reproduce(task, root=tmp_path, quick=True, seeds=[0])
    assert not list(tmp_path.rglob("seed-0/metrics.json"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_finished_runs_are_reused(tmp_path: Path) -> None:
    toy = ToyTask()
    first = reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0, 1])
    calls = len(toy.calls)
    second = reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0, 1])
    assert len(toy.calls) == calls and second.executed == 0 and second.cached == 4
    assert second.summary == first.summary
    # A larger experiment reuses the overlapping runs and runs only the new ones.
    third = reproduce(toy.as_task(), root=tmp_path, quick=False, seeds=[0, 1, 2])
    assert third.executed == 9 - 4 and sorted(toy.calls[calls:]) == sorted(
        {(s, d) for s in (1.0, 2.0, 3.0) for d in (0, 1, 2)} - {(s, d) for s in (1.0, 2.0) for d in (0, 1)}
    )


def test_interrupted_sweep_resumes_with_the_missing_runs_only(tmp_path: Path) -> None:
    toy = ToyTask(fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0, 1])
    finished = toy.calls[:2]
    toy.fail_on_call = None
    toy.calls.clear()
    outcome = reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0, 1])
    assert outcome.executed == 2 and outcome.cached == 2
    assert set(toy.calls).isdisjoint(finished) and len(toy.calls) == 2
    assert outcome.summary["total"] == 1 + 2 + 2 + 4


def test_replot_makes_no_training_call(tmp_path: Path) -> None:
    toy = ToyTask()
    first = reproduce(toy.as_task(), root=tmp_path, quick=True, seeds=[0])
    for figure in first.figures:
        figure.unlink()

    def forbidden(config: Any, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
        raise AssertionError("replot must not train")

    task = Task(name="toy", configs=toy.configs, run=forbidden, summarize=toy.summarize, plot=toy.plot)
    again = reproduce(task, root=tmp_path, quick=True, seeds=[0], replot=True)
    assert again.summary == first.summary and all(p.exists() for p in again.figures)
    assert toy.plots == 2
    with pytest.raises(CacheMissError, match="replot"):
        reproduce(task, root=tmp_path, quick=False, seeds=[0], replot=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seeds": []}, "seeds"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"seeds": [-1]}, "seeds"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_sweep_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        reproduce(ToyTask().as_task(), root=tmp_path, **kwargs)


sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner_helpers as helpers  # noqa: E402  (found through the sys.path entry above; pool workers inherit it)


def _metrics(outcome: Any) -> list[dict[str, Any]]:
    return [m for _c, _s, m in outcome.results]


@pytest.fixture(scope="module")
def backend_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tiny real ICL, OCR and Laundry List runs, seeds 0 and 1, through the serial, pool and Dask runners."""
    from distributed import LocalCluster

    task, root = helpers.mixed_task(), tmp_path_factory.mktemp("backends")
    outcomes = {
        "serial": reproduce(task, root=root / "serial", quick=True, seeds=[0, 1], workers=1),
        "pool": reproduce(task, root=root / "pool", quick=True, seeds=[0, 1], workers=2),
    }
    try:
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    except OSError as error:  # a sandbox without sockets cannot host even an in-process cluster
        pytest.skip(f"a Dask LocalCluster cannot start here: {error}")
    with cluster:
        outcomes["dask"] = reproduce(
            task, root=root / "dask", quick=True, seeds=[0, 1], scheduler=cluster.scheduler_address
        )
    return outcomes


def test_process_pool_and_dask_give_the_in_process_metrics(backend_outcomes: dict[str, Any]) -> None:
    serial, pooled, dasked = (backend_outcomes[k] for k in ("serial", "pool", "dask"))
    assert serial.executed == pooled.executed == dasked.executed == 8
    assert _metrics(pooled) == _metrics(serial)
    assert _metrics(dasked) == _metrics(serial)
    assert dasked.summary == serial.summary and pooled.summary == serial.summary


def _by_run(outcome: Any) -> dict[tuple[str, int], dict[str, Any]]:
    return {(getattr(c, "name", None) or c.label, s): m for c, s, m in outcome.results}


#: What each kind of run learned or computed from its seed's data: trained ICL models, the ICL closed-form
#: baselines, OCR models.
_LEARNED = {
    "softmax_h2": ("kq", "loss"),
    "baselines": ("loss", "eta"),
    "main/factorized": ("history", "norms"),
    "tiny-laundry": ("accuracy_by_length", "composition"),
}


@pytest.mark.parametrize("backend", ["serial", "pool", "dask"])
def test_every_backend_gives_each_seed_its_own_data_initialisation_and_result(
    backend_outcomes: dict[str, Any], backend: str
) -> None:
    runs, serial = _by_run(backend_outcomes[backend]), _by_run(backend_outcomes["serial"])
    assert {name for name, _seed in runs} == set(_LEARNED)
    for name, learned in _LEARNED.items():
        zero, one = runs[name, 0], runs[name, 1]
        streams = ("eval_data", "tune_data") if name == "baselines" else ("init", "train_data", "eval_data")
        for stream in streams:
            assert zero["provenance"][stream] != one["provenance"][stream], (name, stream)
        assert [zero[k] for k in learned] != [one[k] for k in learned], name
        # The same seed on another backend drew the same data and initialisation and learned the same.
        assert zero == serial[name, 0] and one == serial[name, 1]


def test_plan_orders_runs_config_major(tmp_path: Path) -> None:
    toy = ToyTask()
    specs = plan(toy.as_task(), toy.configs(True), [3, 4], tmp_path)
    assert [(s.config.scale, s.seed) for s in specs] == [(1.0, 3), (1.0, 4), (2.0, 3), (2.0, 4)]
    assert specs[1].metrics_path == tmp_path / "toy" / config_hash(ToyConfig(1.0)) / "seed-4" / "metrics.json"


def test_registry_imports_tasks_lazily_with_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from attnlab.synthetic import registry

    assert get_task("icl") is icl.TASK
    with pytest.raises(TaskUnavailableError, match="unknown task 'mqar'"):
        get_task("mqar")
    monkeypatch.setitem(registry.TASKS, "ocr", "attnlab.synthetic.not_written_yet:TASK")
    with pytest.raises(TaskUnavailableError, match="task 'ocr' is not available"):
        get_task("ocr")
    monkeypatch.setitem(registry.TASKS, "ocr", "attnlab.synthetic.icl:configs")
    with pytest.raises(TaskUnavailableError, match="does not define a Task"):
        get_task("ocr")
