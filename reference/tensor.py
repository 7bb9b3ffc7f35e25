"""Tensor (Kronecker) attention and causal windowed 2-simplicial attention.

Sources: Alman & Song, "How to Capture Higher-order Correlations? Generalizing Matrix Softmax
Attention to Kronecker Computation", ICLR 2024 (arXiv 2310.04064); Roy et al., "Fast and Simplex:
2-Simplicial Attention in Triton" (arXiv 2507.02754) for the windowed form and its kv biases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    as_float_array,
    broadcast_batch,
    check_bool,
    check_last_dim,
    check_magnitude,
    check_positive_int,
    check_same_length,
    check_scale,
    max_abs,
    overflow_checked,
)

NAMES = ("q", "k1", "k2", "v1", "v2")

#: Largest number of logits a reference call materialises at once (queries are streamed).
_BLOCK_ELEMENTS = 1 << 22


def _prepare(q: Any, k1: Any, k2: Any, v1: Any, v2: Any):
    q = as_float_array("q", q)
    k1 = as_float_array("k1", k1)
    k2 = as_float_array("k2", k2)
    v1 = as_float_array("v1", v1)
    v2 = as_float_array("v2", v2)
    d = q.shape[-1]
    check_last_dim("k1", k1, d, "d, the last axis of q")
    check_last_dim("k2", k2, d, "d, the last axis of q")
    check_last_dim("v2", v2, v1.shape[-1], "d_v, the last axis of v1")
    check_same_length(("k1", "v1"), (k1, v1))
    check_same_length(("k2", "v2"), (k2, v2))
    arrays = (q, k1, k2, v1, v2)
    lead = broadcast_batch(NAMES, arrays)
    return [np.broadcast_to(a, (*lead, *a.shape[-2:])) for a in arrays]


def check_pair_magnitudes(arrays: Any, sigma: float, dtype: Any, magnitude: Callable[[Any], float] = max_abs) -> None:
    """Reject inputs whose pair logits ``σ Σ_l q_l k1_jl k2_kl`` or outputs ``Σ P (v1 ∘ v2)`` can overflow:
    ``einsum`` sets no floating-point flag, so an overflow there would pass silently. Shared by the
    tensor and 2-simplicial references and fast paths (``arrays`` in the order q, k1, k2, v1, v2;
    ``magnitude(a)`` is ``max |a|`` for the path's array type)."""
    q, k1, k2, v1, v2 = (magnitude(a) for a in arrays)
    d = arrays[0].shape[-1]
    check_magnitude(sigma * d * q * k1 * k2, dtype, "a pair logit σ·Σ q k1 k2")
    check_magnitude(v1 * v2, dtype, "an output Σ P (v1 ∘ v2)")


def _pair_attention(
    q: np.ndarray,
    k1: np.ndarray,
    k2: np.ndarray,
    v1: np.ndarray,
    v2: np.ndarray,
    sigma: float,
    allowed_fn: Any,
    logit_bias: np.ndarray | None = None,
    value_bias: bool = False,
) -> np.ndarray:
    """Softmax over all key pairs ``(j, k)`` per query, streaming over query blocks.

    ``allowed_fn(rows) -> (len(rows), m1, m2)`` boolean or None (everything visible).
    """
    n, m1, m2 = q.shape[-2], k1.shape[-2], k2.shape[-2]
    lead = q.shape[:-2]
    batch = int(np.prod(lead)) if lead else 1
    block = max(1, _BLOCK_ELEMENTS // max(1, batch * m1 * m2))
    out = np.empty((*lead, n, v1.shape[-1]), dtype=q.dtype)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        qb = q[..., rows, :]
        logits = np.einsum("...il,...jl,...kl->...ijk", qb, k1, k2)
        if logit_bias is not None:
            logits = logits + logit_bias[..., rows, :][..., :, :, None]
        logits = sigma * logits
        allowed = allowed_fn(rows)
        flat = logits.reshape(*logits.shape[:-2], m1 * m2)
        if allowed is None:
            probs = masked_softmax(flat, np.ones(1, dtype=bool))
        else:
            probs = masked_softmax(flat, allowed.reshape(len(rows), m1 * m2))
        probs = probs.reshape(logits.shape)
        # o_i = Σ_k ((P_iᵀ V1) ∘ V2)_k  (+ Σ_j P_ij· v1_j when the value bias is on)
        mixed = np.einsum("...ijk,...jc->...ikc", probs, v1)
        block_out = np.einsum("...ikc,...kc->...ic", mixed, v2)
        if value_bias:
            block_out = block_out + mixed.sum(axis=-2)
        out[..., rows, :] = block_out
    return out


@overflow_checked
def tensor_attention(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
) -> np.ndarray:
    """Tensor attention ``Att = D⁻¹ exp(σ Q (K₁⊘K₂)ᵀ) (V₁⊘V₂)`` over all key pairs.

    Entrywise: ``s_{i,jk} = σ Σ_l Q_il K1_jl K2_kl``,
    ``o_i = Σ_{j,k} softmax_{(j,k)}(s_i) · (v1_j ∘ v2_k)``.

    Args:
        q: ``(..., n, d)``; k1, v1: ``(..., m1, d)``, ``(..., m1, d_v)``; k2, v2: ``(..., m2, d)``,
            ``(..., m2, d_v)``.
        scale: σ, default ``1/d`` (the Alman–Song problem statement).
        causal: allow the pair ``(j, k)`` iff ``j <= i`` and ``k <= i`` (needs n == m1 == m2).

    Returns:
        ``(..., n, d_v)``. Time ``O(n m1 m2 d)``; memory bounded by streaming over queries.
    """
    q, k1, k2, v1, v2 = _prepare(q, k1, k2, v1, v2)
    sigma = check_scale(scale, 1.0 / q.shape[-1])
    causal = check_bool("causal", causal)
    n, m1, m2 = q.shape[-2], k1.shape[-2], k2.shape[-2]
    if causal and not (n == m1 == m2):
        raise ValueError(f"q/k1/k2: causal tensor attention needs n == m1 == m2, got {n}, {m1}, {m2}")
    check_pair_magnitudes((q, k1, k2, v1, v2), sigma, q.dtype)

    def allowed_fn(rows: np.ndarray) -> np.ndarray | None:
        if not causal:
            return None
        j = np.arange(m1)
        k = np.arange(m2)
        return (j[None, :, None] <= rows[:, None, None]) & (k[None, None, :] <= rows[:, None, None])

    return _pair_attention(q, k1, k2, v1, v2, sigma, allowed_fn)


@overflow_checked
def simplicial_attention(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> np.ndarray:
    """Causal windowed 2-simplicial attention.

    Pair ``(j, k)`` is visible to query ``i`` iff ``i − w1 < j <= i`` and ``i − w2 < k <= i``;
    ``s_{i,jk} = σ Σ_l q_il k1_jl k2'_kl`` with softmax jointly over the visible pairs and
    ``o_i = Σ P_{i,jk} (v1_j ∘ v2'_k)``. With ``kv_bias=True`` (the FBGEMM reference default)
    ``k2' = k2 + 1/d`` and ``v2' = v2 + 1``, which embeds ordinary attention: the logit gains
    ``(1/d) q·k1_j`` and the value gains ``v1_j``.

    Args:
        q, k1, k2: ``(..., n, d)``; v1, v2: ``(..., n, d_v)`` (self-attention: one length n).
        window1, window2: positive window sizes ``w1``, ``w2``.
        scale: σ, default ``1/√d`` (the 2-simplicial convention).
        kv_bias: apply the default biases above.

    Returns:
        ``(..., n, d_v)``. Cost ``O(n · w1 · w2 · d)`` for the visible pairs.
    """
    q, k1, k2, v1, v2 = _prepare(q, k1, k2, v1, v2)
    w1 = check_positive_int("window1", window1)
    w2 = check_positive_int("window2", window2)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    kv_bias = check_bool("kv_bias", kv_bias)
    n = q.shape[-2]
    check_same_length(("q", "k1", "k2"), (q, k1, k2))
    check_same_length(("q", "v1", "v2"), (q, v1, v2))
    w1, w2 = min(w1, n), min(w2, n)  # a window past the sequence start sees the whole prefix
    d = q.shape[-1]
    if kv_bias:
        k2 = k2 + 1.0 / d
        v2 = v2 + 1.0
    check_pair_magnitudes((q, k1, k2, v1, v2), sigma, q.dtype)

    j = np.arange(n)

    def allowed_fn(rows: np.ndarray) -> np.ndarray:
        r = rows[:, None, None]
        in1 = (j[None, :, None] <= r) & (j[None, :, None] > r - w1)
        in2 = (j[None, None, :] <= r) & (j[None, None, :] > r - w2)
        return in1 & in2

    return _pair_attention(q, k1, k2, v1, v2, sigma, allowed_fn)


def khatri_rao(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Kronecker product ``(A ⊘ B)_{(j,k), l} = A_jl B_kl``, rows ordered ``j·m2 + k``."""
    return (a[..., :, None, :] * b[..., None, :, :]).reshape(*a.shape[:-2], -1, a.shape[-1])
