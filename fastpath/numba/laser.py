"""Numba fast path of LASER attention, ``O = log(softmax(S) · exp(V))`` (operators.md §3).

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493). Fused online log-sum-exp: per query row the state is the running max ``μ`` of
the logits, ``ℓ = Σ e^{s−μ}``, and per value column a running max ``ν_c`` of the *visible* values
with ``A_c = Σ_j e^{s_j−μ} e^{V_jc−ν_c}``; then ``O_c = log(A_c/ℓ) + ν_c``. The shifts are maxima over
keys the row actually sees (a tile-wise, hence prefix-wise, max), never the global column max that
underflows causal rows whose visible values sit far below it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays, mask_slices, poisoned
from attnlab.fastpath.numba._kernels import (
    BLOCK_COLS,
    BLOCK_ROWS,
    NEG_INF,
    apply_visibility,
    key_end,
    load_scaled_rows,
    load_transposed,
    online_softmax_tile,
    tile_fully_visible,
)
from attnlab.validation import check_last_dim, check_scale


@njit(cache=True, fastmath=False)
def _exp_values_tile(v3, ki, c0, c1, tile_max):
    """``[e^{V_jc − t_c} | 1]`` for keys ``c0..c1`` with ``t_c`` the tile's column max (written to ``tile_max``)."""
    dv = v3.shape[2]
    for c in range(dv):
        tile_max[c] = NEG_INF
    for j in range(c0, c1):
        for c in range(dv):
            if v3[ki, j, c] > tile_max[c]:
                tile_max[c] = v3[ki, j, c]
    block = np.empty((c1 - c0, dv + 1), dtype=v3.dtype)
    for j in range(c1 - c0):
        for c in range(dv):
            block[j, c] = math.exp(v3[ki, c0 + j, c] - tile_max[c])
        block[j, dv] = 1.0
    return block


@njit(cache=True, fastmath=False)
def _merge_column(acc, nu, r, c, scaled_old, part, shift):
    """``A ← A·α·e^{ν−ν'} + part·e^{shift−ν'}`` with ``ν' = max(ν, shift)`` (one of the factors is 1)."""
    old = nu[r, c]
    if shift > old:
        acc[r, c] = scaled_old * math.exp(old - shift) + part
        nu[r, c] = shift
    else:
        acc[r, c] = scaled_old + part * math.exp(shift - old)


@njit(cache=True, fastmath=False, parallel=True)
def _laser_forward(q3, k3, v3, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, out):
    slices, n = out.shape[0], out.shape[1]
    m, dv = k3.shape[1], v3.shape[2]
    offset = m - n
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        br = r1 - r0
        qi, ki, mi = q_map[b], kv_map[b], mask_map[b]
        row_max = np.full(br, NEG_INF, dtype=q3.dtype)
        row_sum = np.zeros(br, dtype=q3.dtype)
        alpha = np.empty(br, dtype=q3.dtype)
        acc = np.zeros((br, dv), dtype=q3.dtype)
        nu = np.full((br, dv), NEG_INF, dtype=q3.dtype)
        tile_max = np.empty(dv, dtype=q3.dtype)
        col_max = np.empty(dv, dtype=q3.dtype)
        kend = key_end(r1, n, m, causal)
        qb = load_scaled_rows(q3, qi, r0, r1, scale)
        for c0 in range(0, kend, BLOCK_COLS):
            c1 = min(kend, c0 + BLOCK_COLS)
            s = np.dot(qb, load_transposed(k3, ki, c0, c1))
            if tile_fully_visible(r0, c1, offset, causal, has_mask):
                online_softmax_tile(s, row_max, alpha)
                part = np.dot(s, _exp_values_tile(v3, ki, c0, c1, tile_max))
                for r in range(br):
                    a = alpha[r]
                    row_sum[r] = row_sum[r] * a + part[r, dv]
                    for c in range(dv):
                        _merge_column(acc, nu, r, c, acc[r, c] * a, part[r, c], tile_max[c])
                continue
            # Boundary tile (causal diagonal or user mask): shift each row by its own visible maxima.
            apply_visibility(s, r0, c0, offset, causal, has_mask, mask3, mi)
            online_softmax_tile(s, row_max, alpha)
            for r in range(br):
                a = alpha[r]
                total = 0.0
                for c in range(dv):
                    col_max[c] = NEG_INF
                seen = False
                for j in range(c1 - c0):
                    p = s[r, j]
                    if p > 0.0:
                        seen = True
                        total += p
                        for c in range(dv):
                            if v3[ki, c0 + j, c] > col_max[c]:
                                col_max[c] = v3[ki, c0 + j, c]
                if not seen:
                    continue
                row_sum[r] = row_sum[r] * a + total
                for c in range(dv):
                    part = 0.0
                    for j in range(c1 - c0):
                        p = s[r, j]
                        if p > 0.0:
                            part += p * math.exp(v3[ki, c0 + j, c] - col_max[c])
                    _merge_column(acc, nu, r, c, acc[r, c] * a, part, col_max[c])
        for r in range(br):
            if row_sum[r] > 0.0:
                log_sum = math.log(row_sum[r])
                for c in range(dv):
                    out[b, r0 + r, c] = math.log(acc[r, c]) - log_sum + nu[r, c]
            else:
                for c in range(dv):
                    out[b, r0 + r, c] = 0.0


def laser_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """LASER attention ``O_ic = log Σ_j softmax(S)_ij e^{V_jc}`` with ``S = σ Q Kᵀ + M``.

    Shapes and options as :func:`attnlab.reference.laser_attention` (GQA, ``causal`` bottom-right,
    boolean ``mask``); returns ``(..., H, n, d_v)`` in the input float dtype, zeros for a query with
    no visible key.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = poisoned((len(q_map), n, dv), dtype)
    _laser_forward(as_slices(qa), as_slices(ka), as_slices(va), q_map, kv_map, mask3, mask_map, has_mask, causal,
                   sigma, out)
    return out.reshape(*lead, n, dv)
