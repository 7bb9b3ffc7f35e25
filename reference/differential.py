"""Differential attention, the DIFF Transformer core.

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258). Only the operator
``softmax(Q1 K1ᵀ)V − λ softmax(Q2 K2ᵀ)V`` lives here; the headwise RMSNorm, the ``(1 − λ_init)``
factor and the λ re-parameterisation belong to a module built on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    broadcast_batch,
    check_broadcast_to,
    check_last_dim,
    check_real,
    check_same_length,
    check_scale,
    expand_kv_heads,
    is_real_number,
    overflow_checked,
)

NAMES = ("q1", "k1", "q2", "k2", "v")


def _check_lambda(lam: Any) -> np.ndarray | float:
    """λ: a finite real scalar, or a float array (checked against the output shape by the caller)."""
    if lam is None or isinstance(lam, (bool, np.bool_)) or is_real_number(lam) or isinstance(lam, complex):
        return check_real("lam", lam, what="a finite float or a float array broadcastable to (..., H, n, 1)")
    return as_float_array("lam", lam, min_ndim=0)


def check_differential(
    q1: Any, k1: Any, q2: Any, k2: Any, v: Any, *, lam: Any, scale: Any, causal: Any, mask: Any
) -> tuple[list[np.ndarray], np.ndarray | float, tuple[int, ...]]:
    """Validate a differential-attention call under the caller's argument names.

    Returns the five arrays (in the compute dtype), λ, and the output shape ``(..., H, n, d_v)``.
    """
    arrays = [as_float_array(name, a) for name, a in zip(NAMES, (q1, k1, q2, k2, v))]
    q1, k1, q2, k2, v = arrays
    for name, arr in (("k1", k1), ("q2", q2), ("k2", k2)):
        check_last_dim(name, arr, q1.shape[-1], "d, the last axis of q1")
    check_same_length(("k1", "k2", "v"), (k1, k2, v))
    check_same_length(("q1", "q2"), (q1, q2))
    q1e, _, _ = expand_kv_heads(q1, k1, v, names=("q1", "k1", "v"))
    q2e, _, _ = expand_kv_heads(q2, k2, v, names=("q2", "k2", "v"))
    lead = broadcast_batch(("q1", "q2"), (q1e, q2e))
    check_scale(scale, q1.shape[-1] ** -0.5)
    allowed_positions(q1.shape[-2], k1.shape[-2], causal=causal, mask=mask, lead=lead)
    out_shape = (*lead, q1.shape[-2], v.shape[-1])
    lam_value = _check_lambda(lam)
    if isinstance(lam_value, np.ndarray):
        check_broadcast_to("lam", lam_value.shape, out_shape, "a float or an array")
    return arrays, lam_value, out_shape


@overflow_checked
def differential_attention(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Differential attention ``O = softmax(σ Q1 K1ᵀ + M) V − λ · softmax(σ Q2 K2ᵀ + M) V``.

    Args:
        q1, q2: ``(..., H, n, d)``; k1, k2: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``
            (DIFF v1 uses ``d_v = 2d``).
        lam: λ, a float (v1: one scalar per layer) or an array broadcastable to ``(..., H, n, 1)``
            (v2: token- and head-dependent).
        scale: σ, default ``d ** -0.5``. causal, mask: as :func:`softmax_attention`.

    Returns:
        ``(..., H, n, d_v)``; the combined weights of each row sum to ``1 − λ``.
    """
    (q1, k1, q2, k2, v), lam_value, _ = check_differential(
        q1, k1, q2, k2, v, lam=lam, scale=scale, causal=causal, mask=mask
    )
    first = softmax_attention(q1, k1, v, scale=scale, causal=causal, mask=mask)
    second = softmax_attention(q2, k2, v, scale=scale, causal=causal, mask=mask)
    return first - lam_value * second
