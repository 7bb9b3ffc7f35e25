"""pytest-benchmark suite: the Numba fast paths against their peers at the ``full`` benchmark shapes.

Not part of the default test run (``testpaths = tests`` and ``--benchmark-skip``). Run with::

    .venv/bin/pytest bench/test_bench_numba.py --benchmark-only --benchmark-group-by=param:case

Cases, peers and baselines come from the form declarations (``attnlab.bench.cases("full")``): PyTorch
SDPA for softmax, the composed-torch oracle (or the declared peer) otherwise. Everything runs on one
thread: torch, Numba *and* the BLAS that Numba's ``np.dot`` calls. Each implementation first passes the
correctness gate of :func:`attnlab.bench.gate`. Compare only within one group of one run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when the BLAS library loads: before numba/scipy

import numba
import pytest
import torch

from attnlab import bench

torch.set_num_threads(1)
numba.set_num_threads(1)

CASES = {
    f"{form.name}-{case.label}": (form, case)
    for form, case in bench.cases("full")
    if any(p.name == "numba" for p in form.fast_paths)
}


def _params() -> list:
    return [
        pytest.param(key, name, id=f"{key}-{name}")
        for key, (form, case) in CASES.items()
        for name in ("numba", bench.baseline_name(form))
        if name not in case.skip
    ]


@pytest.mark.benchmark(group="numba-vs-peer")
@pytest.mark.parametrize(("case", "implementation"), _params())
def test_numba_against_peer(benchmark, case: str, implementation: str) -> None:
    form, spec = CASES[case]
    run, sample = bench.prepared(form, spec, implementation, "float32")
    verdict, _ = bench.gate(form, sample, run(), "float32")
    assert verdict == "pass", verdict
    benchmark.extra_info.update({"form": form.name, "shape": spec.label, "peer": bench.baseline_name(form)})
    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
