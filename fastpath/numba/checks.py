"""Parity checks of a Numba fast path against its float64 reference (used by ``tests/fastpath``).

``check_parity`` applies the tolerance rule of :mod:`attnlab.testing`:
``err(fast, ref64) <= k · err(ref at the fast dtype, ref64) + floor[dtype]``, where "ref at the fast
dtype" is the reference run under :func:`attnlab.validation.reference_precision` on the same inputs
cast to that dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.registry import SampleInput
from attnlab.testing import Error, assert_within_rule
from attnlab.validation import reference_precision


def cast_sample(sample: SampleInput, dtype: Any) -> SampleInput:
    """The sample with every float array argument cast to ``dtype`` (masks and options unchanged)."""
    args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in sample.args)
    return SampleInput(args, dict(sample.kwargs), sample.label)


def check_parity(
    name: str, fast: Callable[..., np.ndarray], reference: Callable[..., np.ndarray], sample: SampleInput, dtype: str
) -> tuple[Error, float]:
    """Run ``fast`` at ``dtype`` and assert the tolerance rule and the output dtype; returns (error, bound)."""
    ref64 = sample.call(reference)
    low = cast_sample(sample, np.dtype(dtype))
    with reference_precision(np.dtype(dtype)):
        lowp = low.call(reference)
    got = low.call(fast)
    assert isinstance(got, np.ndarray), f"{name}: expected a NumPy array, got {type(got).__name__}"
    assert got.dtype == np.dtype(dtype), f"{name}: output dtype {got.dtype}, expected {dtype}"
    return assert_within_rule(f"{name} {sample.label}", ref64, got, lowp, dtype)


def check_deterministic(fast: Callable[..., np.ndarray], sample: SampleInput) -> None:
    """Two calls on the same inputs give bit-identical outputs."""
    first, second = sample.call(fast), sample.call(fast)
    assert np.array_equal(first, second, equal_nan=False), "two calls on the same inputs differ"
