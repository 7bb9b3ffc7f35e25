"""Numba backward (VJP) of Hamming attention on sign codes (HAD).

Source: Horton et al. 2025, "Hamming Attention Distillation" (arXiv 2502.01770). The logits
``σ sign(q_i)·sign(k_j)`` (``sign(0) = +1``) are piecewise constant in ``q`` and ``k``: their gradient
is zero almost everywhere, so ``dq`` and ``dk`` are zeros. The value gradient is ``dV = Pᵀ dO``,
computed by the tiled softmax backward with the ±1 codes as queries and keys (its ``dQ``/``dK``
outputs are discarded). ``top_n`` becomes an explicit boolean mask (the ``N`` largest visible logits
per row and every tie of the ``N``-th), which is the one case that forms an ``n × m`` array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps, fast_dtype, float_arrays
from attnlab.fastpath.numba.backward._plumbing import upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.reference.hamming import check_hamming_scale
from attnlab.validation import allowed_positions, check_last_dim, check_positive_int, expand_kv_heads, gradients_checked


def sign_code(x: np.ndarray) -> np.ndarray:
    """``sign(x)`` as ±1 in the dtype of ``x`` with ``sign(0) = +1``."""
    return np.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def top_n_mask(
    q_code: np.ndarray, k_code: np.ndarray, v: np.ndarray, *, causal: bool, mask: Any, top_n: int
) -> np.ndarray:
    """Boolean ``(..., n, m)``: visible keys whose logit is at least the row's ``N``-th largest visible logit."""
    qe, ke, _ = expand_kv_heads(q_code, k_code, v)
    n, m = qe.shape[-2], ke.shape[-2]
    allowed = np.broadcast_to(
        allowed_positions(n, m, causal=causal, mask=mask, lead=qe.shape[:-2]), (*qe.shape[:-2], n, m)
    )
    scores = np.where(allowed, qe @ np.swapaxes(ke, -1, -2), -np.inf)
    keep = min(top_n, m)
    threshold = -np.partition(-scores, keep - 1, axis=-1)[..., keep - 1 : keep]
    return allowed & (scores >= threshold)


@gradients_checked
def hamming_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.hamming.hamming_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H, n, d_v)``.
        q: ``(..., H, n, d)``; k: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``; ``H_kv | H``.
        scale, causal, mask, top_n: as the forward.

    Returns:
        ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v``; ``dq`` and ``dk`` are zeros (the sign
        codes are locally constant), ``dv = Pᵀ dO`` summed over the query heads of each KV head.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, _, _ = attention_maps(qa, ka, va)
    sigma = check_hamming_scale(scale, qa.shape[-1], dtype)
    grad = upstream_gradient(grad_out, (*lead, qa.shape[-2], va.shape[-1]), dtype)
    q_code, k_code = sign_code(qa), sign_code(ka)
    if top_n is not None:
        mask = top_n_mask(q_code, k_code, va, causal=causal, mask=mask, top_n=check_positive_int("top_n", top_n))
        causal = False
    _, _, dv = softmax_grads(grad, q_code, k_code, va, scale=sigma, causal=causal, mask=mask)
    return np.zeros_like(qa), np.zeros_like(ka), dv
