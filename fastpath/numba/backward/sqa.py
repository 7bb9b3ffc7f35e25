"""Numba backward (VJP) of the Sparse Query Attention layer.

Source: Filipek, "Sparse Query Attention (SQA)", Reactive AI, 2025 (arXiv 2510.01817). The output
projection's gradient gives each head's upstream gradient ``dO_h = dY W_O^hᵀ`` (and ``dW_O^h = O_hᵀ dY``);
one softmax VJP (:func:`attnlab.fastpath.numba.backward.softmax.softmax_grads`) gives ``dQ, dK, dV``;
the projections' gradients close the chain (``dX = Σ_h dQ_h W_Q^hᵀ``, ``dW_Q^h = Xᵀ dQ_h``, and the same
for the context through ``K`` and ``V``), summed over the batch for the weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps
from attnlab.fastpath.numba.backward._plumbing import sum_to_shape, upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.fastpath.numba.sqa import prepare
from attnlab.validation import gradients_checked


def _weight_grad(inputs: np.ndarray, grads: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``Σ_batch inputsᵀ grads`` per head: ``(..., n, D)`` and ``(..., H, n, e)`` -> ``(H, D, e)``."""
    per_batch = np.matmul(np.swapaxes(inputs, -1, -2)[..., None, :, :], grads)
    return np.ascontiguousarray(per_batch.reshape(-1, *shape).sum(axis=0), dtype=grads.dtype)


def _input_grad(grads: np.ndarray, w: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``Σ_h grads_h W^hᵀ`` summed onto the input's shape."""
    return sum_to_shape(np.matmul(grads, np.swapaxes(w, -1, -2)).sum(axis=-3), shape)


@gradients_checked
def sqa_vjp(
    grad_out: Any,
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, ...]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.sqa.sqa_attention`.

    Args:
        grad_out: ``∂loss/∂Y``, shape ``(..., n, D_out)``.
        x, context, w_q, w_k, w_v, w_o, scale, causal, mask: as the forward.

    Returns:
        ``(dx, dcontext, dw_q, dw_k, dw_v, dw_o)`` shaped and typed like the inputs.
    """
    p = prepare(x, context, w_q, w_k, w_v, w_o, scale=scale, causal=causal, mask=mask)
    wq, wk, wv, wo = p.weights
    lead, _, _ = attention_maps(p.q, p.k, p.v)
    heads = softmax_attention(p.q, p.k, p.v, scale=p.scale, causal=p.causal, mask=p.mask)
    grad = upstream_gradient(grad_out, (*lead[:-1], p.x.shape[-2], wo.shape[-1]), p.dtype)
    d_heads = np.ascontiguousarray(np.matmul(grad[..., None, :, :], np.swapaxes(wo, -1, -2)), dtype=p.dtype)
    dw_o = _weight_grad_heads(heads, grad, wo.shape)
    q_b = np.broadcast_to(p.q, (*lead, *p.q.shape[-2:]))
    dq, dk, dv = softmax_grads(d_heads, q_b, p.k, p.v, scale=p.scale, causal=p.causal, mask=p.mask)
    dq = sum_to_shape(dq, p.q.shape)
    dx = _input_grad(dq, wq, p.x.shape)
    dcontext = sum_to_shape(
        _input_grad(dk, wk, p.context.shape) + _input_grad(dv, wv, p.context.shape), p.context.shape
    )
    return (
        dx,
        dcontext,
        _weight_grad(p.x, dq, wq.shape),
        _weight_grad(p.context, dk, wk.shape),
        _weight_grad(p.context, dv, wv.shape),
        dw_o,
    )


def _weight_grad_heads(heads: np.ndarray, grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``dW_O^h = Σ_batch O_hᵀ dY``: ``(..., H, n, e)`` and ``(..., n, D)`` -> ``(H, e, D)``."""
    per_batch = np.matmul(np.swapaxes(heads, -1, -2), grad[..., None, :, :])
    return np.ascontiguousarray(per_batch.reshape(-1, *shape).sum(axis=0), dtype=grad.dtype)
