"""The ``attnlab bench`` harness: record schema, the correctness gate, JSON output, saving, bad options."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attnlab import bench
from attnlab.cli import build_app
from attnlab.forms import get_form

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


def _tiny(form: str):
    return next((f, c) for f, c in bench.cases("tiny") if f.name == form)


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


def _with_path(form_name: str, name: str, fn) -> object:
    form = get_form(form_name)
    paths = tuple(dataclasses.replace(p, fn=fn) if p.name == name else p for p in form.fast_paths)
    return dataclasses.replace(form, fast_paths=paths)


def test_gate_refuses_a_wrong_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _, case = _tiny("softmax")
    import attnlab.fastpath.torch.softmax as module

    def off_by_one_percent(*args, **kwargs):
        return module.softmax_attention(*args, **kwargs) * 1.01

    monkeypatch.setattr(module, "wrong_for_test", off_by_one_percent, raising=False)
    wrong = _with_path("softmax", "torch", "attnlab.fastpath.torch.softmax:wrong_for_test")
    records = {r.implementation: r for r in bench.run_case(wrong, case, "float32", 1, 1, only={"torch"})}
    assert records["torch"].gate.startswith("fail"), records["torch"].gate
    assert records["torch"].speedup is None and records["torch"].speedup_vs_numpy is None
    assert records["torch"].time_s is not None  # the time is still reported
    assert records["sdpa"].gate == "pass" and records["sdpa"].speedup == 1.0


def test_an_implementation_that_raises_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import attnlab.fastpath.torch.laser as module

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(module, "broken_for_test", broken, raising=False)
    _, case = _tiny("laser")
    broken_form = _with_path("laser", "torch", "attnlab.fastpath.torch.laser:broken_for_test")
    records = {r.implementation: r for r in bench.run_case(broken_form, case, "float32", 1, 1, only={"torch"})}
    assert records["torch"].gate.startswith("error: RuntimeError: kernel exploded")
    assert records["torch"].speedup is None and records["composed_shift"].gate == "pass"


def test_gate_on_the_last_rows_keeps_causal_alignment() -> None:
    form, case = _tiny("softmax")
    sample = form.sample(bench.BENCH_SEED, case.shape)
    out = sample.call(form.reference).astype(np.float32)
    assert bench.gate(form, sample, out, "float32", rows=4)[0] == "pass"
    broken = out.copy()
    broken[..., -1, :] += 0.1  # only a gated row changes
    assert bench.gate(form, sample, broken, "float32", rows=4)[0].startswith("fail")


def test_scaling_reports_a_slope() -> None:
    form = get_form("tensor")
    numpy_only = dataclasses.replace(form, scaling={"numpy": form.scaling["numpy"]})
    records = bench.scaling(numpy_only, (64, 256), repeats=1)
    summary = [r for r in records if "loglog_slope" in r]
    assert len(summary) == 1 and summary[0]["gate"] == "pass"
    assert math.isfinite(summary[0]["loglog_slope"])
    assert [r["shape"] for r in records if "time_s" in r] == ["B1-H4-n64-d8-d2", "B1-H4-n256-d8-d2"]


def test_save_writes_json_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "bench.json"
    result = CliRunner().invoke(
        build_app(),
        ["bench", "--tiny", "--form", "hamming", "--impl", "torch", "--no-scaling", "--output", str(target)],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(target.read_text())
    assert saved["meta"]["mode"] == "tiny" and "4·B·H·n·m·d" in saved["meta"]["flop_convention"]["hamming"]
    assert {r["implementation"] for r in saved["records"]} == {"torch", "composed", "numpy"}
    assert not list(target.parent.glob("*.tmp*"))


@pytest.mark.parametrize(
    "args",
    [
        ["--form", "nonsense"],
        ["--dtype", "float16"],
        ["--dtype", "nosuch"],
        ["--threads", "0"],
        ["--repeats", "0"],
        ["--device", "tpu"],
    ],
    ids=lambda a: "-".join(a),
)
def test_bad_options_exit_2_with_a_one_line_message(args: list[str]) -> None:
    result = CliRunner().invoke(build_app(), ["bench", "--tiny", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert args[0] in result.output and len(result.output.strip().splitlines()) == 1


def test_bench_on_cuda_without_a_gpu_exits_with_a_clear_message() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA benchmark would run")
    result = CliRunner().invoke(build_app(), ["bench", "--device", "cuda"])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output
