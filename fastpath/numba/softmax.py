"""Numba fast path of scaled dot-product softmax attention (MHA/MQA/GQA, causal or masked).

Flash-style evaluation (Dao et al. 2022, "FlashAttention", arXiv 2205.14135): query rows in blocks,
keys in tiles, online softmax across tiles, the two products per tile through BLAS. Nothing of size
``n·m`` is formed. Matches :func:`attnlab.reference.softmax_attention`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import (
    as_slices,
    attention_maps,
    fast_dtype,
    float_arrays,
    mask_slices,
    numba_checked,
    poisoned,
)
from attnlab.fastpath.numba._kernels import (
    BLOCK_COLS,
    BLOCK_ROWS,
    NEG_INF,
    key_end,
    new_state,
    scaled_rows,
    softmax_advance,
)
from attnlab.validation import check_last_dim, check_logits, check_scale, max_abs


@njit(cache=True, parallel=True)
def softmax_forward(q3, k3, v3, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, out, lse, peak, total):
    """Flash-style softmax attention: ``out[b] = softmax(scale · q kᵀ + M) v``, its row lse, and the
    row max ``peak`` and sum ``total = Σ e^{s − peak}`` the backward recomputes the weights from.

    Parallel over (batch slice, row block); scratch per task ``O(BLOCK_ROWS · (BLOCK_COLS + d))``,
    allocated once per task. Causal blocks stop at their last visible key and mask only the tiles
    that cross the diagonal.
    """
    slices, n = out.shape[0], out.shape[1]
    m, dv = k3.shape[1], v3.shape[2]
    offset = m - n
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        br = r1 - r0
        qs = scaled_rows(q3, q_map[b], r0, r1, scale)
        st = np.empty((BLOCK_COLS, br), dtype=v3.dtype)
        pv = np.empty((br, dv), dtype=v3.dtype)
        acc = np.zeros((br, dv), dtype=v3.dtype)
        state = new_state(br, v3)
        kend = key_end(r1, n, m, causal)
        for c0 in range(0, kend, BLOCK_COLS):
            c1 = min(kend, c0 + BLOCK_COLS)
            softmax_advance(
                qs,
                k3,
                kv_map[b],
                v3,
                kv_map[b],
                c0,
                c1,
                r0,
                offset,
                causal,
                has_mask,
                mask3,
                mask_map[b],
                st,
                pv,
                acc,
                state,
            )
        row_max, row_sum = state[0], state[1]
        for r in range(br):
            ell = row_sum[r]
            peak[b, r0 + r] = row_max[r]
            total[b, r0 + r] = ell
            if ell > 0.0:
                inv = 1.0 / ell
                for c in range(dv):
                    out[b, r0 + r, c] = acc[r, c] * inv
                lse[b, r0 + r] = row_max[r] + math.log(ell)
            else:
                for c in range(dv):
                    out[b, r0 + r, c] = 0.0
                lse[b, r0 + r] = NEG_INF


@numba_checked
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
    out, lse, _, _ = softmax_forward_stats(q, k, v, scale=scale, causal=causal, mask=mask)
    return out, lse


def softmax_forward_stats(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(O, lse, row max, row sum)``: the forward with the statistics its backward reuses.

    The backward recomputes ``P = e^{s − max} / sum`` from the same scaled-query GEMM tiles, so the
    largest weight of a row is exact; recomputing from ``lse`` instead would lose ``eps·|lse|`` in
    every weight (1e-4 relative at logits of 1e3 in float32).
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    check_logits(max_abs(qa), max_abs(ka), qa.shape[-1], sigma, dtype)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = poisoned((len(q_map), n, dv), dtype)
    lse, peak, total = (poisoned((len(q_map), n), dtype) for _ in range(3))
    softmax_forward(
        as_slices(qa),
        as_slices(ka),
        as_slices(va),
        q_map,
        kv_map,
        mask3,
        mask_map,
        has_mask,
        causal,
        sigma,
        out,
        lse,
        peak,
        total,
    )
    rows = (*lead, n)
    return out.reshape(*lead, n, dv), lse.reshape(rows), peak.reshape(rows), total.reshape(rows)


@numba_checked
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
