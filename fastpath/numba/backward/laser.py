"""Numba backward (VJP) of LASER attention, ``O_ic = LSE_j(S_ij + V_jc) − LSE_j(S_ij)`` (operators.md §3).

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493). With ``a = softmax(S)`` and the per-channel weights
``w_ijc = a_ij e^{V_jc − O_ic} = exp(S_ij + V_jc − L_i − O_ic)`` (``L_i`` the row log-sum-exp; each
``w_i·c`` is a softmax over ``j``, so its exponent is ≤ 0 and nothing overflows):

    dV_jc = Σ_i dO_ic w_ijc,   dS_ij = Σ_c dO_ic (w_ijc − a_ij),   dQ = σ dS K,   dK = σ dSᵀ Q.

Tiled like the softmax backward: ``S`` is recomputed per (row block, key tile), never stored whole.
Per tile the weights factor through the tile's column maxima of ``V`` into two GEMMs (see
:func:`laser_tile`); rows where that factoring would overflow fall back to one exponential per
(key, channel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays, mask_slices
from attnlab.fastpath.numba._kernels import NEG_INF, exp_nonpositive, key_end
from attnlab.fastpath.numba.backward._plumbing import fold_slices, upstream_gradient
from attnlab.fastpath.numba.laser import laser_attention
from attnlab.fastpath.numba.softmax import softmax_attention_lse
from attnlab.validation import check_last_dim, check_scale

BLOCK_ROWS = 64
BLOCK_COLS = 128

#: Largest ``t_c − O_ic`` for which ``e^{t − O}`` is formed (per dtype): far below overflow, and a weight
#: ``a E`` lost to underflow next to it is at most ``e^{−87 + 60}`` (float32) of the row's unit mass.
_EXP_LIMIT = {np.dtype(np.float32): 60.0, np.dtype(np.float64): 600.0}


@njit(cache=True)
def laser_row_exact(st, vt, dob, joint, row_lse, sdo_r, r, c0, i, offset, causal, has_mask, mask3, mi, sigma, dvt):
    """Row ``r`` of a tile with one exponential per (key, channel): ``st[r]`` (raw ``q·k``) becomes ``σ dS``."""
    limit = i + offset
    for c in range(st.shape[1]):
        j = c0 + c
        if (causal and j > limit) or (has_mask and mask3[mi, i, j] == 0):
            st[r, c] = 0.0
            continue
        t = st[r, c] * sigma
        g = st.dtype.type(0.0)
        for ch in range(vt.shape[1]):
            contribution = dob[r, ch] * exp_nonpositive(t + vt[c, ch] - joint[r, ch])
            dvt[c, ch] += contribution
            g += contribution
        st[r, c] = sigma * (g - exp_nonpositive(t - row_lse) * sdo_r)


@njit(cache=True)
def laser_tile(st, vt, dob, joint, out_b, lse_b, sdo, r0, c0, offset, causal, has_mask, mask3, mi, scale, limit, dvt):
    """One (row block, key tile): ``st`` (raw ``q·k``) becomes ``σ dS``; ``dvt`` accumulates ``dV``.

    With the tile's column maxima ``t_c``: ``w_ijc = a_ij E_jc e^{t_c − O_ic}``, ``E = e^{V − t} ≤ 1``, so
    with ``G_ic = dO_ic e^{t_c − O_ic}`` the tile is two GEMMs, ``dV += E ∘ (aᵀ G)`` and
    ``Σ_c dO_ic w_ijc = a_ij (G Eᵀ)_ij``. A row whose ``t_c − O_ic`` exceeds ``limit`` (``e^{t − O}`` would
    overflow) is done exactly, one exponential per (key, channel), by :func:`laser_row_exact`.
    ``joint[r, c] = L_i + O_ic``, ``sdo[r] = Σ_c dO_ic``.
    """
    br, bc = st.shape
    dv = vt.shape[1]
    sigma = st.dtype.type(scale)
    shift = np.full(dv, NEG_INF, dtype=st.dtype)
    for c in range(bc):
        for ch in range(dv):
            shift[ch] = vt[c, ch] if vt[c, ch] > shift[ch] else shift[ch]
    shifted = np.empty((bc, dv), dtype=st.dtype)
    for c in range(bc):
        for ch in range(dv):
            shifted[c, ch] = exp_nonpositive(vt[c, ch] - shift[ch])
    exact = np.zeros(br, dtype=np.bool_)
    weighted = np.zeros((br, dv), dtype=st.dtype)
    raw = st.copy()
    for r in range(br):
        i = r0 + r
        row_lse = lse_b[i]
        if not (row_lse > NEG_INF):
            for c in range(bc):
                st[r, c] = 0.0
            continue
        for ch in range(dv):
            if shift[ch] - out_b[i, ch] > limit:
                exact[r] = True
        limit_j = i + offset
        for c in range(bc):
            j = c0 + c
            hidden = exact[r] or (causal and j > limit_j) or (has_mask and mask3[mi, i, j] == 0)
            st[r, c] = exp_nonpositive(NEG_INF if hidden else st[r, c] * sigma - row_lse)
        if not exact[r]:
            for ch in range(dv):
                weighted[r, ch] = dob[r, ch] * np.exp(shift[ch] - out_b[i, ch])
    dvt += shifted * np.dot(st.T, weighted)
    mixed = np.dot(weighted, shifted.T)
    for r in range(br):
        if exact[r]:
            st[r] = raw[r]
            laser_row_exact(st, vt, dob, joint, lse_b[r0 + r], sdo[r], r, c0, r0 + r, offset, causal, has_mask,
                            mask3, mi, sigma, dvt)
            continue
        for c in range(bc):
            st[r, c] = sigma * st[r, c] * (mixed[r, c] - sdo[r])


@njit(cache=True, parallel=True)
def laser_backward(q3, k3, v3, do3, joint3, out3, lse, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, limit,
                   dq, dk, dv):
    """Per output slice ``b``: ``dq[b]``, ``dk[b]``, ``dv[b]`` of LASER (``dk``/``dv`` zeroed by the caller)."""
    slices, n, d = dq.shape
    m = k3.shape[1]
    offset = m - n
    for b in prange(slices):
        qi, ki, mi = q_map[b], kv_map[b], mask_map[b]
        for r0 in range(0, n, BLOCK_ROWS):
            r1 = min(n, r0 + BLOCK_ROWS)
            qb = q3[qi, r0:r1]
            dob = do3[b, r0:r1]
            sdo = np.zeros(r1 - r0, dtype=dq.dtype)
            for r in range(r1 - r0):
                for ch in range(dob.shape[1]):
                    sdo[r] += dob[r, ch]
            dqb = np.zeros((r1 - r0, d), dtype=dq.dtype)
            kend = key_end(r1, n, m, causal)
            for c0 in range(0, kend, BLOCK_COLS):
                c1 = min(kend, c0 + BLOCK_COLS)
                kt = k3[ki, c0:c1]
                st = np.dot(qb, kt.T)
                laser_tile(st, v3[ki, c0:c1], dob, joint3[b, r0:r1], out3[b], lse[b], sdo, r0, c0, offset, causal,
                           has_mask, mask3, mi, scale, limit, dv[b, c0:c1])
                dk[b, c0:c1] += np.dot(st.T, qb)
                dqb += np.dot(st, kt)
            dq[b, r0:r1] = dqb


def laser_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.laser.laser_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H, n, d_v)``.
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv | H``.
        scale, causal, mask: as the forward.

    Returns:
        ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v``; rows with no visible key contribute 0.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    n, m, d, d_v = qa.shape[-2], ka.shape[-2], qa.shape[-1], va.shape[-1]
    grad = upstream_gradient(grad_out, (*lead, n, d_v), dtype)
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out = laser_attention(qa, ka, va, scale=sigma, causal=causal, mask=mask)
    _, lse = softmax_attention_lse(qa, ka, va, scale=sigma, causal=causal, mask=mask)
    slices = len(q_map)
    lse2 = np.ascontiguousarray(lse.reshape(slices, n))
    joint = np.ascontiguousarray((lse2[..., None] + out.reshape(slices, n, d_v)).astype(dtype))
    dq = np.empty((slices, n, d), dtype=dtype)
    dk = np.zeros((slices, m, d), dtype=dtype)
    dv = np.zeros((slices, m, d_v), dtype=dtype)
    laser_backward(
        as_slices(qa), as_slices(ka), as_slices(va), grad.reshape(slices, n, d_v), joint,
        np.ascontiguousarray(out.reshape(slices, n, d_v)), lse2, q_map, kv_map, mask3, mask_map, has_mask, causal,
        sigma, _EXP_LIMIT[dtype], dq, dk, dv,
    )
    return fold_slices(dq, q_map, qa.shape), fold_slices(dk, kv_map, ka.shape), fold_slices(dv, kv_map, va.shape)
