"""GPU timings of the Torch fast paths (``attnlab bench --device cuda``).

Each form's torch fast path, its composed-torch peer and, for softmax and LASER, bare PyTorch
``scaled_dot_product_attention`` (SDPA) are timed on the same CUDA inputs with CUDA events (warm-up,
then the median of ``repeats``). ``speedup`` is ``baseline_time / time`` with ``baseline = sdpa`` for
softmax and LASER (LASER costs SDPA plus two elementwise passes, so its ratio against SDPA says how
close to "free" the exponential transformation is) and ``composed`` otherwise.

Correctness gate: an implementation's output must satisfy
``err(impl, golden) <= 5·err(composed at the dtype, golden) + floor`` where ``golden`` is the composed
math in float64 on the same device; a red gate reports the time and no speedup. TF32 is off.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

from attnlab.registry import get_form
from attnlab.testing import assert_within_rule

#: (form, batch, heads, length, head dim, causal) of the GPU benchmark shapes.
CUDA_SHAPES: tuple[tuple[str, int, int, int, int, bool], ...] = (
    ("softmax", 4, 16, 4096, 128, False),
    ("softmax", 4, 16, 4096, 128, True),
    ("laser", 4, 16, 4096, 128, False),
    ("laser", 4, 16, 4096, 128, True),
    ("differential", 4, 16, 4096, 128, True),
    ("hamming", 4, 16, 4096, 128, True),
    ("linear", 4, 16, 4096, 128, True),
)


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


def _inputs(form: str, b: int, h: int, n: int, d: int, causal: bool, dtype: Any) -> tuple[tuple, dict]:
    import torch

    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float64).to(dtype)

    kwargs: dict[str, Any] = {"causal": causal}
    if form == "differential":
        kwargs["lam"] = 0.5
        return (randn(b, h, n, d), randn(b, h, n, d), randn(b, h, n, d), randn(b, h, n, d), randn(b, h, n, d)), kwargs
    return (randn(b, h, n, d), randn(b, h, n, d), randn(b, h, n, d)), kwargs


def run_cuda_benchmarks(dtype: str = "bfloat16", repeats: int = 20) -> dict[str, Any]:
    """Time the torch fast paths on the current CUDA device; returns ``{"meta", "records"}``."""
    import torch
    import torch.nn.functional as F

    from attnlab.fastpath.torch import composed

    if not torch.cuda.is_available():
        raise RuntimeError("device: CUDA is not available on this machine")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    peers: dict[str, Callable[..., Any]] = {
        "softmax": composed.composed_softmax,
        "laser": composed.composed_laser_shifted,
        "differential": composed.composed_differential,
        "hamming": composed.composed_hamming,
        "linear": composed.composed_linear,
    }
    torch_dtype = getattr(torch, dtype)
    records = []
    for form, b, h, n, d, causal in CUDA_SHAPES:
        args, kwargs = _inputs(form, b, h, n, d, causal, torch_dtype)
        impls: dict[str, Callable[..., Any]] = {"torch": get_form(form).fast_paths["torch"].fn, "composed": peers[form]}
        if form in ("softmax", "laser"):
            impls["sdpa"] = lambda q, k, v, causal=False, **_: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        golden = peers[form](*(a.double() for a in args), **kwargs)
        lowp = peers[form](*args, **kwargs)
        times: dict[str, float] = {}
        gates: dict[str, bool] = {}
        for name, fn in impls.items():
            try:
                out = fn(*args, **kwargs)
                if name == "sdpa" and form == "laser":
                    gates[name] = True  # the baseline computes a different operator: timed, not gated
                else:
                    assert_within_rule(f"{form}/{name}", golden, out, lowp, dtype)
                    gates[name] = True
            except (AssertionError, torch.OutOfMemoryError) as err:
                gates[name] = False
                print(f"gate failed for {form}/{name}: {err}")
            times[name] = _cuda_time(functools.partial(fn, *args, **kwargs), repeats)
        baseline = "sdpa" if form in ("softmax", "laser") else "composed"
        for name, ms in times.items():
            records.append(
                {
                    "form": form,
                    "implementation": name,
                    "shape": f"B{b}-H{h}-n{n}-d{d}" + ("-causal" if causal else ""),
                    "dtype": dtype,
                    "device": torch.cuda.get_device_name(),
                    "time_ms": ms,
                    "baseline": baseline,
                    "speedup": times[baseline] / ms if gates[name] else None,
                    "gate": gates[name],
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


def summary_table(result: dict[str, Any]) -> str:
    lines = [f"{'form':<13}{'impl':<10}{'shape':<28}{'ms':>10}{'speedup':>10}  baseline"]
    for rec in result["records"]:
        speed = "-" if rec["speedup"] is None else f"{rec['speedup']:.2f}x"
        lines.append(
            f"{rec['form']:<13}{rec['implementation']:<10}{rec['shape']:<28}{rec['time_ms']:>10.3f}{speed:>10}  "
            f"{rec['baseline']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    from attnlab.io import atomic_write_json

    result = run_cuda_benchmarks(sys.argv[1] if len(sys.argv) > 1 else "bfloat16")
    print(summary_table(result))
    if len(sys.argv) > 2:
        atomic_write_json(sys.argv[2], result)
    print(json.dumps(result["meta"]))
