"""Checks and mutants shared by the structured-scoring forms (BTT, sequence MLR, bilinear MLR).

Written from the definitions, independently of the reference modules they judge: a layer norm without
affine parameters, the released code's RMS cap of a weight, the softmax-or-identity link on explicit
queries and keys, the row-stochastic check of the softmax link, and the mutants that plant a weight
leak or an always-active cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.core import Invariant, Mutant, SampleInput
from attnlab.forms import _shared as sh
from attnlab.reference.softmax import softmax_attention


def layer_norm(x: np.ndarray) -> np.ndarray:
    """``(x − mean) / √(biased var + 1e-5)`` over the last axis."""
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5)


def cap_scale(weight: np.ndarray, fan_in: int, fan_out: int) -> float:
    """``RMS(W) / √(min(fan_in, fan_out)/fan_in²)`` with ``RMS = √(mean W² + 1e-8)``: above 1, the cap shrinks."""
    return math.sqrt(float((weight**2).mean()) + 1e-8) / math.sqrt(min(fan_in, fan_out) / fan_in**2)


def rms_cap(weight: np.ndarray, fan_in: int, fan_out: int) -> np.ndarray:
    return weight / max(1.0, cap_scale(weight, fan_in, fan_out))


def softmax_link(sample: SampleInput) -> bool:
    return sample.kwargs.get("link", "softmax") == "softmax"


def attend(sample: SampleInput, queries: np.ndarray, keys: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Softmax attention (or the sample's identity link) on explicit per-head queries and keys."""
    kw = sample.kwargs
    lead = np.broadcast_shapes(queries.shape[:-2], keys.shape[:-2], v.shape[:-2])
    q, k, vv = (np.broadcast_to(t, (*lead, *t.shape[-2:])) for t in (queries, keys, v))
    if softmax_link(sample):
        return softmax_attention(q, k, vv, scale=scale, causal=kw.get("causal", False), mask=kw.get("mask"))
    vis = sh.visibility(q.shape[-2], k.shape[-2], kw.get("causal", False), kw.get("mask"), lead)
    return np.where(vis, scale * q @ np.swapaxes(k, -1, -2), 0.0) @ vv


def rows_sum_to_one(op: str, *, query_arg: int = 0, key_arg: int = 1, value_arg: int = 2) -> Invariant:
    """Softmax link: the weights (the output for ``V = I``) are >= 0, vanish on hidden keys, sum to 1."""

    def check(ops: Any, sample: SampleInput) -> None:
        v = sample.args[value_arg]
        n, m = sample.args[query_arg].shape[-2], sample.args[key_arg].shape[-2]
        args = list(sample.args)
        args[value_arg] = np.broadcast_to(np.eye(m), (*v.shape[:-2], m, m))
        weights = getattr(ops, op)(*args, **sample.kwargs)
        vis = np.broadcast_to(
            sh.visibility(n, m, sample.kwargs.get("causal", False), sample.kwargs.get("mask"), weights.shape[:-2]),
            weights.shape,
        )
        assert np.all(weights >= 0) and np.all(weights[~vis] == 0.0), "a negative weight, or a weight on a hidden key"
        sh.close("row sums", weights.sum(-1), np.any(vis, axis=-1).astype(float))

    return Invariant(
        "rows_sum_to_one",
        "softmax link: the weights (the output for V = I) are >= 0, vanish on hidden keys and sum to 1",
        check,
        ("weights_leak",),
        softmax_link,
    )


def weights_leak() -> Mutant:
    """``masked_softmax`` weights scaled by ``1 − 1e-6`` (a denominator slack)."""

    def make(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def leaky(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
            return original(x, allowed, axis) * (1 - 1e-6)

        return leaky

    return Mutant("weights_leak", "softmax weights scaled by 1 − 1e-6", {"masked_softmax": make})


def cap_always(description: str) -> Mutant:
    """The RMS cap divides every weight by its ratio to the init scale, also weights below it."""

    def make(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def always(weight: np.ndarray, fan_in: int, fan_out: int) -> np.ndarray:
            return weight / cap_scale(weight, fan_in, fan_out)

        return always

    return Mutant("cap_always", description, {"rms_cap": make})
