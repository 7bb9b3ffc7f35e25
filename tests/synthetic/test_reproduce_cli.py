"""``attnlab reproduce``: JSON summary on stdout, cache reuse, --replot, errors (typer CliRunner, tmp dirs)."""

from __future__ import annotations

import json
import sys
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


# ----------------------------------------------------------------------------- argument validation

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner_helpers as helpers  # noqa: E402  (found through the sys.path entry above)


@pytest.fixture
def fake_task(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The torch-free fake task registered as ``fake``; returns its call-log folder."""
    monkeypatch.setitem(registry.TASKS, "fake", "runner_helpers:FAKE_TASK")
    monkeypatch.setenv(helpers.CONFIGS_ENV, helpers.configs_env([helpers.FakeConfig("a"), helpers.FakeConfig("b")]))
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv(helpers.LOG_ENV, str(log))
    monkeypatch.delenv(helpers.DELAYS_ENV, raising=False)
    return log


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    return lines[0]


BAD_ARGUMENTS = [
    (["--seeds", "abc"], "--seeds"),
    (["--seeds", "-1"], "--seeds"),
    (["--seeds", "1.5"], "--seeds"),
    (["--seeds"], "--seeds"),
    (["--workers", "0"], "--workers"),
    (["--workers", "two"], "--workers"),
    (["--scheduler", "nosuch"], "--scheduler"),
    (["--scheduler", ""], "--scheduler"),
    (["--scheduler", "tcp://127.0.0.1"], "--scheduler"),
    (["--scheduler", "tcp://127.0.0.1:99999"], "port"),
    (["--scheduler", "http://127.0.0.1:8786"], "--scheduler"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "exclude each other"),
    (["--out", ""], "--out"),
    (["--out", "{file}"], "not a folder"),
    (["--quick=yes"], "--quick"),
    (["--sed", "1"], "--sed"),
    (["extra-argument"], "extra-argument"),
]


@pytest.mark.parametrize(("arguments", "named"), BAD_ARGUMENTS, ids=[" ".join(a) or "empty" for a, _ in BAD_ARGUMENTS])
def test_every_bad_argument_is_one_line_and_exit_code_2(
    tmp_path: Path, fake_task: Path, arguments: list[str], named: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    arguments = [a.replace("{file}", str(a_file)) for a in arguments]
    out = tmp_path / "results"
    has_out = "--out" in arguments
    result = CliRunner().invoke(
        _app(), ["reproduce", "fake", "--quick", *([] if has_out else ["--out", str(out)]), *arguments]
    )
    assert result.exit_code == 2, result.output
    assert named in _one_error_line(result.output)
    assert not out.exists() and not list(fake_task.iterdir())


def test_a_missing_task_argument_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["reproduce", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "task" in _one_error_line(result.output).lower()


def test_an_unreachable_scheduler_is_one_line_only_when_a_run_needs_it(tmp_path: Path, fake_task: Path) -> None:
    import dask
    import distributed  # noqa: F401  (registers its config defaults, which dask.config.set must not shadow)

    runner = CliRunner()
    args = ["reproduce", "fake", "--quick", "--seeds", "1", "--out", str(tmp_path / "results")]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        unreachable = runner.invoke(_app(), [*args, "--scheduler", "tcp://127.0.0.1:1"])
        assert unreachable.exit_code == 2
        assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in _one_error_line(unreachable.output)
        assert not helpers.events(fake_task)
        assert runner.invoke(_app(), [*args, "--workers", "1"]).exit_code == 0
        # Fully cached: nothing to compute, so the scheduler is never asked.
        cached = runner.invoke(_app(), [*args, "--scheduler", "tcp://127.0.0.1:1"])
    assert cached.exit_code == 0, cached.output
    assert "0 run(s) executed, 2 reused" in cached.stdout


def test_a_corrupt_cache_file_is_reported_in_one_warning_line(tmp_path: Path, fake_task: Path) -> None:
    from attnlab.synthetic.base import config_hash

    runner = CliRunner()
    args = [
        "reproduce",
        "fake",
        "--quick",
        "--seeds",
        "1",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "results"),
        "--json",
    ]
    first = runner.invoke(_app(), args)
    assert first.exit_code == 0, first.output
    metrics = tmp_path / "results" / "fake" / config_hash(helpers.FakeConfig("b")) / "seed-0" / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:10])
    again = runner.invoke(_app(), args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(metrics) in warnings[0] and "corrupt" in warnings[0]


def test_the_summary_table_shows_every_tasks_criterion_format() -> None:
    import io

    from rich.console import Console

    from attnlab.synthetic.cli import _print_summary

    summary = {
        "task": "mixed",
        "criteria": {
            "icl_style": {"measured": 0.0123, "op": "<=", "threshold": 0.02, "passed": True},
            "ocr_style": {"value": 0.5, "threshold": "within 0.050 ± 0.030", "passed": False, "per_seed": [0.5]},
            "no_value": {"value": None, "threshold": ">= 0.99", "passed": False, "per_seed": []},
            "laundry_style": {"value": 2.5, "threshold": 2.0, "passed": True},
        },
        "reproduced": False,
    }
    buffer = io.StringIO()
    _print_summary(Console(file=buffer, width=200), summary)
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
        for line in buffer.getvalue().splitlines()
        if line.count("│") >= 5
    }
    assert rows["icl_style"] == ["0.0123", "<= 0.02", "yes"]
    assert rows["ocr_style"] == ["0.5", "within 0.050 ± 0.030", "NO"]
    assert rows["no_value"] == ["-", ">= 0.99", "NO"]
    assert rows["laundry_style"] == ["2.5", "2", "yes"]
    assert "reproduced: no" in buffer.getvalue()
