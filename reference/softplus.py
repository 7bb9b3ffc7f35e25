"""Softplus attention with a length-dependent scale (LSSA) and its power re-weighting (LSSAR).

Source: Gao, Spratling & Gionfrida 2025, "Softplus Attention with Re-weighting Boosts Length
Extrapolation in Large Language Models" (arXiv 2501.13428; abstract-level reading). The abstract
decomposes softmax into a positivity map and an l1-normalisation, replaces the exponential by Softplus,
adds "a dynamic scale factor based on invariance entropy", and a second "re-weighting" stage that
"amplifies significant attentional weights while diminishing weaker ones". attnlab's reading:

    LSSA:   A_ij = softplus(κ_i s_ij) / Σ_{j' visible} softplus(κ_i s_ij'),   s_ij = σ q_i·k_j,
            κ_i = log N_i / log N_0   (N_i visible keys of query i, N_0 = ``base_length``),
    LSSAR:  Ã_ij = A_ij^p / Σ_{j'} A_ij'^p              (``reweight="power"``), or
            Ã_ij ∝ ReLU(N_i A_ij − 1)^p                 (``reweight="threshold"``: weights below the
            uniform 1/N_i are dropped; a row with none above it keeps A),

and ``O = Ã V``. The scale is the entropy-invariant ``log_{N_0} N`` factor (1 at the base length); the
paper's exact scale function and re-weighting rule are not in the abstract, so both are arguments.

Evaluation: ``A = softmax(log softplus(κ s))`` and ``A^p/ΣA^p = softmax(p · log softplus(κ s))`` over the
visible keys, with ``log softplus`` computed without underflow, so rows whose scores are all very
negative still get their (softmax-like) weights instead of 0/0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_bool,
    check_last_dim,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)

REWEIGHTS = ("power", "threshold")
DEFAULT_BASE_LENGTH = 512


def log_softplus(x: np.ndarray) -> np.ndarray:
    """``log(log(1 + e^x))`` for every real ``x``: ``x + log(log1p(e^x)/e^x)`` below 0, direct above."""
    neg = np.minimum(x, 0.0)
    y = np.exp(neg)
    ratio = np.where(y > 0.0, np.log1p(y) / np.where(y > 0.0, y, 1.0), 1.0)
    pos = np.maximum(x, 0.0)
    return np.where(x <= 0.0, neg + np.log(ratio), np.log(pos + np.log1p(np.exp(-pos))))


def length_scales(counts: np.ndarray, base_length: int) -> np.ndarray:
    """``κ_i = log N_i / log N_0`` (0 for ``N_i <= 1``, where a row has at most one key)."""
    return np.log(np.maximum(counts, 1.0)) / math.log(base_length)


def softplus_weights(
    logits: np.ndarray, allowed: np.ndarray, kappa: np.ndarray, power: float | None, reweight: str
) -> np.ndarray:
    """The (re-weighted) LSSA weights of scaled logits, zero rows where nothing is visible."""
    log_weights = log_softplus(kappa * logits)
    if power is None:
        return masked_softmax(log_weights, allowed)
    if reweight == "power":
        return masked_softmax(power * log_weights, allowed)
    base = masked_softmax(log_weights, allowed)
    counts = np.sum(np.broadcast_to(allowed, base.shape), axis=-1, keepdims=True).astype(base.dtype)
    excess = counts * base - 1.0
    above = np.broadcast_to(allowed, base.shape) & (excess > 0.0)
    sharpened = masked_softmax(power * np.log(np.where(above, excess, 1.0)), above)
    return np.where(np.any(above, axis=-1, keepdims=True), sharpened, base)


def check_power(power: Any) -> float | None:
    if power is None:
        return None
    if isinstance(power, (bool, np.bool_)) or not isinstance(power, (int, float, np.number)):
        raise TypeError(f"power: expected a positive float or None, got {type(power).__name__}")
    if not np.isfinite(power) or power <= 0:
        raise ValueError(f"power: expected a positive finite float, got {power!r}")
    return float(power)


@overflow_checked
def softplus_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    length_scale: bool = True,
    base_length: int = DEFAULT_BASE_LENGTH,
    power: float | None = None,
    reweight: str = "power",
) -> np.ndarray:
    """LSSA (``power=None``) or LSSAR: ``O = Ã V`` with softplus weights on length-scaled logits.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv`` divides ``H``.
        scale: σ of the logits ``s = σ q·k``, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.
        length_scale: multiply the logits of row ``i`` by ``κ_i = log N_i / log N_0``; False: ``κ = 1``.
        base_length: ``N_0``, the length at which ``κ = 1`` (the training length).
        power: the re-weighting exponent ``p`` (LSSAR); None for LSSA. ``p = 1`` is LSSA again.
        reweight: ``"power"`` (``A^p`` renormalised) or ``"threshold"`` (``ReLU(N A − 1)^p`` renormalised).

    Returns:
        ``(..., H, n, d_v)``; rows with no visible key are zeros. The weights are >= 0 and sum to 1, but,
        unlike softmax, they change when a constant is added to a row of logits.
    """
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    length_scale = check_bool("length_scale", length_scale)
    base_length = check_positive_int("base_length", base_length)
    if base_length < 2:
        raise ValueError(f"base_length: expected at least 2 (log N_0 is the denominator), got {base_length}")
    p = check_power(power)
    if reweight not in REWEIGHTS:
        raise ValueError(f"reweight: expected one of {REWEIGHTS}, got {reweight!r}")
    n, m = q.shape[-2], k.shape[-2]
    allowed = np.broadcast_to(
        allowed_positions(n, m, causal=causal, mask=mask, lead=q.shape[:-2]), (*q.shape[:-2], n, m)
    )
    counts = allowed.sum(axis=-1, keepdims=True).astype(q.dtype)
    kappa = length_scales(counts, base_length) if length_scale else np.ones_like(counts)
    logits = sigma * (q @ np.swapaxes(k, -1, -2))
    return softplus_weights(logits, allowed, kappa, p, reweight) @ v
