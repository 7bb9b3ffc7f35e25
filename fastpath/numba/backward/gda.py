"""Numba backward (VJP) of Grouped Differential Attention.

Source: Lim et al., "Grouped Differential Attention", 2025 (arXiv 2510.06949). With
``z = O1 − λ rep(O2)``, ``ρ = 1 / sqrt(mean(z²) + ε)`` and ``y = f w ⊙ z ρ`` (``f = 1 − λ_init``), the
gradient of ``z`` is ``f ρ (w ⊙ g − z ρ² mean(z ⊙ w ⊙ g))`` (``f g`` without the norm). ``O1`` takes it
directly and ``O2`` takes ``−λ`` times its sum over the ``r`` signal heads of each group; each branch is
one softmax VJP (:func:`attnlab.fastpath.numba.backward.softmax.softmax_grads`), and the gradients are
folded back onto the query groups, the interleaved KV pairs and the two value halves. ``norm_weight``
is an option: no gradient is returned for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps
from attnlab.fastpath.numba.backward._plumbing import sum_to_shape, upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.fastpath.numba.gda import Layout, branches, inverse_rms, prepare
from attnlab.reference.gda import RMS_EPS, share_noise
from attnlab.validation import check_last_dim, check_scale, gradients_checked


def _branch_grads(
    grad: np.ndarray, q: np.ndarray, k: np.ndarray, c: Layout, mask: Any, sigma: float
) -> tuple[np.ndarray, ...]:
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    lead, _, _ = attention_maps(q, k, c.values)
    dq, dk, dv = softmax_grads(
        grad, np.broadcast_to(q, (*lead, *q.shape[-2:])), k, c.values, scale=sigma, causal=c.causal, mask=mask
    )
    return sum_to_shape(dq, q.shape), dk, dv


@gradients_checked
def gda_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    ratio: int,
    lam: float,
    lam_init: float | None = None,
    norm: bool = True,
    norm_weight: Any = None,
    eps: float = RMS_EPS,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.gda.gda_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H₁, n, 2 d_v)``.
        q, k, v and the options: as the forward.

    Returns:
        ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v``.
    """
    c = prepare(
        q,
        k,
        v,
        ratio=ratio,
        lam=lam,
        lam_init=lam_init,
        norm=norm,
        norm_weight=norm_weight,
        eps=eps,
        scale=scale,
        causal=causal,
        mask=mask,
    )
    dtype, r = c.dtype, c.ratio
    sigma = check_scale(scale, c.signal_q.shape[-1] ** -0.5)
    signal, noise = branches(c)
    grad = upstream_gradient(grad_out, signal.shape, dtype) * dtype.type(c.factor)
    if c.norm:
        z = signal - dtype.type(c.lam) * share_noise(noise, r)
        rho = inverse_rms(z, c.eps)
        wg = c.weight * grad
        grad = rho * (wg - z * rho * rho * np.mean(z * wg, axis=-1, keepdims=True))
    d_signal = np.ascontiguousarray(grad, dtype=dtype)
    per_group = grad.reshape(*grad.shape[:-3], grad.shape[-3] // r, r, *grad.shape[-2:])
    d_noise = np.ascontiguousarray(-dtype.type(c.lam) * per_group.sum(axis=-3), dtype=dtype)
    dsq, dk1, dvals1 = _branch_grads(d_signal, c.signal_q, c.k1, c, c.signal_mask, sigma)
    dnq, dk2, dvals2 = _branch_grads(d_noise, c.noise_q, c.k2, c, c.noise_mask, sigma)
    heads, d = np.shape(q)[-3], np.shape(q)[-1]
    groups = heads // (r + 1)
    dq = np.empty((*dsq.shape[:-3], groups, r + 1, *dsq.shape[-2:]), dtype=dtype)
    dq[..., :r, :, :] = dsq.reshape(*dsq.shape[:-3], groups, r, *dsq.shape[-2:])
    dq[..., r, :, :] = dnq
    dk = np.empty((*dk1.shape[:-3], 2 * dk1.shape[-3], *dk1.shape[-2:]), dtype=dtype)
    dk[..., 0::2, :, :], dk[..., 1::2, :, :] = dk1, dk2
    dvals = dvals1 + dvals2
    d_v = dvals.shape[-1] // 2
    dv = np.empty((*dvals.shape[:-3], 2 * dvals.shape[-3], dvals.shape[-2], d_v), dtype=dtype)
    dv[..., 0::2, :, :], dv[..., 1::2, :, :] = dvals[..., :d_v], dvals[..., d_v:]
    return dq.reshape(*dq.shape[:-4], heads, dq.shape[-2], d), dk, dv
