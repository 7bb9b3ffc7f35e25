"""Hamming (binary-code) attention, as in Hamming Attention Distillation.

Source: Horton et al. 2025, "Hamming Attention Distillation: Binarizing Keys and Queries for
Efficient Long-Context Transformers". Queries and keys are binarised by sign with ``sign(0) = +1``;
for ±1 codes ``q̂·k̂ = d − 2·Ham(q̂, k̂)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_magnitude,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)


def check_hamming_scale(scale: Any, d: int, dtype: Any = np.float64) -> float:
    """σ, and the largest logit ``σ·d`` must be finite in ``dtype`` (ties between distinct distances would
    otherwise merge at ±Inf)."""
    sigma = check_scale(scale, d**-0.5)
    check_magnitude(sigma * d, dtype, "the largest logit σ·d")
    return sigma


def sign_code(x: np.ndarray) -> np.ndarray:
    """Binarise to ±1 with ``sign(0) = +1`` (torch's ``sign`` would give 0)."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0)


def hamming_distance(q_code: np.ndarray, k_code: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances ``(..., n, m)`` between ±1 codes, counted as integers."""
    differ = q_code[..., :, None, :] != k_code[..., None, :, :]
    return differ.sum(axis=-1)


def hamming_scores(q: Any, k: Any, *, scale: float | None = None) -> np.ndarray:
    """Logits ``σ (d − 2·Ham(sign q_i, sign k_j))`` of shape ``(..., n, m)``."""
    qa = as_float_array("q", q)
    ka = as_float_array("k", k)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, _ = expand_kv_heads(qa, ka, ka[..., :1], names=("q", "k", "k"))
    d = qa.shape[-1]
    sigma = check_hamming_scale(scale, d)
    return (sigma * (d - 2 * hamming_distance(sign_code(qa), sign_code(ka)))).astype(qa.dtype, copy=False)


def _keep_top_n(scores: np.ndarray, allowed: np.ndarray, top_n: int) -> np.ndarray:
    """Keep per row every visible logit ``>=`` the N-th largest visible one (ties kept)."""
    allowed = np.broadcast_to(allowed, scores.shape)
    masked = np.where(allowed, scores, -np.inf)
    if top_n >= scores.shape[-1]:
        return allowed
    kth = -np.sort(-masked, axis=-1)[..., top_n - 1 : top_n]
    return allowed & (masked >= kth)


@overflow_checked
def hamming_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> np.ndarray:
    """Softmax attention over binarised logits ``s_ij = σ (d − 2·Ham(sign q_i, sign k_j))``.

    Args:
        q: ``(..., H, n, d)``; k: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)`` (values stay
            full precision).
        scale: σ, default ``d ** -0.5`` as for softmax attention.
        causal, mask: as :func:`softmax_attention`; applied before top-N selection.
        top_n: HAD's sparsification: keep the N largest visible logits per row, **keeping every
            tie with the N-th value** (integer logits tie often). None keeps all.

    Returns:
        ``(..., H, n, d_v)``.
    """
    qa = as_float_array("q", q)
    ka = as_float_array("k", k)
    va = as_float_array("v", v)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, va = expand_kv_heads(qa, ka, va)
    scores = hamming_scores(qa, ka, scale=scale)
    allowed = allowed_positions(qa.shape[-2], ka.shape[-2], causal=causal, mask=mask, lead=qa.shape[:-2])
    if top_n is not None:
        allowed = _keep_top_n(scores, allowed, check_positive_int("top_n", top_n))
    return masked_softmax(scores, allowed) @ va
