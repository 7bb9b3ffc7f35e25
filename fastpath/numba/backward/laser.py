"""Numba backward (VJP) of LASER attention, ``O_ic = LSE_j(S_ij + V_jc) − LSE_j(S_ij)``.

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493). With ``a = softmax(S)`` and the per-channel weights
``w_ijc = a_ij e^{V_jc − O_ic} = exp(S_ij + V_jc − L_i − O_ic)`` (``L_i`` the row log-sum-exp; each
``w_i·c`` is a softmax over ``j``, so its exponent is ≤ 0 and nothing overflows):

    dV_jc = Σ_i dO_ic w_ijc,   dS_ij = Σ_c dO_ic (w_ijc − a_ij),   dQ = σ dS K,   dK = σ dSᵀ Q.

Tiled like the softmax backward: ``S`` is recomputed per (row block, key tile), never stored whole,
from the same scaled-query GEMM tiles as the softmax forward that supplies each row's max ``μ_i`` and
sum ``ℓ_i``, so ``a_ij = e^{S_ij − μ_i} / ℓ_i`` is exact for the largest weight (recomputing from the
log-sum-exp ``L_i`` would lose ``eps·|L_i|`` in every weight). Per tile the weights factor through the
tile's column maxima of ``V`` into two GEMMs (see
:func:`laser_tile`); rows where that factoring would overflow fall back to one exponential per
(key, channel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays, mask_slices
from attnlab.fastpath.numba._kernels import BLOCK_COLS, BLOCK_ROWS, NEG_INF, exp_nonpositive, key_end, scaled_rows
from attnlab.fastpath.numba.backward._plumbing import fold_slices, upstream_gradient
from attnlab.fastpath.numba.laser import laser_attention
from attnlab.fastpath.numba.softmax import softmax_forward_stats
from attnlab.validation import check_last_dim, check_scale, gradients_checked

#: Largest ``t_c − O_ic`` for which ``e^{t − O}`` is formed (per dtype): far below overflow, and a weight
#: ``a E`` lost to underflow next to it is at most ``e^{−87 + 60}`` (float32) of the row's unit mass.
_EXP_LIMIT = {np.dtype(np.float32): 60.0, np.dtype(np.float64): 600.0}


@njit(cache=True)
def laser_row_exact(st, vt, dob, joint, mu, sdo_r, inv_ell, r, c0, i, offset, causal, has_mask, mask3, mi, sigma, dvt):
    """Row ``r`` of a tile with one exponential per (key, channel): ``st[r]`` (scaled logits) becomes ``σ dS``.

    ``w_ijc = exp((S_ij − μ_i) + V_jc − joint_ic)`` with ``joint_ic = O_ic + log ℓ_i``."""
    limit = i + offset
    for c in range(st.shape[1]):
        j = c0 + c
        if (causal and j > limit) or (has_mask and mask3[mi, i, j] == 0):
            st[r, c] = 0.0
            continue
        t = st[r, c] - mu
        g = st.dtype.type(0.0)
        for ch in range(vt.shape[1]):
            x = t + vt[c, ch] - joint[r, ch]
            if x > 0.0:
                x = x - x
            contribution = dob[r, ch] * exp_nonpositive(x)
            dvt[c, ch] += contribution
            g += contribution
        if t > 0.0:
            t = t - t
        st[r, c] = sigma * (g - exp_nonpositive(t) * inv_ell * sdo_r)


@njit(cache=True)
def laser_tile(
    st, vt, dob, joint, out_b, peak_b, total_b, sdo, r0, c0, offset, causal, has_mask, mask3, mi, scale, limit, dvt
):
    """One (row block, key tile): ``st`` (scaled logits ``σ q·k``) becomes ``σ dS``; ``dvt`` accumulates ``dV``.

    With the tile's column maxima ``t_c``: ``w_ijc = a_ij E_jc e^{t_c − O_ic}``, ``E = e^{V − t} ≤ 1``, so
    with ``G_ic = dO_ic e^{t_c − O_ic}`` the tile is two GEMMs, ``dV += E ∘ (aᵀ G)`` and
    ``Σ_c dO_ic w_ijc = a_ij (G Eᵀ)_ij``. A row whose ``t_c − O_ic`` exceeds ``limit`` (``e^{t − O}`` would
    overflow) is done exactly, one exponential per (key, channel), by :func:`laser_row_exact`.
    ``joint[r, c] = O_ic + log ℓ_i``, ``sdo[r] = Σ_c dO_ic``.
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
        ell = total_b[i]
        if not (ell > 0.0):
            for c in range(bc):
                st[r, c] = 0.0
            continue
        mu = peak_b[i]
        inv = 1.0 / ell
        for ch in range(dv):
            if shift[ch] - out_b[i, ch] > limit:
                exact[r] = True
        limit_j = i + offset
        for c in range(bc):
            j = c0 + c
            hidden = exact[r] or (causal and j > limit_j) or (has_mask and mask3[mi, i, j] == 0)
            x = st[r, c] - mu
            if x > 0.0:
                x = x - x
            st[r, c] = 0.0 if hidden else exp_nonpositive(x) * inv
        if not exact[r]:
            for ch in range(dv):
                weighted[r, ch] = dob[r, ch] * np.exp(shift[ch] - out_b[i, ch])
    dvt += shifted * np.dot(st.T, weighted)
    mixed = np.dot(weighted, shifted.T)
    for r in range(br):
        if exact[r]:
            st[r] = raw[r]
            i = r0 + r
            laser_row_exact(
                st,
                vt,
                dob,
                joint,
                peak_b[i],
                sdo[r],
                1.0 / total_b[i],
                r,
                c0,
                i,
                offset,
                causal,
                has_mask,
                mask3,
                mi,
                sigma,
                dvt,
            )
            continue
        for c in range(bc):
            st[r, c] = sigma * st[r, c] * (mixed[r, c] - sdo[r])


@njit(cache=True, parallel=True)
def laser_backward(
    q3,
    k3,
    v3,
    do3,
    joint3,
    out3,
    peak,
    total,
    q_map,
    kv_map,
    mask3,
    mask_map,
    has_mask,
    causal,
    scale,
    limit,
    dq,
    dk,
    dv,
):
    """Per output slice ``b``: ``dq[b]``, ``dk[b]``, ``dv[b]`` of LASER (``dk``/``dv`` zeroed by the caller).
    Row blocks and key tiles are the softmax forward's, so the logits are recomputed bit for bit."""
    slices, n, d = dq.shape
    m = k3.shape[1]
    offset = m - n
    for b in prange(slices):
        qi, ki, mi = q_map[b], kv_map[b], mask_map[b]
        for r0 in range(0, n, BLOCK_ROWS):
            r1 = min(n, r0 + BLOCK_ROWS)
            qb = q3[qi, r0:r1]
            qs = scaled_rows(q3, qi, r0, r1, scale)
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
                st = np.ascontiguousarray(np.dot(kt, qs.T).T)
                laser_tile(
                    st,
                    v3[ki, c0:c1],
                    dob,
                    joint3[b, r0:r1],
                    out3[b],
                    peak[b],
                    total[b],
                    sdo,
                    r0,
                    c0,
                    offset,
                    causal,
                    has_mask,
                    mask3,
                    mi,
                    scale,
                    limit,
                    dv[b, c0:c1],
                )
                dk[b, c0:c1] += np.dot(st.T, qb)
                dqb += np.dot(st, kt)
            dq[b, r0:r1] = dqb


@gradients_checked
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
    _, _, peak, total = softmax_forward_stats(qa, ka, va, scale=sigma, causal=causal, mask=mask)
    slices = len(q_map)
    peak2 = np.ascontiguousarray(peak.reshape(slices, n))
    total2 = np.ascontiguousarray(total.reshape(slices, n))
    with np.errstate(divide="ignore"):
        log_total = np.log(np.where(total2 > 0, total2, 1.0))
    joint = np.ascontiguousarray((log_total[..., None] + out.reshape(slices, n, d_v)).astype(dtype))
    dq = np.empty((slices, n, d), dtype=dtype)
    dk = np.zeros((slices, m, d), dtype=dtype)
    dv = np.zeros((slices, m, d_v), dtype=dtype)
    laser_backward(
        as_slices(qa),
        as_slices(ka),
        as_slices(va),
        grad.reshape(slices, n, d_v),
        joint,
        np.ascontiguousarray(out.reshape(slices, n, d_v)),
        peak2,
        total2,
        q_map,
        kv_map,
        mask3,
        mask_map,
        has_mask,
        causal,
        sigma,
        _EXP_LIMIT[dtype],
        dq,
        dk,
        dv,
    )
    return fold_slices(dq, q_map, qa.shape), fold_slices(dk, kv_map, ka.shape), fold_slices(dv, kv_map, va.shape)
