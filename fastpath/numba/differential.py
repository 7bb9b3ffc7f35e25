"""Numba fast path of differential attention (DIFF Transformer core).

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258).
``O = softmax(σ Q1 K1ᵀ + M) V − λ softmax(σ Q2 K2ᵀ + M) V`` in one pass: both online-softmax states
advance over the same key tiles and share each value tile; no ``n·m`` map is formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import (
    as_slices,
    attention_maps,
    batch_map,
    fast_dtype,
    mask_slices,
    numba_checked,
    poisoned,
    precision,
)
from attnlab.fastpath.numba._kernels import (
    BLOCK_COLS,
    BLOCK_ROWS,
    key_end,
    new_state,
    scaled_rows,
    softmax_advance,
)
from attnlab.reference.differential import check_differential
from attnlab.validation import broadcast_batch, check_logits, check_scale, max_abs


@njit(cache=True, parallel=True)
def _differential_forward(
    q1, k1, q2, k2, v3, q1_map, k1_map, q2_map, k2_map, v_map, mask3, mask_map, has_mask, causal, scale, lam3, out
):
    slices, n = out.shape[0], out.shape[1]
    m, dv = v3.shape[1], v3.shape[2]
    offset = m - n
    lam_b, lam_r, lam_c = lam3.shape[0] > 1, lam3.shape[1] > 1, lam3.shape[2] > 1
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        br = r1 - r0
        mi, vi = mask_map[b], v_map[b]
        qs1 = scaled_rows(q1, q1_map[b], r0, r1, scale)
        qs2 = scaled_rows(q2, q2_map[b], r0, r1, scale)
        st = np.empty((BLOCK_COLS, br), dtype=v3.dtype)
        pv = np.empty((br, dv), dtype=v3.dtype)
        acc1 = np.zeros((br, dv), dtype=v3.dtype)
        acc2 = np.zeros((br, dv), dtype=v3.dtype)
        state1 = new_state(br, v3)
        state2 = new_state(br, v3)
        kend = key_end(r1, n, m, causal)
        for c0 in range(0, kend, BLOCK_COLS):
            c1 = min(kend, c0 + BLOCK_COLS)
            # both maps read the same value tile while it is in cache
            softmax_advance(
                qs1, k1, k1_map[b], v3, vi, c0, c1, r0, offset, causal, has_mask, mask3, mi, st, pv, acc1, state1
            )
            softmax_advance(
                qs2, k2, k2_map[b], v3, vi, c0, c1, r0, offset, causal, has_mask, mask3, mi, st, pv, acc2, state2
            )
        lb = b if lam_b else 0
        for r in range(br):
            l1, l2 = state1[1, r], state2[1, r]
            inv1 = 1.0 / l1 if l1 > 0.0 else 0.0
            inv2 = 1.0 / l2 if l2 > 0.0 else 0.0
            lr = r0 + r if lam_r else 0
            for c in range(dv):
                out[b, r0 + r, c] = acc1[r, c] * inv1 - lam3[lb, lr, c if lam_c else 0] * (acc2[r, c] * inv2)


@numba_checked
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

    Args and shapes as :func:`attnlab.reference.differential_attention`: ``q1, q2 (..., H, n, d)``,
    ``k1, k2 (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``, ``lam`` a float or an array
    broadcastable to the output. Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    dtype = fast_dtype(q1, k1, q2, k2, v)
    with precision(dtype):
        (q1a, k1a, q2a, k2a, va), lam_value, _ = check_differential(
            q1, k1, q2, k2, v, lam=lam, scale=scale, causal=causal, mask=mask
        )
    lead1, q1_map, k1_map = attention_maps(q1a, k1a, va, ("q1", "k1", "v"))
    lead2, q2_map, k2_map = attention_maps(q2a, k2a, va, ("q2", "k2", "v"))
    _, _, v_map = attention_maps(q1a, va, va, ("q1", "v", "v"))
    lead = broadcast_batch(("q1", "q2"), (np.empty((*lead1, 1, 1)), np.empty((*lead2, 1, 1))))
    pick1, pick2 = batch_map(lead1, lead), batch_map(lead2, lead)
    n, m, dv = q1a.shape[-2], va.shape[-2], va.shape[-1]
    out_shape = (*lead, n, dv)
    if isinstance(lam_value, np.ndarray):
        lam_arr = np.asarray(lam_value, dtype=dtype)
        lam_arr = lam_arr.reshape((1,) * (len(out_shape) - lam_arr.ndim) + lam_arr.shape)
        lam_rc = (n if lam_arr.shape[-2] > 1 else 1, dv if lam_arr.shape[-1] > 1 else 1)
        lam3 = np.require(np.broadcast_to(lam_arr, (*lead, *lam_rc)).reshape(-1, *lam_rc), requirements=["C", "W"])
    else:
        lam3 = np.full((1, 1, 1), lam_value, dtype=dtype)
    sigma = check_scale(scale, q1a.shape[-1] ** -0.5)
    check_logits(max_abs(q1a), max_abs(k1a), q1a.shape[-1], sigma, dtype)
    check_logits(max_abs(q2a), max_abs(k2a), q1a.shape[-1], sigma, dtype)
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = poisoned((len(pick1), n, dv), dtype)
    _differential_forward(
        as_slices(q1a),
        as_slices(k1a),
        as_slices(q2a),
        as_slices(k2a),
        as_slices(va),
        q1_map[pick1],
        k1_map[pick1],
        q2_map[pick2],
        k2_map[pick2],
        v_map[pick1],
        mask3,
        mask_map,
        has_mask,
        causal,
        sigma,
        lam3,
        out,
    )
    return out.reshape(out_shape)
