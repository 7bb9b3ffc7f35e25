"""Numba backward (VJP) of differential attention V2.

Source: Ye, Dong, Sun & Wei, "Differential Transformer V2" (Microsoft, 2026). With
``O_h = o_{2h} − s_h o_{2h+1}``, ``s = sigmoid(λ)``, the upstream gradient of the ``2H`` softmax heads is
``dO`` on the even heads and ``−s ⊙ dO`` on the odd ones; one softmax VJP
(:func:`attnlab.fastpath.numba.backward.softmax.softmax_grads`, FlashAttention-2 style) gives ``dq``,
``dk``, ``dv``, and ``dλ = −s (1 − s) Σ_c dO_c o_{2h+1,c}`` (summed onto ``λ``'s broadcast shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps, fast_dtype, float_arrays
from attnlab.fastpath.numba.backward._plumbing import sum_to_shape, upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.fastpath.numba.diff_v2 import check_heads, gate_of
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.validation import check_last_dim, check_scale, gradients_checked


@gradients_checked
def diff_v2_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    lam: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.diff_v2.diff_v2_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H, n, d_v)``.
        q, k, v, lam, scale, causal, mask: as the forward.

    Returns:
        ``(dq, dk, dv, dlam)`` shaped and typed like ``q``, ``k``, ``v``, ``lam``.
    """
    dtype = fast_dtype(q, k, v, lam)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_heads(qa)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, _, _ = attention_maps(qa, ka, va)
    n, d, d_v = qa.shape[-2], qa.shape[-1], va.shape[-1]
    sigma = check_scale(scale, d**-0.5)
    heads = softmax_attention(qa, ka, va, scale=sigma, causal=causal, mask=mask)
    out_shape = (*lead[:-1], lead[-1] // 2, n, d_v)
    lam_arr, gate = gate_of(lam, out_shape, dtype)
    grad = upstream_gradient(grad_out, out_shape, dtype)
    head_grad = np.empty((*lead, n, d_v), dtype=dtype)
    head_grad[..., 0::2, :, :] = grad
    head_grad[..., 1::2, :, :] = -gate * grad
    dq, dk, dv = softmax_grads(
        head_grad, np.broadcast_to(qa, (*lead, n, d)), ka, va, scale=sigma, causal=causal, mask=mask
    )
    odd = heads[..., 1::2, :, :]
    dlam = -np.sum(grad * odd, axis=-1, keepdims=True, dtype=np.float64) * gate * (1.0 - gate)
    return sum_to_shape(dq, qa.shape), dk, dv, sum_to_shape(dlam.astype(dtype), lam_arr.shape)
