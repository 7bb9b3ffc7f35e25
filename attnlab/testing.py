"""Testing helpers: ``assert_close`` (abs and relative-RMS error) and the fast-path tolerance rule.

The tolerance rule (PyTorch ``test_transformers.py`` / FlashAttention practice)::

    err(fast, ref64) <= k * err(ref at the fast dtype, ref64) + floor[dtype]

where ``err`` is the max absolute error, ``k`` the fast path's fudge factor (default 5) and ``floor``
a per-dtype absolute noise floor. "ref at the fast dtype" is the *same math* run in the fast path's
precision (:func:`attnlab.validation.reference_precision` for NumPy references), so the bound scales
with the rounding the problem itself induces rather than with a hand-tuned constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnlab.registry import DEFAULT_FLOORS


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class Error:
    """Max absolute error and relative RMS error ``rms(got − want) / rms(want)``."""

    abs: float
    rel_rms: float

    def __str__(self) -> str:
        return f"abs {self.abs:.3e}, rel-RMS {self.rel_rms:.3e}"


def error(want: Any, got: Any) -> Error:
    want_np, got_np = _to_numpy(want), _to_numpy(got)
    if want_np.shape != got_np.shape:
        raise AssertionError(f"shape mismatch: want {want_np.shape}, got {got_np.shape}")
    if want_np.size == 0:
        return Error(0.0, 0.0)
    diff = got_np - want_np
    if np.isnan(diff).any() and not np.isnan(want_np).any():
        return Error(float("inf"), float("inf"))
    abs_err = float(np.max(np.abs(diff)))
    rms_want = float(np.sqrt(np.mean(want_np**2)))
    rel = float(np.sqrt(np.mean(diff**2))) / rms_want if rms_want > 0 else abs_err
    return Error(abs_err, rel)


def assert_close(name: str, want: Any, got: Any, *, atol: float = 1e-6, rel_rms: float | None = None) -> Error:
    """Assert ``got`` matches ``want``: ``max|got − want| <= atol`` or, if given, relative RMS ``<= rel_rms``.

    NaN in ``got`` where ``want`` has none always fails. The message reports both errors.
    """
    err = error(want, got)
    got_np = _to_numpy(got)
    want_np = _to_numpy(want)
    if np.isnan(got_np).any() and not np.isnan(want_np).any():
        raise AssertionError(f"{name}: output has NaN where the reference has none")
    ok = err.abs <= atol or (rel_rms is not None and err.rel_rms <= rel_rms)
    if not ok:
        bound = f"atol {atol:.1e}" + (f" / rel-RMS {rel_rms:.1e}" if rel_rms is not None else "")
        raise AssertionError(f"{name}: {err} exceeds {bound}")
    return err


def tolerance(lowp_error: float, dtype: str, *, fudge: float = 5.0, floors: dict[str, float] | None = None) -> float:
    """``k * err(ref at dtype, ref64) + floor[dtype]``."""
    floor = (floors or {}).get(dtype, DEFAULT_FLOORS.get(dtype, 1e-5))
    return fudge * lowp_error + floor


def assert_within_rule(
    name: str,
    ref64: Any,
    fast: Any,
    lowp: Any,
    dtype: str,
    *,
    fudge: float = 5.0,
    floors: dict[str, float] | None = None,
) -> tuple[Error, float]:
    """Assert the tolerance rule; returns the fast path's error and the bound it was held to."""
    lowp_err = error(ref64, lowp).abs
    bound = tolerance(lowp_err, dtype, fudge=fudge, floors=floors)
    fast_np = _to_numpy(fast)
    if np.isnan(fast_np).any() and not np.isnan(_to_numpy(ref64)).any():
        raise AssertionError(f"{name}: output has NaN where the reference has none (unwritten element?)")
    err = error(ref64, fast)
    if err.abs > bound:
        raise AssertionError(
            f"{name} [{dtype}]: {err} > bound {bound:.3e} = {fudge} x {lowp_err:.3e} (same math at {dtype}) + floor"
        )
    return err, bound


def convert_sample(
    sample: Any, path: Any, dtype: str, device: str = "cpu", requires_grad: bool = False
) -> tuple[tuple, dict]:
    """Cast a :class:`~attnlab.registry.SampleInput` for a fast path.

    Float arrays become ``dtype`` arrays (NumPy kinds) or tensors on ``device`` (torch kinds, with
    ``requires_grad`` on the positional float arrays); boolean arrays become boolean arrays/tensors;
    everything else passes through. A path's own ``prepare`` hook runs afterwards.
    """

    def convert(value: Any, grad: bool) -> Any:
        if not isinstance(value, np.ndarray):
            return value
        if path.kind == "numpy":
            return value if value.dtype == np.bool_ else np.ascontiguousarray(value, dtype=np.dtype(dtype))
        import torch

        if value.dtype == np.bool_:
            return torch.from_numpy(np.ascontiguousarray(value)).to(device)
        tensor = torch.tensor(value, dtype=getattr(torch, dtype), device=device)
        return tensor.requires_grad_(grad) if grad else tensor

    args = tuple(convert(a, requires_grad) for a in sample.args)
    kwargs = {k: convert(v, False) for k, v in sample.kwargs.items()}
    if path.prepare is not None:
        args, kwargs = path.prepare(args, kwargs, dtype, device)
    return args, kwargs
