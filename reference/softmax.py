"""Scaled dot-product softmax attention: MHA, MQA and GQA, causal or not.

Source: Vaswani et al. 2017, "Attention Is All You Need"; GQA: Ainslie et al. 2023; causal
alignment for ``m != n`` follows FlashAttention >= 2.1 (bottom-right).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_logsumexp, masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)


def _prepare_scores(
    q: Any, k: Any, *, scale: Any, causal: bool, mask: Any
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Validated ``q``, ``k`` (GQA head map applied), σ and the visibility, for the logits alone."""
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    d_k = q.shape[-1]
    check_last_dim("k", k, d_k, "d_k, the last axis of q")
    q, k, _ = expand_kv_heads(q, k, k[..., :1], names=("q", "k", "k"))
    sigma = check_scale(scale, d_k**-0.5)
    allowed = allowed_positions(q.shape[-2], k.shape[-2], causal=causal, mask=mask, lead=q.shape[:-2])
    return q, k, sigma, allowed


def _prepare_qk(
    q: Any, k: Any, v: Any, *, scale: Any, causal: bool, mask: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """Validated ``q``, ``k``, ``v`` (GQA head map applied, leading dims broadcast), σ and the visibility."""
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    d_k = q.shape[-1]
    check_last_dim("k", k, d_k, "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, d_k**-0.5)
    allowed = allowed_positions(q.shape[-2], k.shape[-2], causal=causal, mask=mask, lead=q.shape[:-2])
    return q, k, v, sigma, allowed


@overflow_checked
def attention_weights(
    q: Any, k: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    """Row-stochastic attention matrix ``A = softmax_row(σ Q Kᵀ + M)``.

    Shapes: ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)`` with ``H % H_kv == 0``; returns
    ``(..., H, n, m)``. Rows with no visible key are all zeros.
    """
    qa, ka, sigma, allowed = _prepare_scores(q, k, scale=scale, causal=causal, mask=mask)
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    return masked_softmax(scores, allowed)


@overflow_checked
def softmax_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Softmax attention ``O = softmax_row(σ Q Kᵀ + M) V``.

    Args:
        q: queries ``(..., H, n, d_k)`` (any leading dims; the head axis is -3 when present).
        k: keys ``(..., H_kv, m, d_k)``; ``H_kv`` divides ``H`` (MQA: 1, GQA: 1 < H_kv < H).
        v: values ``(..., H_kv, m, d_v)``.
        scale: σ, default ``d_k ** -0.5``; must be positive.
        causal: allow key ``j`` for query ``i`` iff ``j <= i + m - n`` (bottom-right alignment).
        mask: boolean array broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64. A query with no visible key returns zeros.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    return masked_softmax(scores, allowed) @ va


@overflow_checked
def softmax_attention_lse(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax attention plus the row log-sum-exp ``lse_i = log Σ_j exp(S_ij)`` (``-inf`` if empty).

    The pair ``(O, lse)`` is what blocked/online kernels merge (the online-softmax combine monoid).
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    return masked_softmax(scores, allowed) @ va, masked_logsumexp(scores, allowed)


def merge_partial_attention(
    out_a: np.ndarray, lse_a: np.ndarray, out_b: np.ndarray, lse_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two normalised partial results by their lse: the online-softmax monoid (Milakov &
    Gimelshein 2018, arXiv 1805.02867).

    ``o = (e^{lse_a} o_a + e^{lse_b} o_b) / (e^{lse_a} + e^{lse_b})``, ``lse = logaddexp``.
    An empty side (``lse = -inf``) is the identity.
    """
    lse = np.logaddexp(lse_a, lse_b)
    safe = np.where(np.isfinite(lse), lse, 0.0)
    wa = np.where(np.isfinite(lse_a), np.exp(lse_a - safe), 0.0)[..., None]
    wb = np.where(np.isfinite(lse_b), np.exp(lse_b - safe), 0.0)[..., None]
    return wa * out_a + wb * out_b, lse
