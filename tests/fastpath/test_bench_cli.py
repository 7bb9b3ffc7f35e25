"""The ``attnlab bench`` harness: record schema, the correctness gate, JSON output, saving."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attnlab.cli import build_app
from attnlab.fastpath import bench
from attnlab.registry import get_form

torch.set_num_threads(1)

RECORD_KEYS = {
    "form",
    "implementation",
    "shape",
    "dtype",
    "time_s",
    "repeats",
    "baseline",
    "speedup",
    "speedup_vs_numpy",
    "gate",
    "error_abs",
    "gflops",
    "threads",
}


def _case(form: str) -> bench.BenchCase:
    return next(c for c in bench.bench_cases("tiny") if c.form == form)


def test_cli_json_records_parse_and_follow_the_schema() -> None:
    result = CliRunner().invoke(
        build_app(),
        ["bench", "--tiny", "--json", "--form", "softmax", "--form", "linear", "--impl", "torch", "--no-scaling"],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {(r["form"], r["implementation"]) for r in records} == {
        ("softmax", "sdpa"),
        ("softmax", "torch"),
        ("softmax", "numpy"),
        ("linear", "composed"),
        ("linear", "torch"),
        ("linear", "numpy"),
    }
    for r in records:
        assert set(r) == RECORD_KEYS
        assert r["baseline"] == ("sdpa" if r["form"] == "softmax" else "composed")
        assert r["gate"] == "pass", r["gate"]
        assert r["time_s"] > 0 and r["speedup"] > 0 and r["speedup_vs_numpy"] > 0
        assert r["dtype"] == "float32" and r["threads"] == 1
        if r["implementation"] == r["baseline"]:
            assert r["speedup"] == 1.0
        if r["implementation"] == "numpy":
            assert r["speedup_vs_numpy"] == 1.0


def test_gate_refuses_a_wrong_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    info = get_form("softmax")
    good = info.fast_paths["torch"]

    def off_by_one_percent(*args, **kwargs):
        return good.fn(*args, **kwargs) * 1.01

    monkeypatch.setitem(info.fast_paths, "torch", dataclasses.replace(good, fn=off_by_one_percent))
    records = {r.implementation: r for r in bench.run_case(_case("softmax"), "float32", 1, 1, only={"torch"})}
    assert records["torch"].gate.startswith("fail"), records["torch"].gate
    assert records["torch"].speedup is None and records["torch"].speedup_vs_numpy is None
    assert records["torch"].time_s is not None  # the time is still reported
    assert records["sdpa"].gate == "pass" and records["sdpa"].speedup == 1.0


def test_an_implementation_that_raises_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    info = get_form("laser")

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setitem(info.fast_paths, "torch", dataclasses.replace(info.fast_paths["torch"], fn=broken))
    records = {r.implementation: r for r in bench.run_case(_case("laser"), "float32", 1, 1, only={"torch"})}
    assert records["torch"].gate.startswith("error: RuntimeError: kernel exploded")
    assert records["torch"].speedup is None and records["composed"].gate == "pass"


def test_gate_on_the_last_rows_keeps_causal_alignment() -> None:
    case = _case("softmax")
    args, kwargs = case.make(0)
    out = get_form("softmax").reference(*args, **kwargs).astype(np.float32)
    assert bench.gate(case, args, kwargs, out, "float32", rows=4)[0] == "pass"
    broken = out.copy()
    broken[..., -1, :] += 0.1  # only a gated row changes
    assert bench.gate(case, args, kwargs, broken, "float32", rows=4)[0].startswith("fail")


def test_poly_scaling_reports_a_slope() -> None:
    records = bench.poly_scaling((64, 256), repeats=1, implementations=("numpy",))
    summary = [r for r in records if "loglog_slope" in r]
    assert len(summary) == 1 and summary[0]["gate"] == "pass"
    assert math.isfinite(summary[0]["loglog_slope"])
    assert [r["shape"] for r in records if "time_s" in r] == ["B1-H4-n64-d8-g2", "B1-H4-n256-d8-g2"]


def test_save_writes_json_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "bench.json"
    result = CliRunner().invoke(
        build_app(),
        ["bench", "--tiny", "--form", "hamming", "--impl", "torch", "--no-scaling", "--output", str(target)],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(target.read_text())
    assert saved["meta"]["mode"] == "tiny" and "4·B·H·n·m·d" in saved["meta"]["flop_convention"]
    assert {r["implementation"] for r in saved["records"]} == {"torch", "composed", "numpy"}
    assert not list(target.parent.glob("*.tmp*"))


def test_unknown_form_is_rejected() -> None:
    result = CliRunner().invoke(build_app(), ["bench", "--tiny", "--form", "nonsense"])
    assert result.exit_code != 0
    assert "nonsense" in result.output


def test_bench_on_cuda_without_a_gpu_exits_with_a_clear_message() -> None:
    import torch
    from typer.testing import CliRunner

    from attnlab.cli import build_app

    if torch.cuda.is_available():
        import pytest

        pytest.skip("a GPU is present: the CUDA benchmark would run")
    result = CliRunner().invoke(build_app(), ["bench", "--device", "cuda"])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output
