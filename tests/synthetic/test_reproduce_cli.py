"""``attnlab reproduce``: JSON summary on stdout, cache reuse, --replot, errors (typer CliRunner, tmp dirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from attnlab.synthetic import registry
from attnlab.synthetic.cli import register

torch.set_num_threads(1)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """attnlab (test harness)."""

    register(app)
    return app


@pytest.fixture
def smoke_icl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.TASKS, "icl", "attnlab.synthetic.icl:SMOKE_TASK")


def test_plugin_is_listed_in_the_main_cli() -> None:
    from attnlab import cli

    assert "attnlab.synthetic.cli" in cli._PLUGINS


def test_reproduce_icl_json_then_cached_then_replot(tmp_path: Path, smoke_icl: None) -> None:
    runner = CliRunner()
    app = _app()
    args = ["reproduce", "icl", "--quick", "--seeds", "1", "--workers", "1", "--out", str(tmp_path)]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["task"] == "icl"
    for model in ("softmax_h1", "softmax_h2", "linear_h1", "gd", "debiased_gd", "ridge"):
        assert set(summary["loss"][model]) == {"10", "40", "80"}
        assert all(value > 0 for value in summary["loss"][model].values())
    assert all({"measured", "threshold", "passed"} <= set(c) for c in summary["criteria"].values())
    experiment = [p for p in (tmp_path / "icl").iterdir() if (p / "loss_vs_length.png").exists()]
    assert len(experiment) == 1
    for name in ("loss_vs_length", "patterns_softmax_h2", "bottleneck"):
        assert (experiment[0] / f"{name}.png").stat().st_size > 0
        assert (experiment[0] / f"{name}.svg").stat().st_size > 0

    cached = runner.invoke(app, args)
    assert cached.exit_code == 0, cached.output
    assert "0 run(s) executed, 6 reused" in cached.stdout

    (experiment[0] / "loss_vs_length.png").unlink()
    replotted = runner.invoke(app, [*args, "--replot", "--json"])
    assert replotted.exit_code == 0, replotted.output
    assert json.loads(replotted.stdout) == summary
    assert (experiment[0] / "loss_vs_length.png").exists()


def test_replot_without_cache_fails_clearly(tmp_path: Path, smoke_icl: None) -> None:
    result = CliRunner().invoke(_app(), ["reproduce", "icl", "--quick", "--replot", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "run without --replot first" in result.output


def test_unknown_or_missing_task_exits_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    unknown = runner.invoke(_app(), ["reproduce", "mqar", "--out", str(tmp_path)])
    assert unknown.exit_code == 2 and "unknown task 'mqar'" in unknown.output
    monkeypatch.setitem(registry.TASKS, "laundry", "attnlab.synthetic.not_written_yet:TASK")
    missing = runner.invoke(_app(), ["reproduce", "laundry", "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "not available" in missing.output
    assert not list(tmp_path.iterdir())
