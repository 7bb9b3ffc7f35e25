"""``attnlab bench``: time every implementation of the core forms against peers in the same run.

For each form and benchmark shape the implementations are: the torch fast path (``torch``), the
composed-torch math (``composed``), the Numba fast path when registered (``numba``), the NumPy
reference run at the benchmark dtype (``numpy``), and for softmax the bare PyTorch
``scaled_dot_product_attention`` (``sdpa``). Each record holds the median of warm repeats and two
ratios measured in this run: ``speedup`` against the form's baseline (``sdpa`` for softmax, the
composed-torch peer otherwise) and ``speedup_vs_numpy``.

Correctness gate (fla's "frozen gate"): before a speedup is reported, the implementation's output on
the benchmark input is held to the tolerance rule ``err(impl, ref64) <= 5·err(reference at the
benchmark dtype, ref64) + floor`` against the float64 reference (on the last query rows where the
form allows slicing queries, so large shapes stay affordable). A red gate reports the time but no
speedup.

FLOP convention (engineering.md §C.2): softmax-type forms (softmax, LASER, Hamming, MLA absorbed)
count the two GEMMs, ``4·B·H·n·m·d`` with ``d = (d_k + d_v)/2``, halved when causal; differential
counts two such maps; linear counts ``4·B·H·n·d_k·d_v`` (chunked, ``+ 2·B·H·n·C·(d_k + d_v)`` for
the intra-chunk part); tensor attention ``4·B·H·n·m1·m2·d`` (causal: ``/3``), windowed 2-simplicial
``4·B·H·n·w1·w2·d``; interaction ``2·B·H·n²·D + 2·B·n·H·D²``. The ``gflops`` column divides that by
the median time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from attnlab.registry import SampleInput, get_form
from attnlab.testing import assert_within_rule
from attnlab.validation import reference_precision

FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Implementation:
    """One timed implementation: ``kind`` is ``"torch"`` (tensors) or ``"numpy"`` (arrays)."""

    name: str
    fn: Callable[..., Any]
    kind: str
    prepare: Callable[..., tuple[tuple[Any, ...], dict[str, Any]]] | None = None
    numpy_precision: bool = False  # run inside ``reference_precision(dtype)`` (the NumPy reference)


@dataclass(frozen=True)
class BenchCase:
    """One benchmark input: ``make(seed) -> (args, kwargs)`` in float64 NumPy."""

    form: str
    label: str
    make: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]]
    flops: float
    query_args: tuple[int, ...] = ()  # positional args sliced along the query axis for the gate
    row_kwargs: tuple[str, ...] = ("mask",)  # keyword arrays sliced along their row axis (-2)
    skip: frozenset[str] = field(default_factory=frozenset)  # implementations too large at this size


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


# ---------------------------------------------------------------------------------------------
# inputs


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _qkv_case(
    form: str,
    b: int,
    h: int,
    h_kv: int,
    n: int,
    d: int,
    *,
    causal: bool,
    value_scale: float = 1.0,
    skip: frozenset[str] = frozenset(),
    flop_maps: int = 1,
) -> BenchCase:
    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        rng = _rng(seed)
        q = rng.standard_normal((b, h, n, d))
        k = rng.standard_normal((b, h_kv, n, d))
        v = value_scale * rng.standard_normal((b, h_kv, n, d))
        return (q, k, v), {"causal": causal}

    label = f"B{b}-H{h}" + (f"-Hkv{h_kv}" if h_kv != h else "") + f"-n{n}-d{d}" + ("-causal" if causal else "")
    flops = flop_maps * 4.0 * b * h * n * n * d * (0.5 if causal else 1.0)
    return BenchCase(form, label, make, flops, query_args=(0,), skip=skip)


def _differential_case(
    b: int, h: int, n: int, d: int, *, causal: bool, skip: frozenset[str] = frozenset()
) -> BenchCase:
    base = _qkv_case("differential", b, h, h, n, d, causal=causal, flop_maps=2, skip=skip)

    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        (q1, k1, v), kwargs = base.make(seed)
        (q2, k2, _), _ = base.make(seed + 1)
        return (q1, k1, q2, k2, v), {**kwargs, "lam": 0.6}

    return BenchCase("differential", base.label, make, base.flops, query_args=(0, 2), skip=skip)


def _linear_case(b: int, h: int, n: int, d: int, *, causal: bool) -> BenchCase:
    base = _qkv_case("linear", b, h, h, n, d, causal=causal)
    flops = 4.0 * b * h * n * d * d + (2.0 * b * h * n * 64 * 2 * d if causal else 0.0)
    # causal linear attention is not row-separable (the reference needs n == m): gate on all rows
    return BenchCase("linear", base.label, base.make, flops, query_args=() if causal else (0,))


def _tensor_case(b: int, h: int, n: int, d: int, *, causal: bool) -> BenchCase:
    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        rng = _rng(seed)
        q, k1, k2 = (rng.standard_normal((b, h, n, d)) for _ in range(3))
        v1, v2 = (rng.standard_normal((b, h, n, d)) for _ in range(2))
        return (q, k1, k2, v1, v2), {"causal": causal}

    flops = 4.0 * b * h * n**3 * d / (3.0 if causal else 1.0)
    label = f"B{b}-H{h}-n{n}-d{d}" + ("-causal" if causal else "")
    return BenchCase("tensor", label, make, flops, query_args=() if causal else (0,))


def _simplicial_case(b: int, h: int, n: int, d: int, w1: int, w2: int) -> BenchCase:
    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        rng = _rng(seed)
        q, k1, k2 = (rng.standard_normal((b, h, n, d)) for _ in range(3))
        v1, v2 = (rng.standard_normal((b, h, n, d)) for _ in range(2))
        return (q, k1, k2, v1, v2), {"window1": w1, "window2": w2}

    return BenchCase("simplicial", f"B{b}-H{h}-n{n}-d{d}-w{w1}x{w2}", make, 4.0 * b * h * n * w1 * w2 * d)


def _mla_case(b: int, n: int, d_model: int, heads: int, d_latent: int, *, causal: bool) -> BenchCase:
    from attnlab.reference import MLAWeights

    d_nope, d_rope, d_v = 32, 16, 32

    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        weights = MLAWeights.random(
            seed,
            d_model=d_model,
            n_heads=heads,
            d_latent=d_latent,
            d_q_latent=d_latent,
            d_nope=d_nope,
            d_rope=d_rope,
            d_v=d_v,
        )
        return (_rng(seed).standard_normal((b, n, d_model)), weights), {"causal": causal}

    flops = 4.0 * b * heads * n * n * (2 * d_latent + d_rope) / 2 * (0.5 if causal else 1.0)
    label = f"B{b}-n{n}-D{d_model}-H{heads}-dc{d_latent}" + ("-causal" if causal else "")
    return BenchCase("mla", label, make, flops)


def _interaction_case(b: int, h: int, n: int, d_model: int) -> BenchCase:
    def make(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        rng = _rng(seed)
        x = rng.standard_normal((b, n, d_model))
        alpha = rng.standard_normal((b, h, n, n)) / n
        u = rng.standard_normal((h, d_model, d_model)) / math.sqrt(d_model)
        return (x, alpha, u), {}

    flops = 2.0 * b * h * n * n * d_model + 2.0 * b * n * h * d_model * d_model
    return BenchCase("interaction", f"B{b}-H{h}-n{n}-D{d_model}", make, flops)


BIG_LASER = frozenset({"numpy"})  # the log-domain reference materialises (n, m, d_v) per head


def bench_cases(mode: str) -> list[BenchCase]:
    """Benchmark inputs for ``mode`` in ``{"full", "quick", "tiny"}``."""
    if mode == "tiny":
        return [
            _qkv_case("softmax", 1, 2, 1, 16, 8, causal=True),
            _qkv_case("laser", 1, 2, 2, 16, 8, causal=True, value_scale=2.0),
            _linear_case(1, 2, 16, 8, causal=True),
            _tensor_case(1, 1, 6, 4, causal=True),
            _simplicial_case(1, 1, 12, 4, 3, 4),
            _differential_case(1, 2, 16, 8, causal=True),
            _qkv_case("hamming", 1, 2, 2, 16, 8, causal=True),
            _mla_case(1, 8, 32, 2, 16, causal=True),
            _interaction_case(1, 2, 8, 4),
        ]
    if mode == "quick":
        return [
            _qkv_case("softmax", 1, 8, 8, 512, 64, causal=False),
            _qkv_case("laser", 1, 4, 4, 256, 64, causal=True, value_scale=2.0),
            _linear_case(1, 8, 1024, 64, causal=True),
            _tensor_case(1, 2, 48, 16, causal=False),
            _simplicial_case(1, 2, 128, 16, 16, 16),
            _differential_case(1, 8, 512, 64, causal=True),
            _qkv_case("hamming", 1, 8, 8, 512, 64, causal=True),
            _mla_case(1, 256, 256, 8, 64, causal=True),
            _interaction_case(1, 8, 256, 64),
        ]
    if mode != "full":
        raise ValueError(f"mode: expected 'full', 'quick' or 'tiny', got {mode!r}")
    return [
        _qkv_case("softmax", 1, 8, 8, 2048, 64, causal=False),
        _qkv_case("softmax", 1, 8, 8, 2048, 64, causal=True),
        _qkv_case("laser", 1, 8, 8, 1024, 64, causal=True, value_scale=2.0, skip=BIG_LASER),
        _linear_case(1, 8, 2048, 64, causal=True),
        _tensor_case(1, 2, 96, 16, causal=False),
        _simplicial_case(1, 2, 256, 16, 16, 32),
        _differential_case(1, 8, 1024, 64, causal=True),
        _qkv_case("hamming", 1, 8, 8, 1024, 64, causal=True),
        _mla_case(1, 1024, 256, 8, 64, causal=True),
        _interaction_case(1, 8, 1024, 64),
    ]


# ---------------------------------------------------------------------------------------------
# implementations


def _bare_sdpa(q: Any, k: Any, v: Any, *, causal: bool = False, **_: Any) -> Any:
    """PyTorch SDPA called directly (its top-left ``is_causal`` equals attnlab's causal when n == m)."""
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def implementations(form: str) -> dict[str, Implementation]:
    """The implementations of ``form`` available in this environment, baseline peers included."""
    from attnlab.fastpath.torch import composed

    info = get_form(form)
    peers: dict[str, Callable[..., Any]] = {
        "softmax": composed.composed_softmax,
        "laser": composed.composed_laser_shifted,
        "linear": composed.composed_linear,
        "tensor": composed.composed_tensor,
        "simplicial": composed.composed_simplicial,
        "differential": composed.composed_differential,
        "hamming": composed.composed_hamming,
        "mla": composed.composed_mla,
        "interaction": composed.composed_interaction,
    }
    impls: dict[str, Implementation] = {}
    if form == "softmax":
        impls["sdpa"] = Implementation("sdpa", _bare_sdpa, "torch")
    for name in ("torch", "numba"):
        path = info.fast_paths.get(name)
        if path is not None:
            impls[name] = Implementation(name, path.fn, path.kind, path.prepare)
    impls["composed"] = Implementation(
        "composed", peers[form], "torch", info.fast_paths["torch"].prepare if "torch" in info.fast_paths else None
    )
    impls["numpy"] = Implementation("numpy", info.reference, "numpy", numpy_precision=True)
    return impls


def baseline_name(form: str) -> str:
    return "sdpa" if form == "softmax" else "composed"


# ---------------------------------------------------------------------------------------------
# running


def _convert(impl: Implementation, args: tuple[Any, ...], kwargs: dict[str, Any], dtype: str) -> tuple[tuple, dict]:
    from attnlab.testing import convert_sample

    return convert_sample(SampleInput(args, kwargs), impl, dtype)


def _to_float64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float() if str(x.dtype) == "torch.bfloat16" else x.detach().cpu()
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def _call(impl: Implementation, args: tuple, kwargs: dict, dtype: str) -> Any:
    if impl.numpy_precision:
        with reference_precision(dtype):
            return impl.fn(*args, **kwargs)
    if impl.kind == "torch":
        import torch

        with torch.no_grad():
            return impl.fn(*args, **kwargs)
    return impl.fn(*args, **kwargs)


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1, budget_s: float = 3.0) -> tuple[float, int, Any]:
    """Median wall time of up to ``repeats`` warm calls after ``warmup`` untimed ones (compilation,
    caches); timing stops early, after at least one call, once ``budget_s`` is spent. Returns
    ``(median seconds, calls timed, last output)``."""
    out = None
    for _ in range(warmup):
        out = fn()
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times), out


def _gate_rows(case: BenchCase, args: tuple, kwargs: dict, rows: int) -> tuple[tuple, dict, int | None]:
    """Inputs restricted to the last ``rows`` queries (bottom-right causal alignment is preserved)."""
    if not case.query_args:
        return args, kwargs, None
    n = args[case.query_args[0]].shape[-2]
    if n <= rows:
        return args, kwargs, None
    sliced = tuple(a[..., n - rows :, :] if i in case.query_args else a for i, a in enumerate(args))
    kw = {
        key: (val[..., n - rows :, :] if key in case.row_kwargs and isinstance(val, np.ndarray) else val)
        for key, val in kwargs.items()
    }
    return sliced, kw, rows


def gate(
    case: BenchCase, args: tuple, kwargs: dict, output: Any, dtype: str, rows: int = 32
) -> tuple[str, float | None]:
    """The correctness gate: ``("pass" | "fail: ...", abs error)`` of ``output`` against the float64 reference."""
    reference = get_form(case.form).reference
    g_args, g_kwargs, tail = _gate_rows(case, args, kwargs, rows)
    ref64 = reference(*g_args, **g_kwargs)
    with reference_precision(dtype):
        lowp = reference(*g_args, **g_kwargs)
    got = _to_float64(output)
    if tail is not None:
        got = got[..., -tail:, :]
    try:
        err, _ = assert_within_rule(case.form, ref64, got, lowp, dtype)
    except AssertionError as exc:
        return f"fail: {exc}", None
    return "pass", err.abs


def run_case(
    case: BenchCase, dtype: str, repeats: int, threads: int, only: set[str] | None = None, seed: int = 0
) -> list[Record]:
    """Time every implementation of ``case`` (gated), then fill in the ratios against the peers."""
    args, kwargs = case.make(seed)
    impls = implementations(case.form)
    base = baseline_name(case.form)
    records: dict[str, Record] = {}
    for name, impl in impls.items():
        if name in case.skip or (only is not None and name not in only and name not in (base, "numpy")):
            continue
        try:
            c_args, c_kwargs = _convert(impl, args, kwargs, dtype)
            seconds, timed, out = time_call(functools.partial(_call, impl, c_args, c_kwargs, dtype), repeats)
            verdict, err = gate(case, args, kwargs, out, dtype)
        except Exception as exc:  # a broken implementation is reported, not fatal to the run
            seconds, timed, verdict, err = None, 0, f"error: {type(exc).__name__}: {exc}", None
        gflops = case.flops / seconds / 1e9 if seconds else None
        records[name] = Record(
            case.form, name, case.label, dtype, seconds, timed, base, None, None, verdict, err, gflops, threads
        )
    peer = records.get(base)
    numpy_rec = records.get("numpy")
    for rec in records.values():
        if rec.gate != "pass" or rec.time_s is None:
            continue
        if peer is not None and peer.gate == "pass" and peer.time_s:
            rec.speedup = peer.time_s / rec.time_s
        if numpy_rec is not None and numpy_rec.gate == "pass" and numpy_rec.time_s:
            rec.speedup_vs_numpy = numpy_rec.time_s / rec.time_s
    return list(records.values())


def poly_scaling(
    lengths: tuple[int, ...],
    repeats: int,
    dtype: str = "float64",
    d: int = 8,
    degree: int = 2,
    implementations: tuple[str, ...] = ("numpy", "numba"),
) -> list[dict[str, Any]]:
    """Polynomial-method tensor attention: time against ``n`` and the log-log slope per implementation.

    Inputs are bounded (entries in ``[−1, 1]``) as the method requires; each timing is gated against
    the NumPy polynomial reference at ``n = lengths[0]``.
    """
    import importlib

    from attnlab.reference.tensor_poly import tensor_attention_poly

    impls: dict[str, Callable[..., Any]] = {"numpy": tensor_attention_poly} if "numpy" in implementations else {}
    try:
        numba_tensor = importlib.import_module("attnlab.fastpath.numba.tensor")
        if "numba" in implementations and hasattr(numba_tensor, "tensor_attention_poly"):
            impls["numba"] = numba_tensor.tensor_attention_poly
    except ImportError:
        pass
    records: list[dict[str, Any]] = []
    np_dtype = np.dtype(dtype)
    for name, fn in impls.items():
        times = []
        verdict = "pass"
        for n in lengths:
            rng = _rng(n)
            arrays = [rng.uniform(-1.0, 1.0, (1, 4, n, d)).astype(np_dtype) for _ in range(5)]
            seconds, timed, out = time_call(functools.partial(fn, *arrays, degree=degree), repeats)
            if n == lengths[0]:
                want = tensor_attention_poly(*[a.astype(np.float64) for a in arrays], degree=degree)
                err = float(np.max(np.abs(np.asarray(out, np.float64) - want)))
                tol = 1e-10 if dtype == "float64" else 1e-4
                verdict = "pass" if err <= tol else f"fail: error {err:.2e} > {tol:.0e}"
            times.append(seconds)
            records.append(
                {
                    "form": "tensor_poly",
                    "implementation": name,
                    "shape": f"B1-H4-n{n}-d{d}-g{degree}",
                    "dtype": dtype,
                    "time_s": seconds,
                    "repeats": timed,
                    "gate": verdict,
                }
            )
        slope = float(np.polyfit(np.log(lengths), np.log(times), 1)[0]) if len(lengths) > 1 else None
        records.append(
            {
                "form": "tensor_poly",
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
    scaling: bool = True,
) -> dict[str, Any]:
    """Run the benchmark suite; returns ``{"records": [...], "scaling": [...], "meta": {...}}``."""
    import torch

    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype: expected one of {FLOAT_DTYPES}, got {dtype!r}")
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, getattr(numba.config, "NUMBA_NUM_THREADS", threads)))
    except (ImportError, ValueError):
        pass
    reps = repeats if repeats is not None else {"tiny": 1, "quick": 3, "full": 5}[mode]
    cases = [c for c in bench_cases(mode) if forms is None or c.form in forms]
    lengths = {"tiny": (64, 128), "quick": (512, 2048, 8192), "full": (512, 1024, 2048, 4096, 8192)}[mode]
    with _blas_threads(threads):
        records = [rec.__dict__ for case in cases for rec in run_case(case, dtype, reps, threads, only)]
        poly = poly_scaling(lengths, reps) if scaling and (forms is None or "tensor" in forms) else []
    meta = {
        "mode": mode,
        "dtype": dtype,
        "threads": threads,
        "repeats": reps,
        "torch": torch.__version__,
        "device": "cpu",
        "flop_convention": __doc__.split("FLOP convention (engineering.md §C.2): ")[1]
        .split(" The ``gflops``")[0]
        .replace("\n", " ")
        if __doc__
        else "",
    }
    return {"meta": meta, "records": records, "scaling": poly}


# ---------------------------------------------------------------------------------------------
# CLI


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"attnlab bench ({result['meta']['mode']}, {result['meta']['dtype']}, "
        f"{result['meta']['threads']} thread(s), median of {result['meta']['repeats']})"
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


def register(app: typer.Typer) -> None:
    """Add the ``bench`` verb to the ``attnlab`` CLI."""

    @app.command("bench")
    def bench(
        quick: Annotated[bool, typer.Option("--quick", help="Smaller shapes; finishes in under a minute.")] = False,
        json_output: Annotated[bool, typer.Option("--json", help="Print only the JSON records on stdout.")] = False,
        form: Annotated[list[str] | None, typer.Option("--form", help="Only this form (repeatable).")] = None,
        dtype: Annotated[
            str, typer.Option("--dtype", help="float32 or float64 (CPU); with --device cuda also bfloat16/float16.")
        ] = "float32",
        device: Annotated[
            str, typer.Option("--device", help="cpu (all implementations) or cuda (the torch paths on a GPU).")
        ] = "cpu",
        repeats: Annotated[int | None, typer.Option("--repeats", help="Warm repeats per timing (median).")] = None,
        threads: Annotated[int, typer.Option("--threads", help="Threads for torch and Numba.")] = 1,
        save: Annotated[
            bool, typer.Option("--save", help="Also write the results to results/bench/bench-<mode>-<dtype>.json.")
        ] = False,
        output: Annotated[
            Path | None, typer.Option("--output", help="Write the results (atomically) to this JSON file instead.")
        ] = None,
        tiny: Annotated[
            bool, typer.Option("--tiny", hidden=True, help="Tiny shapes, for testing the harness.")
        ] = False,
        impl: Annotated[
            list[str] | None,
            typer.Option("--impl", hidden=True, help="Only these implementations (plus baseline and NumPy)."),
        ] = None,
        no_scaling: Annotated[
            bool, typer.Option("--no-scaling", hidden=True, help="Skip the polynomial scaling run.")
        ] = False,
    ) -> None:
        """Time the fast paths against SDPA / composed torch / the NumPy reference (gated on correctness)."""
        if device not in ("cpu", "cuda"):
            raise typer.BadParameter(f"expected 'cpu' or 'cuda', got {device!r}", param_hint="--device")
        if device == "cuda":
            _bench_cuda(dtype, repeats, json_output, output)
            return
        mode = "tiny" if tiny else "quick" if quick else "full"
        if form:
            known = {c.form for c in bench_cases(mode)}
            unknown = sorted(set(form) - known)
            if unknown:
                raise typer.BadParameter(f"unknown form(s) {unknown}; known: {sorted(known)}", param_hint="--form")
        result = run_benchmarks(
            mode,
            forms=list(form) if form else None,
            dtype=dtype,
            repeats=repeats,
            threads=threads,
            only=set(impl) if impl else None,
            scaling=not no_scaling,
        )
        if save or output is not None:
            from attnlab.io import atomic_write_json

            atomic_write_json(output if output is not None else default_results_path(mode, dtype), result)
        if json_output:
            typer.echo(json.dumps(result["records"] + result["scaling"], indent=1))
        else:
            _print_table(result)


def _bench_cuda(dtype: str, repeats: int | None, json_output: bool, output: Path | None) -> None:
    import torch

    from attnlab.fastpath.cuda_bench import run_cuda_benchmarks, summary_table

    if not torch.cuda.is_available():
        typer.echo("device: CUDA is not available on this machine; use --device cpu", err=True)
        raise typer.Exit(2)
    result = run_cuda_benchmarks(dtype, repeats or 20)
    if output is not None:
        from attnlab.io import atomic_write_json

        atomic_write_json(output, result)
    typer.echo(json.dumps(result["records"], indent=1) if json_output else summary_table(result))


def default_results_path(mode: str, dtype: str) -> Path:
    """``results/bench/bench-<mode>-<dtype>.json`` under ``$ATTNLAB_RESULTS`` (default ``results``)."""
    return Path(os.environ.get("ATTNLAB_RESULTS", "results")) / "bench" / f"bench-{mode}-{dtype}.json"
