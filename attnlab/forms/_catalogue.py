"""Helpers the catalogue-II form declarations share (Hedgehog, BASED, GNA, NSA, prime, Aaren, Sinkhorn, HSA,
agent, flow, softplus, affine-scaled, GAAM, LLA).

Small pieces only: a mutant built from a wrapper of the operator, the generic attention mutants,
hypothesis option drawers, the identity-value trick that reads an operator's weights, bad inputs of
calls with extra positional arrays, per-row visibility counts, and sample builders for forms whose
inputs are not the plain ``(q, k, v)`` of :func:`attnlab.forms._shared.attention_sample`. Like
:mod:`attnlab.forms._shared`, nothing here reuses a reference's own helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from attnlab.core import BadInput, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh


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


def with_extra_args(cases: Sequence[BadInput], extra: tuple[Any, ...], base_arity: int = 3) -> list[BadInput]:
    """Append the positional arrays after ``(q, k, v)`` to bad-input cases built for a 3-argument call."""
    return [replace(case, args=(*case.args, *extra)) if len(case.args) == base_arity else case for case in cases]


def bad_named_arrays(names: Sequence[str], sample: SampleInput, keep: Sequence[str]) -> list[BadInput]:
    """:func:`attnlab.forms._shared.bad_arrays` restricted to the arguments named in ``keep``."""
    return [case for case in sh.bad_arrays(names, sample) if case.label.split("-")[0] in keep]


def visible_counts(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``(..., n, 1)`` number of keys each query sees (bottom-right causal and the mask)."""
    return np.sum(sh.visible_of(sample, q, k), axis=-1, keepdims=True)


def rng_for(seed: int, salt: int) -> np.random.Generator:
    """A generator for a form's extra arrays, independent of the one that drew ``(q, k, v)``."""
    return np.random.default_rng([seed, salt])


def attention_mutants(op: str) -> tuple[Mutant, ...]:
    """The generic mutants of a ``(q, k, v, *, scale, causal, mask)`` operator named ``op`` in its module:
    top-left and off-by-one causal, interleaved GQA, a dropped last key, a wrong default scale, an ignored mask
    and a nudged output row."""
    return (
        sh.top_left_causal(op),
        sh.leaky_causal(op),
        sh.interleaved_gqa(op, (1, 2)),
        sh.drops_last_key(op, (1, 2)),
        sh.wrong_default_scale(op),
        sh.ignores_mask(op),
        sh.output_nudged(op),
    )
