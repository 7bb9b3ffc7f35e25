"""pytest-benchmark suite for the torch fast paths and their peers (SDPA, composed torch, NumPy).

Not part of the default test run (``testpaths = tests`` and ``--benchmark-skip``). Run with::

    .venv/bin/pytest bench/test_bench_torch.py --benchmark-only --benchmark-group-by=param:case

Shapes are those of ``attnlab bench --quick``. Each benchmark first passes the correctness gate of
:func:`attnlab.fastpath.bench.gate` on the same input; a wrong implementation fails instead of being
timed. Compare implementations within one group (same case, same run), never across machines.
"""

from __future__ import annotations

import functools

import pytest
import torch

from attnlab.fastpath import bench

torch.set_num_threads(1)

CASES = {case.form: case for case in bench.bench_cases("quick")}
IMPLEMENTATIONS = ("sdpa", "torch", "composed", "numpy")


def _params() -> list:
    params = []
    for form, case in CASES.items():
        for name in IMPLEMENTATIONS:
            if name in bench.implementations(form) and name not in case.skip:
                params.append(pytest.param(form, name, id=f"{form}-{case.label}-{name}"))
    return params


@pytest.mark.benchmark(group="attention-forward")
@pytest.mark.parametrize(("case", "implementation"), _params())
def test_forward(benchmark, case: str, implementation: str) -> None:
    spec = CASES[case]
    impl = bench.implementations(case)[implementation]
    args, kwargs = spec.make(0)
    c_args, c_kwargs = bench._convert(impl, args, kwargs, "float32")
    run = functools.partial(bench._call, impl, c_args, c_kwargs, "float32")
    verdict, _ = bench.gate(spec, args, kwargs, run(), "float32")
    assert verdict == "pass", verdict
    benchmark.extra_info.update({"form": case, "shape": spec.label, "baseline": bench.baseline_name(case)})
    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
