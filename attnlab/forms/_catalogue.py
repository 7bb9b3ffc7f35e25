"""Helpers shared by the catalogue-II form declarations (agent, flow, softplus, affine-scaled, GAAM, LLA,
InfSA): bad inputs of calls with extra positional arrays, per-row visibility counts, option strategies.

Like :mod:`attnlab.forms._shared`, nothing here reuses a reference's own helpers: counts and
visibility are rebuilt from the definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from attnlab.core import BadInput, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh


def with_extra_args(cases: Sequence[BadInput], extra: tuple[Any, ...], base_arity: int = 3) -> list[BadInput]:
    """Append the positional arrays after ``(q, k, v)`` to bad-input cases built for a 3-argument call."""
    return [replace(case, args=(*case.args, *extra)) if len(case.args) == base_arity else case for case in cases]


def bad_named_arrays(names: Sequence[str], sample: SampleInput, keep: Sequence[str]) -> list[BadInput]:
    """:func:`attnlab.forms._shared.bad_arrays` restricted to the arguments named in ``keep``."""
    return [case for case in sh.bad_arrays(names, sample) if case.label.split("-")[0] in keep]


def visible_counts(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``(..., n, 1)`` number of keys each query sees (bottom-right causal and the mask)."""
    return np.sum(sh.visible_of(sample, q, k), axis=-1, keepdims=True)


def self_attention(shape: Shape) -> Shape:
    """The shape with ``m = n`` (for forms defined on one token set)."""
    return replace(shape, m=None)


def no_mask_no_causal(shape: Shape) -> Shape:
    return replace(shape, masked=False, causal=False)


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
