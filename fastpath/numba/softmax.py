"""Numba fast path of scaled dot-product softmax attention (MHA/MQA/GQA, causal or masked).

Flash-style evaluation (Dao et al. 2022, "FlashAttention", arXiv 2205.14135): query rows in blocks,
keys in tiles, online softmax across tiles, the two products per tile through BLAS. Nothing of size
``n·m`` is formed. Matches :func:`attnlab.reference.softmax_attention` (operators.md §1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import (
    as_slices,
    attention_maps,
    fast_dtype,
    float_arrays,
    mask_slices,
    poisoned,
)
from attnlab.fastpath.numba._kernels import softmax_forward
from attnlab.validation import check_last_dim, check_scale


def softmax_attention_lse(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax attention ``O = softmax(σ Q Kᵀ + M) V`` and the row log-sum-exp ``lse`` (``-inf`` if empty).

    Shapes: ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)`` with
    ``H_kv | H``; returns ``(..., H, n, d_v)`` and ``(..., H, n)`` in the input float dtype.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = poisoned((len(q_map), n, dv), dtype)
    lse = poisoned((len(q_map), n), dtype)
    softmax_forward(
        as_slices(qa), as_slices(ka), as_slices(va), q_map, kv_map, mask3, mask_map, has_mask, causal, sigma,
        out, lse,
    )
    return out.reshape(*lead, n, dv), lse.reshape(*lead, n)


def softmax_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Softmax attention ``O = softmax_row(σ Q Kᵀ + M) V`` (same call as the reference).

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv | H``
            (query head ``h`` reads KV head ``h // (H / H_kv)``).
        scale: σ, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` in the input float dtype; a query with no visible key returns zeros.
    """
    return softmax_attention_lse(q, k, v, scale=scale, causal=causal, mask=mask)[0]
