"""Numba fast path of LASER attention, ``O = log(softmax(S) · exp(V))``.

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493). Fused online log-sum-exp: per query row the state is the running max ``μ`` of
the logits, ``ℓ = Σ e^{s−μ}``, and per value column a running shift ``ν_c`` with
``A_c = Σ_j e^{s_j−μ} e^{V_jc−ν_c}``; then ``O_c = log(A_c/ℓ) + ν_c``.

Per key tile ``T`` the shifted values ``E_T = e^{V_T − t_T}`` (``t_T`` the tile's column max) are
computed once per KV head, before the row blocks run, and shared by every query row: a tile adds
``P_T E_T`` (one GEMM) to ``A`` after rescaling both shifts, ``ν' = max(ν, t_T)``. Where a row sees
only part of a tile (causal diagonal, user mask) ``t_T`` may sit far above the values it sees and
the shifted sum may underflow; such (row, tile) pairs are recomputed exactly with the row's own
visible column maxima, so the output stays finite wherever the reference's is. The shifts are never
the global column max, which underflows causal rows whose visible values sit far below it.
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
    exp_nonpositive,
    hide_invisible,
    key_end,
    new_state,
    online_softmax_tile,
    scaled_rows,
    tile_fully_visible,
)
from attnlab.validation import check_last_dim, check_logits, check_scale, max_abs

#: A tile's shifted sum below this (per dtype) is recomputed with per-row shifts: far above the
#: smallest normal number, so what the shared shift flushed to zero is negligible next to it.
_TINY = {np.dtype(np.float32): np.float32(2.0**-60), np.dtype(np.float64): np.float64(2.0**-600)}


@njit(cache=True, parallel=True)
def _shifted_value_tiles(v3, e3, tile_max):
    """``e3[s, j] = e^{v3[s, j] − tile_max[s, j // BLOCK_COLS]}`` with ``tile_max`` each key tile's column max."""
    slices, m, dv = v3.shape
    tiles = tile_max.shape[1]
    for task in prange(slices * tiles):
        s = task // tiles
        t = task % tiles
        c0 = t * BLOCK_COLS
        c1 = min(m, c0 + BLOCK_COLS)
        top = tile_max[s, t]
        for c in range(dv):
            top[c] = NEG_INF
        for j in range(c0, c1):
            for c in range(dv):
                x = v3[s, j, c]
                top[c] = x if x > top[c] else top[c]
        for j in range(c0, c1):
            for c in range(dv):
                e3[s, j, c] = exp_nonpositive(v3[s, j, c] - top[c])


@njit(cache=True)
def _visible_part(pt, r, v3, ki, c0, shift, part):
    """Exact fallback for row ``r``: ``shift_c`` = max of ``V_jc`` over keys with ``p_j > 0`` and
    ``part_c = Σ_j p_j e^{V_jc − shift_c}`` (``pt`` the transposed weights of the tile)."""
    dv = v3.shape[2]
    for c in range(dv):
        shift[c] = NEG_INF
        part[c] = 0.0
    for j in range(pt.shape[0]):
        if pt[j, r] > 0.0:
            for c in range(dv):
                x = v3[ki, c0 + j, c]
                shift[c] = x if x > shift[c] else shift[c]
    for j in range(pt.shape[0]):
        p = pt[j, r]
        if p > 0.0:
            for c in range(dv):
                part[c] += p * exp_nonpositive(v3[ki, c0 + j, c] - shift[c])


@njit(cache=True, parallel=True)
def _laser_forward(q3, k3, v3, e3, tile_max, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, tiny, out):
    slices, n = out.shape[0], out.shape[1]
    m, dv = k3.shape[1], v3.shape[2]
    offset = m - n
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        br = r1 - r0
        ki, mi = kv_map[b], mask_map[b]
        qs = scaled_rows(q3, q_map[b], r0, r1, scale)
        st = np.empty((BLOCK_COLS, br), dtype=v3.dtype)
        part = np.empty((br, dv), dtype=v3.dtype)
        acc = np.zeros((br, dv), dtype=v3.dtype)
        nu = np.full((br, dv), NEG_INF, dtype=v3.dtype)
        state = new_state(br, v3)
        shift = np.empty(dv, dtype=v3.dtype)
        exact = np.empty(dv, dtype=v3.dtype)
        alpha, seen = state[3], state[4]
        for c0 in range(0, key_end(r1, n, m, causal), BLOCK_COLS):
            c1 = min(m, c0 + BLOCK_COLS, key_end(r1, n, m, causal))
            s = st[: c1 - c0]
            np.dot(k3[ki, c0:c1], qs.T, s)
            if not tile_fully_visible(r0, c1, offset, causal, has_mask):
                hide_invisible(s, r0, c0, offset, causal, has_mask, mask3, mi)
            online_softmax_tile(s, state)
            np.dot(s.T, e3[ki, c0:c1], part)
            top = tile_max[ki, c0 // BLOCK_COLS]
            for r in range(br):
                if seen[r] == NEG_INF:
                    continue
                smallest = part[r, 0]
                for c in range(1, dv):
                    smallest = min(smallest, part[r, c])
                if smallest < tiny:
                    _visible_part(s, r, v3, ki, c0, shift, exact)
                else:
                    for c in range(dv):
                        shift[c] = top[c]
                        exact[c] = part[r, c]
                a = alpha[r]
                for c in range(dv):
                    old = nu[r, c]
                    new = shift[c] if shift[c] > old else old
                    acc[r, c] = acc[r, c] * a * exp_nonpositive(old - new) + exact[c] * exp_nonpositive(shift[c] - new)
                    nu[r, c] = new
        row_sum = state[1]
        for r in range(br):
            if row_sum[r] > 0.0:
                log_sum = math.log(row_sum[r])
                for c in range(dv):
                    out[b, r0 + r, c] = math.log(acc[r, c]) - log_sum + nu[r, c]
            else:
                for c in range(dv):
                    out[b, r0 + r, c] = 0.0


@numba_checked
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
    check_logits(max_abs(qa), max_abs(ka), qa.shape[-1], sigma, dtype)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = poisoned((len(q_map), n, dv), dtype)
    v3 = as_slices(va)
    e3 = np.empty_like(v3)
    tile_max = np.empty((v3.shape[0], -(-m // BLOCK_COLS), dv), dtype=dtype)
    _shifted_value_tiles(v3, e3, tile_max)
    _laser_forward(
        as_slices(qa),
        as_slices(ka),
        v3,
        e3,
        tile_max,
        q_map,
        kv_map,
        mask3,
        mask_map,
        has_mask,
        causal,
        sigma,
        _TINY[dtype],
        out,
    )
    return out.reshape(*lead, n, dv)
