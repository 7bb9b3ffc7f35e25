"""Numba backward (VJP) of differential attention (DIFF Transformer core).

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258). The operator is
``O = softmax(σ Q1 K1ᵀ + M) V − λ ∘ softmax(σ Q2 K2ᵀ + M) V``, so its VJP is two softmax backwards
(:mod:`attnlab.fastpath.numba.backward.softmax`), the second with upstream gradient ``−λ ∘ dO``;
``dV`` is the sum of both. ``λ`` (a float or an array broadcastable to the output) is an option:
no gradient is returned for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps, fast_dtype, precision
from attnlab.fastpath.numba.backward._plumbing import sum_to_shape, upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.reference.differential import check_differential
from attnlab.validation import broadcast_batch, check_scale, gradients_checked


@gradients_checked
def differential_vjp(
    grad_out: Any,
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.differential.differential_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H, n, d_v)``.
        q1, q2: ``(..., H, n, d)``; k1, k2: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``.
        lam: float or array broadcastable to the output (a constant here).
        scale, causal, mask: as the forward.

    Returns:
        ``(dq1, dk1, dq2, dk2, dv)`` shaped and typed like the corresponding inputs.
    """
    dtype = fast_dtype(q1, k1, q2, k2, v)
    with precision(dtype):
        (q1a, k1a, q2a, k2a, va), lam_value, _ = check_differential(
            q1, k1, q2, k2, v, lam=lam, scale=scale, causal=causal, mask=mask
        )
    lead1, _, _ = attention_maps(q1a, k1a, va, ("q1", "k1", "v"))
    lead2, _, _ = attention_maps(q2a, k2a, va, ("q2", "k2", "v"))
    lead = broadcast_batch(("q1", "q2"), (np.empty((*lead1, 1, 1)), np.empty((*lead2, 1, 1))))
    n, d, d_v = q1a.shape[-2], q1a.shape[-1], va.shape[-1]
    out_shape = (*lead, n, d_v)
    grad = upstream_gradient(grad_out, out_shape, dtype)
    second = np.ascontiguousarray(-(np.asarray(lam_value, dtype=dtype) * grad), dtype=dtype)
    sigma = check_scale(scale, d**-0.5)
    q1b = np.broadcast_to(q1a, (*lead, n, d))
    q2b = np.broadcast_to(q2a, (*lead, n, d))
    dq1, dk1, dv1 = softmax_grads(grad, q1b, k1a, va, scale=sigma, causal=causal, mask=mask)
    dq2, dk2, dv2 = softmax_grads(second, q2b, k2a, va, scale=sigma, causal=causal, mask=mask)
    return sum_to_shape(dq1, q1a.shape), dk1, sum_to_shape(dq2, q2a.shape), dk2, dv1 + dv2
