"""Errors and the tolerance rule, defined once.

``assert_close`` reports the max absolute and the relative-RMS error (flash-linear-attention's
convention); the tolerance rule (PyTorch ``test_transformers.py``, FlashAttention's tests) is::

    err(fast, ref64) <= k · err(oracle at the fast dtype, ref64) + floor[dtype]

with ``err`` the max absolute error, ``ref64`` the float64 NumPy reference, and "oracle at the fast
dtype" the form's composed-torch oracle run in the fast path's dtype on the same device: the same math,
rounded the way the problem itself rounds at that precision. Its error is measured as the worst over the
oracle on the input and on two one-ulp jitters of it: on ill-conditioned inputs (logits of 1e3 in
float32) one evaluation's error is a single draw of the rounding noise, and two equally valid float32
evaluations differed by more than 5x on 7 % of such samples (24x at worst); with the jittered draws no
sample of 300 exceeded 3.2x. ``k`` and ``floor`` come from the fast path's declared
:class:`attnlab.core.Tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnlab.core import Tolerance


def to_numpy(x: Any) -> np.ndarray:
    """A tensor or array as float64 (complex128 for complex inputs) NumPy, on the CPU."""
    if hasattr(x, "detach"):
        import torch

        x = x.detach().cpu().resolve_conj()
        x = (x.to(torch.complex128) if x.is_complex() else x.double()).numpy()
    arr = np.asarray(x)
    return arr.astype(np.complex128 if np.iscomplexobj(arr) else np.float64, copy=False)


@dataclass(frozen=True)
class Error:
    """Max absolute error, relative RMS error ``rms(got − want) / rms(want)`` and where the max is."""

    abs: float
    rel_rms: float
    index: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = f" at {list(self.index)}" if self.index else ""
        return f"abs {self.abs:.3e}{where}, rel-RMS {self.rel_rms:.3e}"


def error(want: Any, got: Any) -> Error:
    """The error of ``got`` against ``want`` (inf where ``got`` has NaN that ``want`` has not)."""
    want_np, got_np = to_numpy(want), to_numpy(got)
    if want_np.shape != got_np.shape:
        raise AssertionError(f"shape mismatch: want {want_np.shape}, got {got_np.shape}")
    if want_np.size == 0:
        return Error(0.0, 0.0)
    bad = np.isnan(got_np) & ~np.isnan(want_np)
    if bad.any():
        return Error(float("inf"), float("inf"), tuple(int(i) for i in np.argwhere(bad)[0]))
    diff = np.abs(np.where(np.isnan(want_np), 0.0, got_np - want_np))
    flat = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    abs_err = float(diff.flat[flat])
    rms_want = float(np.sqrt(np.mean(np.abs(np.where(np.isnan(want_np), 0.0, want_np)) ** 2)))
    rel = float(np.sqrt(np.mean(diff**2))) / rms_want if rms_want > 0 else abs_err
    return Error(abs_err, rel, index)


def first_difference(want: Any, got: Any, bound: float) -> tuple[int, ...] | None:
    """The first index (C order) where ``|got − want| > bound`` or ``got`` is NaN where ``want`` is not."""
    want_np, got_np = to_numpy(want), to_numpy(got)
    with np.errstate(invalid="ignore"):
        wrong = (np.abs(got_np - want_np) > bound) | (np.isnan(got_np) & ~np.isnan(want_np))
    hits = np.argwhere(wrong)
    return tuple(int(i) for i in hits[0]) if len(hits) else None


def assert_close(name: str, want: Any, got: Any, *, atol: float = 1e-6, rel_rms: float | None = None) -> Error:
    """Assert ``max|got − want| <= atol`` or, if given, relative RMS ``<= rel_rms``; NaN where ``want``
    has none always fails. The message reports both errors."""
    err = error(want, got)
    if err.abs == float("inf"):
        raise AssertionError(f"{name}: output has NaN where the reference has none (first at {list(err.index)})")
    if not (err.abs <= atol or (rel_rms is not None and err.rel_rms <= rel_rms)):
        bound = f"atol {atol:.1e}" + (f" / rel-RMS {rel_rms:.1e}" if rel_rms is not None else "")
        raise AssertionError(f"{name}: {err} exceeds {bound}")
    return err


@dataclass(frozen=True)
class Judgement:
    """The tolerance rule applied to one output: passed, the error, its bound and the oracle's error."""

    passed: bool
    error: Error
    bound: float
    oracle_error: float
    dtype: str
    first_index: tuple[int, ...] | None = None
    problem: str = ""

    def message(self, name: str) -> str:
        if self.problem:
            return f"{name} [{self.dtype}]: {self.problem}"
        return (
            f"{name} [{self.dtype}]: {self.error} > bound {self.bound:.3e} "
            f"(= k x {self.oracle_error:.3e}, the oracle's error at {self.dtype}, + floor)"
            + (f"; first differing index {list(self.first_index)}" if self.first_index else "")
        )


def oracle_error(ref64: Any, oracle_lowp: Any) -> float:
    """The noise level ``err(oracle at the fast dtype, ref64)``: the worst of the given oracle outputs (one,
    or the oracle on the input and on its one-ulp jitters; see :func:`attnlab.testing.parity.oracle_outputs`)."""
    outputs = oracle_lowp if isinstance(oracle_lowp, list) else [oracle_lowp]
    errors = [error(ref64, out).abs for out in outputs if out is not None]
    return max(errors) if errors else 0.0


def judge(ref64: Any, got: Any, oracle_lowp: Any, dtype: str, tolerance: Tolerance | None = None) -> Judgement:
    """Apply the tolerance rule to ``got`` (never raises on a wrong output: see :class:`Judgement`).

    ``oracle_lowp`` is the oracle's output at the fast dtype, or a list of them (on the input and on its
    one-ulp jitters): the rule's noise term is the worst of their errors.
    """
    tolerance = tolerance or Tolerance()
    ref_np, got_np = to_numpy(ref64), to_numpy(got)
    oracle_err = oracle_error(ref_np, oracle_lowp)
    bound = tolerance.bound(oracle_err, dtype)
    if ref_np.shape != got_np.shape:
        problem = f"output shape {got_np.shape}, expected {ref_np.shape}"
        return Judgement(False, Error(float("inf"), float("inf")), bound, oracle_err, dtype, None, problem)
    err = error(ref_np, got_np)
    passed = err.abs <= bound
    first = None if passed else first_difference(ref_np, got_np, bound)
    problem = "output has NaN where the reference has none" if err.abs == float("inf") else ""
    return Judgement(passed, err, bound, oracle_err, dtype, first, problem)


def assert_within_rule(
    name: str, ref64: Any, got: Any, oracle_lowp: Any, dtype: str, tolerance: Tolerance | None = None
) -> Judgement:
    """Assert the tolerance rule; returns the judgement (error and bound) when it holds."""
    verdict = judge(ref64, got, oracle_lowp, dtype, tolerance)
    if not verdict.passed:
        raise AssertionError(verdict.message(name))
    return verdict
