"""``attnlab bench``: time every implementation of every form against its peers, in the same run.

Everything comes from the form declarations: the benchmark shapes (``Form.bench``, by mode), the
implementations (the fast paths, the composed-torch oracle as ``composed``, the NumPy reference run at
the benchmark dtype as ``numpy``, and the declared peers such as bare PyTorch SDPA), the baseline each
speedup is measured against (``Form.baseline``) and the FLOP count (``Form.flops``, convention in
``Form.flop_convention``). Each record holds the median of warm repeats and two ratios measured in this
run: ``speedup`` against the baseline and ``speedup_vs_numpy``.

Correctness gate (flash-linear-attention's "frozen gate"): before a speedup is reported, the output on
the benchmark input is held to the tolerance rule of :mod:`attnlab.testing` against the float64
reference — on the last query rows where the form allows slicing queries, so large shapes stay
affordable. A red gate reports the time but no speedup.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from attnlab.core import BenchCase, Form, SampleInput, Tolerance, load
from attnlab.forms import all_forms, get_form
from attnlab.testing.convert import convert
from attnlab.testing.parity import Implementation, forward
from attnlab.validation import reference_precision

MODES = ("tiny", "quick", "full")
CPU_DTYPES = ("float32", "float64")
CUDA_DTYPES = ("bfloat16", "float16", "float32")
#: Seed of every benchmark input.
BENCH_SEED = 0


@dataclass(frozen=True)
class Timed:
    """One timed implementation: ``kind`` is ``torch`` (tensors) or ``numpy`` (arrays)."""

    name: str
    fn: Callable[..., Any]
    kind: str
    numpy_precision: bool = False  # run inside ``reference_precision(dtype)`` (the NumPy reference)


@dataclass
class Record:
    form: str
    implementation: str
    shape: str
    dtype: str
    time_s: float | None
    repeats: int
    baseline: str
    speedup: float | None
    speedup_vs_numpy: float | None
    gate: str
    error_abs: float | None
    gflops: float | None
    threads: int


def cases(mode: str, forms: list[str] | None = None) -> list[tuple[Form, BenchCase]]:
    """The ``(form, case)`` pairs of a mode (``tiny``, ``quick``, ``full`` or ``cuda``)."""
    return [(f, c) for f in all_forms() if forms is None or f.name in forms for c in f.bench if mode in c.modes]


def implementations(form: Form) -> dict[str, Timed]:
    """Peers, fast paths, the composed-torch oracle and the NumPy reference of ``form``."""
    impls = {name: Timed(name, load(ref), "torch") for name, ref in form.peers.items()}
    for path in form.fast_paths:
        impls[path.name] = Timed(path.name, path.load(), path.kind)
    impls["composed"] = Timed("composed", form.oracle, "torch")
    impls["numpy"] = Timed("numpy", form.reference, "numpy", numpy_precision=True)
    return impls


def baseline_name(form: Form) -> str:
    return "composed" if form.baseline == "oracle" else form.baseline


def _call(impl: Timed, args: tuple, kwargs: dict, dtype: str) -> Any:
    if impl.numpy_precision:
        with reference_precision(dtype):
            return impl.fn(*args, **kwargs)
    if impl.kind == "torch":
        import torch

        with torch.no_grad():
            return impl.fn(*args, **kwargs)
    return impl.fn(*args, **kwargs)


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1, budget_s: float = 3.0) -> tuple[float, int, Any]:
    """Median wall time of up to ``repeats`` warm calls after ``warmup`` untimed ones; timing stops
    early, after at least one call, once ``budget_s`` is spent. Returns ``(median s, calls, last output)``."""
    out = None
    for _ in range(warmup):
        out = fn()
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times), out


def prepared(form: Form, case: BenchCase, implementation: str, dtype: str) -> tuple[Callable[[], Any], SampleInput]:
    """A no-argument call of one implementation on the case's (converted) input, and the float64 sample."""
    impl = implementations(form)[implementation]
    sample = form.sample(BENCH_SEED, case.shape)
    args, kwargs = convert(sample, impl.kind, dtype)
    return functools.partial(_call, impl, args, kwargs, dtype), sample


def gate_sample(form: Form, sample: SampleInput, rows: int) -> tuple[SampleInput, int | None]:
    """The sample restricted to its last ``rows`` queries (bottom-right causal alignment is preserved)."""
    if not form.row_args:
        return sample, None
    n = sample.args[form.row_args[0]].shape[-2]
    if n <= rows:
        return sample, None
    args = tuple(a[..., n - rows :, :] if i in form.row_args else a for i, a in enumerate(sample.args))
    kwargs = {
        key: (val[..., n - rows :, :] if key == "mask" and isinstance(val, np.ndarray) else val)
        for key, val in sample.kwargs.items()
    }
    return SampleInput(args, kwargs, sample.label), rows


def gate(form: Form, sample: SampleInput, output: Any, dtype: str, rows: int = 32) -> tuple[str, float | None]:
    """``("pass" | "fail: ...", abs error)`` of ``output`` under the tolerance rule."""
    sliced, tail = gate_sample(form, sample, rows)
    got = output if tail is None else output[..., -tail:, :]
    impl = Implementation("output", lambda *a, **k: got, "torch" if hasattr(got, "detach") else "numpy", Tolerance())
    verdict = forward(form, impl, sliced, dtype, output=got)
    if not verdict.passed:
        return f"fail: {verdict.message(form.name)}", None
    return "pass", verdict.error.abs


def run_case(
    form: Form, case: BenchCase, dtype: str, repeats: int, threads: int, only: set[str] | None = None
) -> list[Record]:
    """Time every implementation of ``case`` (gated), then fill in the ratios against the peers."""
    sample = form.sample(BENCH_SEED, case.shape)
    base = baseline_name(form)
    records: dict[str, Record] = {}
    for name, impl in implementations(form).items():
        if name in case.skip or (only is not None and name not in only and name not in (base, "numpy")):
            continue
        try:
            args, kwargs = convert(sample, impl.kind, dtype)
            seconds, timed, out = time_call(functools.partial(_call, impl, args, kwargs, dtype), repeats)
            verdict, err = gate(form, sample, out, dtype)
        except Exception as exc:  # a broken implementation is reported, not fatal to the run
            seconds, timed, verdict, err = None, 0, f"error: {type(exc).__name__}: {exc}", None
        gflops = form.flops(sample) / seconds / 1e9 if seconds else None
        records[name] = Record(
            form.name, name, case.label, dtype, seconds, timed, base, None, None, verdict, err, gflops, threads
        )
    peer, numpy_rec = records.get(base), records.get("numpy")
    for rec in records.values():
        if rec.gate != "pass" or rec.time_s is None:
            continue
        if peer is not None and peer.gate == "pass" and peer.time_s:
            rec.speedup = peer.time_s / rec.time_s
        if numpy_rec is not None and numpy_rec.gate == "pass" and numpy_rec.time_s:
            rec.speedup_vs_numpy = numpy_rec.time_s / rec.time_s
    return list(records.values())


def scaling(
    form: Form, lengths: tuple[int, ...], repeats: int, dtype: str = "float64", d: int = 8
) -> list[dict[str, Any]]:
    """Time each of ``form.scaling``'s implementations against ``n`` and fit the log-log slope.

    Inputs are bounded (entries in ``[−1, 1]``, as a polynomial method requires); each timing is gated
    against the first implementation at ``n = lengths[0]``.
    """
    impls = {name: load(ref) for name, ref in form.scaling.items()}
    if not impls:
        return []
    tag = "".join(f"-{k[0]}{v}" for k, v in form.scaling_options.items())
    golden_fn = next(iter(impls.values()))
    records: list[dict[str, Any]] = []
    for name, fn in impls.items():
        times, verdict = [], "pass"
        for n in lengths:
            rng = np.random.default_rng(n)
            arrays = [rng.uniform(-1.0, 1.0, (1, 4, n, d)).astype(dtype) for _ in range(5)]
            seconds, timed, out = time_call(functools.partial(fn, *arrays, **form.scaling_options), repeats)
            if n == lengths[0]:
                want = golden_fn(*[a.astype(np.float64) for a in arrays], **form.scaling_options)
                err = float(np.max(np.abs(np.asarray(out, np.float64) - want)))
                tol = 1e-10 if dtype == "float64" else 1e-4
                verdict = "pass" if err <= tol else f"fail: error {err:.2e} > {tol:.0e}"
            times.append(seconds)
            records.append(
                {
                    "form": form.name,
                    "implementation": name,
                    "shape": f"B1-H4-n{n}-d{d}{tag}",
                    "dtype": dtype,
                    "time_s": seconds,
                    "repeats": timed,
                    "gate": verdict,
                }
            )
        slope = float(np.polyfit(np.log(lengths), np.log(times), 1)[0]) if len(lengths) > 1 else None
        records.append(
            {
                "form": form.name,
                "implementation": name,
                "shape": f"n{lengths[0]}..{lengths[-1]}",
                "dtype": dtype,
                "loglog_slope": slope,
                "gate": verdict,
            }
        )
    return records


def _blas_threads(threads: int) -> Any:
    """Limit every loaded BLAS/OpenMP pool (NumPy's, SciPy's — which Numba's ``np.dot`` calls — and
    torch's) to ``threads``, so "1 thread" means one thread for every implementation."""
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS Numba's np.dot uses before limiting)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def run_benchmarks(
    mode: str = "quick",
    forms: list[str] | None = None,
    dtype: str = "float32",
    repeats: int | None = None,
    threads: int = 1,
    only: set[str] | None = None,
    with_scaling: bool = True,
) -> dict[str, Any]:
    """Run the CPU benchmark suite; returns ``{"meta", "records", "scaling"}``."""
    import torch

    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if dtype not in CPU_DTYPES:
        raise ValueError(f"dtype: expected one of {CPU_DTYPES} on the CPU, got {dtype!r}")
    if threads < 1:
        raise ValueError(f"threads: expected a positive count, got {threads}")
    if repeats is not None and repeats < 1:
        raise ValueError(f"repeats: expected a positive count, got {repeats}")
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, getattr(numba.config, "NUMBA_NUM_THREADS", threads)))
    except (ImportError, ValueError):
        pass
    reps = repeats if repeats is not None else {"tiny": 1, "quick": 3, "full": 5}[mode]
    lengths = {"tiny": (64, 128), "quick": (512, 2048, 8192), "full": (512, 1024, 2048, 4096, 8192)}[mode]
    selected = cases(mode, forms)
    with _blas_threads(threads):
        records = [rec.__dict__ for form, case in selected for rec in run_case(form, case, dtype, reps, threads, only)]
        slopes = (
            [r for form in all_forms() if forms is None or form.name in forms for r in scaling(form, lengths, reps)]
            if with_scaling
            else []
        )
    conventions = {form.name: form.flop_convention for form, _ in selected}
    meta = {
        "mode": mode,
        "dtype": dtype,
        "threads": threads,
        "repeats": reps,
        "torch": torch.__version__,
        "device": "cpu",
        "flop_convention": conventions,
    }
    return {"meta": meta, "records": records, "scaling": slopes}


# ---------------------------------------------------------------------------------------------
# CUDA


def _cuda_time(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def run_cuda_benchmarks(dtype: str = "bfloat16", repeats: int = 20, forms: list[str] | None = None) -> dict[str, Any]:
    """Time the torch paths and peers on the current CUDA device (cases of mode ``cuda``).

    Gate: ``err(impl, golden) <= 5·err(oracle at the dtype, golden) + floor`` with ``golden`` the oracle
    in float64 on the same device; a red gate reports the time and no speedup. TF32 is off.
    """
    import torch

    from attnlab.testing.rule import judge

    if not torch.cuda.is_available():
        raise RuntimeError("device: CUDA is not available on this machine")
    if dtype not in CUDA_DTYPES:
        raise ValueError(f"dtype: expected one of {CUDA_DTYPES} on CUDA, got {dtype!r}")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    records = []
    for form, case in cases("cuda", forms):
        sample = form.sample(BENCH_SEED, case.shape)
        args, kwargs = convert(sample, "torch", dtype, "cuda")
        args64, kwargs64 = convert(sample, "torch", "float64", "cuda")
        with torch.no_grad():
            golden = form.oracle(*args64, **kwargs64)
            lowp = form.oracle(*args, **kwargs)
        impls = {n: i for n, i in implementations(form).items() if i.kind == "torch" and n not in case.skip}
        times: dict[str, float] = {}
        gates: dict[str, bool] = {}
        for name, impl in impls.items():
            try:
                with torch.no_grad():
                    out = impl.fn(*args, **kwargs)
                gates[name] = judge(golden, out, lowp, dtype).passed
            except torch.OutOfMemoryError:
                gates[name] = False
            times[name] = _cuda_time(functools.partial(_call, impl, args, kwargs, dtype), repeats)
        base = baseline_name(form)
        for name, ms in times.items():
            records.append(
                {
                    "form": form.name,
                    "implementation": name,
                    "shape": case.label,
                    "dtype": dtype,
                    "device": torch.cuda.get_device_name(),
                    "time_ms": ms,
                    "baseline": base,
                    "speedup": times[base] / ms if gates[name] and base in times else None,
                    "gate": gates[name],
                    "tflops": form.flops(sample) / ms / 1e9,
                }
            )
        del golden, lowp
        torch.cuda.empty_cache()
    meta = {
        "dtype": dtype,
        "repeats": repeats,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "timer": "CUDA events, median after 3 warm-ups",
        "tf32": False,
    }
    return {"meta": meta, "records": records}


def cuda_summary(result: dict[str, Any]) -> str:
    lines = [f"{'form':<13}{'impl':<12}{'shape':<34}{'ms':>10}{'TFLOP/s':>9}{'speedup':>10}  baseline"]
    for rec in result["records"]:
        speed = "-" if rec["speedup"] is None else f"{rec['speedup']:.2f}x"
        lines.append(
            f"{rec['form']:<13}{rec['implementation']:<12}{rec['shape']:<34}{rec['time_ms']:>10.3f}"
            f"{rec['tflops']:>9.1f}{speed:>10}  {rec['baseline']}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    meta = result["meta"]
    table = Table(
        title=(
            f"attnlab bench ({meta['mode']}, {meta['dtype']}, {meta['threads']} thread(s), median of {meta['repeats']})"
        )
    )
    for column in ("form", "shape", "impl", "time ms", "GFLOP/s", "speedup", "vs baseline", "vs numpy", "gate"):
        table.add_column(column)
    for r in result["records"]:
        table.add_row(
            r["form"],
            r["shape"],
            r["implementation"],
            _fmt(r["time_s"] and r["time_s"] * 1e3, ".2f"),
            _fmt(r["gflops"], ".1f"),
            _fmt(r["speedup"], ".2f"),
            r["baseline"],
            _fmt(r["speedup_vs_numpy"], ".1f"),
            r["gate"][:60],
        )
    for r in result["scaling"]:
        if "loglog_slope" in r:
            table.add_row(
                r["form"],
                r["shape"],
                r["implementation"],
                "-",
                "-",
                "-",
                "log-log slope",
                _fmt(r["loglog_slope"], ".3f"),
                r["gate"][:60],
            )
    Console(width=200).print(table)


def default_results_path(mode: str, dtype: str) -> Path:
    """``results/bench/bench-<mode>-<dtype>.json`` under ``$ATTNLAB_RESULTS`` (default ``results``)."""
    return Path(os.environ.get("ATTNLAB_RESULTS", "results")) / "bench" / f"bench-{mode}-{dtype}.json"


def _usage(message: str) -> typer.Exit:
    typer.echo(f"attnlab bench: {message}", err=True)
    return typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` verb to the ``attnlab`` CLI."""

    @app.command("bench")
    def bench(
        quick: Annotated[bool, typer.Option("--quick", help="Smaller shapes; finishes in under a minute.")] = False,
        json_output: Annotated[bool, typer.Option("--json", help="Print only the JSON records on stdout.")] = False,
        form: Annotated[list[str] | None, typer.Option("--form", help="Only this form (repeatable).")] = None,
        dtype: Annotated[
            str, typer.Option("--dtype", help="float32 or float64 (CPU); bfloat16/float16/float32 on cuda.")
        ] = "",
        device: Annotated[
            str, typer.Option("--device", help="cpu (all implementations) or cuda (the torch paths).")
        ] = "cpu",
        repeats: Annotated[int | None, typer.Option("--repeats", help="Warm repeats per timing (median).")] = None,
        threads: Annotated[int, typer.Option("--threads", help="Threads for torch, Numba and BLAS.")] = 1,
        save: Annotated[
            bool, typer.Option("--save", help="Also write results/bench/bench-<mode>-<dtype>.json.")
        ] = False,
        output: Annotated[
            Path | None, typer.Option("--output", help="Write the results (atomically) to this JSON file.")
        ] = None,
        tiny: Annotated[
            bool, typer.Option("--tiny", hidden=True, help="Tiny shapes, for testing the harness.")
        ] = False,
        impl: Annotated[
            list[str] | None, typer.Option("--impl", hidden=True, help="Only these (plus baseline and NumPy).")
        ] = None,
        no_scaling: Annotated[bool, typer.Option("--no-scaling", hidden=True, help="Skip the scaling run.")] = False,
    ) -> None:
        """Time the fast paths against SDPA / composed torch / the NumPy reference (gated on correctness)."""
        from attnlab.forms import FORMS

        if device not in ("cpu", "cuda"):
            raise _usage(f"--device: expected 'cpu' or 'cuda', got {device!r}")
        dtype = dtype or ("bfloat16" if device == "cuda" else "float32")
        allowed = CUDA_DTYPES if device == "cuda" else CPU_DTYPES
        if dtype not in allowed:
            raise _usage(f"--dtype: expected one of {', '.join(allowed)} on {device}, got {dtype!r}")
        if threads < 1:
            raise _usage(f"--threads: expected a positive count, got {threads}")
        if repeats is not None and repeats < 1:
            raise _usage(f"--repeats: expected a positive count, got {repeats}")
        unknown = sorted(set(form or ()) - set(FORMS))
        if unknown:
            raise _usage(f"--form: unknown form(s) {unknown}; known: {', '.join(FORMS)}")
        if output is not None and output.is_dir():
            raise _usage(f"--output: {output} is a folder; expected a file path")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise _usage("--device: CUDA is not available on this machine; use --device cpu")
            result = run_cuda_benchmarks(dtype, repeats or 20, list(form) if form else None)
            if output is not None:
                from attnlab.io import atomic_write_json

                atomic_write_json(output, result)
            typer.echo(json.dumps(result["records"], indent=1) if json_output else cuda_summary(result))
            return
        mode = "tiny" if tiny else "quick" if quick else "full"
        result = run_benchmarks(
            mode,
            forms=list(form) if form else None,
            dtype=dtype,
            repeats=repeats,
            threads=threads,
            only=set(impl) if impl else None,
            with_scaling=not no_scaling,
        )
        if save or output is not None:
            from attnlab.io import atomic_write_json

            atomic_write_json(output if output is not None else default_results_path(mode, dtype), result)
        if json_output:
            typer.echo(json.dumps(result["records"] + result["scaling"], indent=1, default=_json_default))
        else:
            _print_table(result)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


__all__ = [
    "cases",
    "gate",
    "get_form",
    "implementations",
    "prepared",
    "run_benchmarks",
    "run_case",
    "run_cuda_benchmarks",
    "scaling",
]
