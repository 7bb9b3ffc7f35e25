"""Affine-Scaled Attention: softmax weights rescaled by a per-query scale and shifted by a per-query bias.

Source: Bae, Park, Park, Kim, Lee, Yoo, Woo, Ryu, Kwon & Lee 2026, "Affine-Scaled Attention: Towards
Flexible and Stable Transformer Attention" (arXiv 2602.23057v1, abstract). The abstract states that
the method "introduces input-dependent scaling and a corresponding bias term applied to
softmax-normalized attention weights"; it gives no equation. The operator here is attnlab's reading:

    O_i = Σ_{j visible to i} (α_i a_ij + β_i) v_j,    a_i = softmax_j(σ q_i·k_j over visible j),

with ``α_i`` and ``β_i`` per (head, query), supplied as arrays (the model computes them from the
token's hidden state). Whether β is free or tied to α is not stated; both are offered: a free ``beta``
array, or ``tie_beta=True`` for ``β_i = (1 − α_i)/N_i`` (``N_i`` visible keys), the one choice that
restores unit row sums. Since the bias is the same for every visible key, the operator splits as

    O_i = α_i · SDPA_i + β_i · Σ_{j visible} v_j,

which is how it is evaluated (softmax attention plus a masked prefix sum of the values).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_bool,
    check_last_dim,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)


def row_array(name: str, x: Any, lead: tuple[int, ...], n: int) -> np.ndarray:
    """Validate a per-query array broadcastable to ``(*lead, n, 1)`` and return it broadcast."""
    arr = as_float_array(name, x)
    target = (*lead, n, 1)
    try:
        fits = arr.shape[-1] == 1 and arr.ndim <= len(target) and np.broadcast_shapes(arr.shape, target) == target
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name}: expected one value per query, shape broadcastable to {target}, got shape {arr.shape}"
        )
    return np.broadcast_to(arr, target)


def visible_value_sums(v: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``Σ_{j visible to i} v_j`` for every query: ``(..., n, d_v)``."""
    return np.broadcast_to(allowed, (*v.shape[:-2], allowed.shape[-2], v.shape[-2])).astype(v.dtype) @ v


@overflow_checked
def affine_scaled_attention(
    q: Any,
    k: Any,
    v: Any,
    alpha: Any,
    beta: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    tie_beta: bool = False,
) -> np.ndarray:
    """Affine-scaled attention ``O_i = Σ_{j visible} (α_i a_ij + β_i) v_j`` (attnlab's reading).

    Args:
        q: queries ``(..., H, n, d_k)``; k: keys ``(..., H_kv, m, d_k)``; v: values ``(..., H_kv, m, d_v)``;
            ``H_kv`` divides ``H`` (query head ``h`` reads KV head ``h // (H / H_kv)``).
        alpha: the per-query scale α, shape broadcastable to ``(..., H, n, 1)``.
        beta: the per-query bias β, same shape; omitted (None) when ``tie_beta`` is set.
        scale: σ of the softmax logits, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.
        tie_beta: use ``β_i = (1 − α_i)/N_i`` so every visible row of weights sums to 1.

    Returns:
        ``(..., H, n, d_v)``. A query with no visible key returns zeros. With ``α = 1, β = 0`` this is
        softmax attention; the row sums of the weights are ``α_i + N_i β_i``.
    """
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    tie_beta = check_bool("tie_beta", tie_beta)
    lead, n = q.shape[:-2], q.shape[-2]
    allowed = allowed_positions(n, k.shape[-2], causal=causal, mask=mask, lead=lead)
    alpha_rows = row_array("alpha", alpha, lead, n)
    counts = np.broadcast_to(allowed, (*lead, n, k.shape[-2])).sum(axis=-1, keepdims=True).astype(q.dtype)
    if tie_beta:
        if beta is not None:
            raise ValueError("beta: tie_beta=True derives β from α; pass beta=None")
        beta_rows = np.where(counts > 0, (1.0 - alpha_rows) / np.maximum(counts, 1), 0.0)
    else:
        if beta is None:
            raise ValueError("beta: expected an array of per-query biases (or tie_beta=True), got None")
        beta_rows = row_array("beta", beta, lead, n)
    weights = masked_softmax(sigma * (q @ np.swapaxes(k, -1, -2)), allowed)
    return alpha_rows * (weights @ v) + beta_rows * visible_value_sums(v, allowed)
