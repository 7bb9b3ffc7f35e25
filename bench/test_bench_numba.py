"""pytest-benchmark suite: the Numba fast paths against their torch peers at the goal shapes.

Not part of the default test run (``testpaths = tests`` and ``--benchmark-skip``). Run with::

    .venv/bin/pytest bench/test_bench_numba.py --benchmark-only --benchmark-group-by=param:case

Shapes are the ``attnlab bench`` full shapes (B=1, H=8, d=64, float32) of softmax (n=2048, causal and
not), LASER, differential and Hamming (n=1024, causal) and linear (n=2048, causal). The peer is
PyTorch SDPA for softmax and the composed-torch math otherwise (the speed goals are ratios against
them: ≥ 1× SDPA, ≥ 2× composed torch). Everything runs on one thread: torch, Numba *and* the BLAS
that Numba's ``np.dot`` calls (OpenBLAS would otherwise use every core for the tile GEMMs). Each
implementation first passes the correctness gate of :func:`attnlab.fastpath.bench.gate`.
Compare only within one group of one run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when the BLAS library loads: before numba/scipy

import functools

import numba
import pytest
import torch

from attnlab.fastpath import bench

torch.set_num_threads(1)
numba.set_num_threads(1)

GOAL_FORMS = ("softmax", "laser", "differential", "hamming", "linear")
CASES = {f"{case.form}-{case.label}": case for case in bench.bench_cases("full") if case.form in GOAL_FORMS}


def _params() -> list:
    params = []
    for key, case in CASES.items():
        for name in ("numba", bench.baseline_name(case.form)):
            params.append(pytest.param(key, name, id=f"{key}-{name}"))
    return params


@pytest.mark.benchmark(group="numba-vs-torch")
@pytest.mark.parametrize(("case", "implementation"), _params())
def test_numba_against_peer(benchmark, case: str, implementation: str) -> None:
    spec = CASES[case]
    impl = bench.implementations(spec.form)[implementation]
    args, kwargs = spec.make(0)
    c_args, c_kwargs = bench._convert(impl, args, kwargs, "float32")
    run = functools.partial(bench._call, impl, c_args, c_kwargs, "float32")
    verdict, _ = bench.gate(spec, args, kwargs, run(), "float32")
    assert verdict == "pass", verdict
    benchmark.extra_info.update({"form": spec.form, "shape": spec.label, "peer": bench.baseline_name(spec.form)})
    benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
