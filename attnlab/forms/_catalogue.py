"""Helpers the catalogue-II form declarations share (Hedgehog, BASED, GNA, NSA, prime, Aaren, Sinkhorn, HSA).

Small pieces only: a mutant built from a wrapper of the operator, hypothesis option drawers, the
identity-value trick that reads an operator's weights, and sample builders for forms whose inputs are
not the plain ``(q, k, v)`` of :func:`attnlab.forms._shared.attention_sample`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from attnlab.core import Mutant, SampleInput, Shape


def wrapping(
    name: str, description: str, attr: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Mutant:
    """A mutant that replaces the reference module's ``attr`` by ``wrapper(original)``."""
    return Mutant(name, description, {attr: wrapper})


def replacing(name: str, description: str, attr: str, replacement: Callable[..., Any]) -> Mutant:
    """A mutant that replaces the reference module's ``attr`` by ``replacement`` outright."""
    return Mutant(name, description, {attr: lambda original: replacement})


def identity_values(k: np.ndarray) -> np.ndarray:
    """``V = I_m`` broadcast over ``k``'s leading dims: an operator's output on it is its weight matrix."""
    m = k.shape[-2]
    return np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m)).copy()


def weights_of(
    op: Callable[..., np.ndarray], sample: SampleInput, value_index: int = 2, **overrides: Any
) -> np.ndarray:
    """The ``(..., n, m)`` weight matrix of a value-linear operator, read as its output on ``V = I``."""
    args = list(sample.args)
    args[value_index] = identity_values(np.asarray(args[1]))
    return sample.with_args(*args, **overrides).call(op)


def draw_options(draw: Any, choices: dict[str, Sequence[Any]], optional: Sequence[str] = ()) -> dict[str, Any]:
    """One value per option in ``choices``; the options in ``optional`` are left out half of the time."""
    out: dict[str, Any] = {}
    for name, values in choices.items():
        if name in optional and not draw(st.booleans()):
            continue
        out[name] = draw(st.sampled_from(list(values)))
    return out


def log_uniform(draw: Any, lo: float, hi: float) -> float:
    return float(np.exp(draw(st.floats(np.log(lo), np.log(hi)))))


def self_attention(shape: Shape) -> Shape:
    """The shape as self-attention without a mask (``m = n``): for forms defined on one sequence."""
    from dataclasses import replace

    return replace(shape, m=None, masked=False)


def rows_in_hull(out: np.ndarray, values: np.ndarray, visible: np.ndarray, what: str) -> None:
    """Assert each output coordinate lies between the min and max of its row's visible values.

    ``values`` is ``(..., m, d_v)`` (or ``(..., n, m, d_v)`` for per-pair values) and ``visible``
    ``(..., n, m)``; rows with no visible value must be zero.
    """
    vis = visible[..., None]
    vals = values if values.ndim == visible.ndim + 1 else values[..., None, :, :]
    lo = np.min(np.where(vis, vals, np.inf), axis=-2)
    hi = np.max(np.where(vis, vals, -np.inf), axis=-2)
    has = np.any(vis, axis=-2)
    tol = 1e-12 * (1 + np.abs(values).max())
    inside = ~has | ((out >= lo - tol) & (out <= hi + tol))
    assert np.all(inside), f"{what}: output left the hull of the visible values at {np.argwhere(~inside)[0].tolist()}"
    assert np.all(out[np.broadcast_to(~has, out.shape)] == 0.0), f"{what}: a row with no visible value is not zero"
