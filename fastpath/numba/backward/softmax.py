"""Numba backward (VJP) of scaled dot-product softmax attention (MHA/MQA/GQA, causal or masked).

FlashAttention-2 style (Dao 2023, arXiv 2307.08691, Algorithm 2): the forward supplies the output ``O``
and each row's max ``μ_i`` and sum ``ℓ_i = Σ_j e^{s_ij − μ_i}``; the backward recomputes
``P_ij = e^{s_ij − μ_i} / ℓ_i`` tile by tile from the same scaled-query GEMM tiles as the forward
(bitwise the same logits, so a row's largest weight is exact; recomputing from the log-sum-exp would
lose ``eps·|lse|`` in every weight) and accumulates

    D_i = Σ_c dO_ic O_ic,   dS = P ∘ (dP − D),   dP = dO Vᵀ,
    dQ = σ dS K,   dK = dSᵀ (σ Q),   dV = Pᵀ dO

with nothing of size ``n·m`` formed. Rows without a visible key have ``ℓ_i = 0`` and zero gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays, mask_slices
from attnlab.fastpath.numba._kernels import BLOCK_COLS, BLOCK_ROWS, exp_nonpositive, key_end, scaled_rows
from attnlab.fastpath.numba.backward._plumbing import fold_slices, upstream_gradient
from attnlab.fastpath.numba.softmax import softmax_forward_stats
from attnlab.validation import check_last_dim, check_scale, gradients_checked


@njit(cache=True)
def probabilities_and_score_grads(st, dpt, r0, c0, peak_b, total_b, delta_b, offset, causal, has_mask, mask3, mi):
    """In place on one transposed ``(keys, rows)`` tile: ``st`` (scaled logits ``σ q·k``) becomes ``Pᵀ``
    and ``dpt`` (``(dO vᵀ)ᵀ``) becomes ``dSᵀ = Pᵀ ∘ (dPᵀ − D)``; invisible pairs get 0 in both."""
    bc, br = st.shape
    for r in range(br):
        i = r0 + r
        ell = total_b[i]
        mu = peak_b[i]
        row_delta = delta_b[i]
        limit = i + offset
        inv = 1.0 / ell if ell > 0.0 else 0.0
        for c in range(bc):
            j = c0 + c
            hidden = ell <= 0.0 or (causal and j > limit) or (has_mask and mask3[mi, i, j] == 0)
            x = st[c, r] - mu
            if x > 0.0:
                x = x - x
            p = 0.0 if hidden else exp_nonpositive(x) * inv
            st[c, r] = p
            dpt[c, r] = p * (dpt[c, r] - row_delta)


@njit(cache=True, parallel=True)
def softmax_backward(
    q3, k3, v3, do3, peak, total, delta, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, dq, dk, dv
):
    """Per output slice ``b``: ``dq[b]``, ``dk[b]``, ``dv[b]`` of ``softmax(σ q kᵀ + M) v`` (``dk``/``dv``
    zero-initialised by the caller; one slice per task so no two tasks write the same rows). Row blocks
    and key tiles are the forward's, so the logits are recomputed bit for bit."""
    slices, n, d = dq.shape
    m = k3.shape[1]
    offset = m - n
    sigma = dq.dtype.type(scale)
    for b in prange(slices):
        qi, ki, mi = q_map[b], kv_map[b], mask_map[b]
        for r0 in range(0, n, BLOCK_ROWS):
            r1 = min(n, r0 + BLOCK_ROWS)
            qs = scaled_rows(q3, qi, r0, r1, scale)
            dob = do3[b, r0:r1]
            dqb = np.zeros((r1 - r0, d), dtype=dq.dtype)
            kend = key_end(r1, n, m, causal)
            for c0 in range(0, kend, BLOCK_COLS):
                c1 = min(kend, c0 + BLOCK_COLS)
                kt = k3[ki, c0:c1]
                st = np.dot(kt, qs.T)
                dpt = np.dot(v3[ki, c0:c1], dob.T)
                probabilities_and_score_grads(
                    st, dpt, r0, c0, peak[b], total[b], delta[b], offset, causal, has_mask, mask3, mi
                )
                dv[b, c0:c1] += np.dot(st, dob)
                dk[b, c0:c1] += np.dot(dpt, qs)
                dqb += np.dot(dpt.T, kt)
            dq[b, r0:r1] = dqb * sigma


def softmax_grads(
    grad: np.ndarray,
    qa: np.ndarray,
    ka: np.ndarray,
    va: np.ndarray,
    *,
    scale: float,
    causal: bool,
    mask: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``softmax(σ Q Kᵀ + M) V`` for validated arrays of one float dtype.

    ``grad`` has the output shape ``(*lead, n, d_v)``; returns arrays shaped like ``qa``, ``ka``, ``va``.
    """
    dtype = qa.dtype
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    n, m, d, d_v = qa.shape[-2], ka.shape[-2], qa.shape[-1], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    out, _, peak, total = softmax_forward_stats(qa, ka, va, scale=scale, causal=causal, mask=mask)
    do3 = np.ascontiguousarray(grad.reshape(-1, n, d_v))
    delta = np.einsum("bnc,bnc->bn", do3, out.reshape(-1, n, d_v), dtype=np.float64).astype(dtype)
    slices = len(q_map)
    dq = np.empty((slices, n, d), dtype=dtype)
    dk = np.zeros((slices, m, d), dtype=dtype)
    dv = np.zeros((slices, m, d_v), dtype=dtype)
    softmax_backward(
        as_slices(qa),
        as_slices(ka),
        as_slices(va),
        do3,
        np.ascontiguousarray(peak.reshape(slices, n)),
        np.ascontiguousarray(total.reshape(slices, n)),
        delta,
        q_map,
        kv_map,
        mask3,
        mask_map,
        has_mask,
        causal,
        scale,
        dq,
        dk,
        dv,
    )
    return fold_slices(dq, q_map, qa.shape), fold_slices(dk, kv_map, ka.shape), fold_slices(dv, kv_map, va.shape)


@gradients_checked
def softmax_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.softmax.softmax_attention`.

    Args:
        grad_out: ``∂loss/∂O`` of shape ``(..., H, n, d_v)`` (the output's shape).
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv | H``.
        scale, causal, mask: as the forward (σ default ``d_k ** -0.5``; bottom-right causal; boolean
            mask broadcastable to ``(..., n, m)``, True = attend).

    Returns:
        ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v`` (float32 stays float32); the query
        heads of a GQA group sum into their KV head.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, _, _ = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    grad = upstream_gradient(grad_out, (*lead, qa.shape[-2], va.shape[-1]), dtype)
    return softmax_grads(grad, qa, ka, va, scale=sigma, causal=causal, mask=mask)
