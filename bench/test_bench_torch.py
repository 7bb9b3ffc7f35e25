"""pytest-benchmark suite for the torch fast paths and their peers (SDPA, composed torch, NumPy).

Not part of the default test run (``testpaths = tests`` and ``--benchmark-skip``). Run with::

    .venv/bin/pytest bench/test_bench_torch.py --benchmark-only --benchmark-group-by=param:case

Shapes are those of ``attnlab bench --quick`` (from the form declarations). Each benchmark first passes
the correctness gate of :func:`attnlab.bench.gate` on the same input; a wrong implementation fails
instead of being timed. Compare implementations within one group (same case, same run), never across
machines.
"""

from __future__ import annotations

import pytest
import torch

from attnlab import bench

torch.set_num_threads(1)

CASES = {f"{form.name}-{case.label}": (form, case) for form, case in bench.cases("quick")}


def _params() -> list:
    return [
        pytest.param(key, name, id=f"{key}-{name}")
        for key, (form, case) in CASES.items()
        for name, impl in bench.implementations(form).items()
        if impl.kind == "torch" or name == "numpy"
        if name not in case.skip
    ]


@pytest.mark.benchmark(group="attention-forward")
@pytest.mark.parametrize(("case", "implementation"), _params())
def test_forward(benchmark, case: str, implementation: str) -> None:
    form, spec = CASES[case]
    run, sample = bench.prepared(form, spec, implementation, "float32")
    verdict, _ = bench.gate(form, sample, run(), "float32")
    assert verdict == "pass", verdict
    benchmark.extra_info.update({"form": form.name, "shape": spec.label, "baseline": bench.baseline_name(form)})
    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
