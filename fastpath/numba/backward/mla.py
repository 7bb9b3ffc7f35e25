"""Numba backward (VJP) of multi-head latent attention w.r.t. the token states ``x``.

Source: DeepSeek-AI, "DeepSeek-V2" (arXiv 2405.04434) and the DeepSeek-V3 inference code. The forward
(:mod:`attnlab.fastpath.numba.mla`) runs the weight-absorbed form: ``q̃_h = (W_UK^h)ᵀ q^C_h`` scores
an MQA over the latent, key ``[ĉ; RoPE(k^R)]`` and value ``ĉ``, and ``o_h = W_UV^h õ_h``. The naive
form is the same function of ``x``, so one backward serves both ``impl`` values. The chain rule runs
back through the projections in NumPy (dense GEMMs); only the attention core needs a kernel, the
flash-style softmax VJP of :mod:`.softmax` (whose GQA fold sums the heads' key/value gradients into
the one shared latent). Row-vector convention ``y = x W``, so ``∂x = ∂y Wᵀ``. Local Jacobians:

    RMSNorm  y = w ∘ x r,  r = (mean x² + ε)^(-1/2):   ∂x = r u − r³ x mean(u ∘ x),  u = w ∘ ∂y;
    RoPE     a rotation of each pair (2p, 2p+1) by θ_p t:  ∂x = the rotation by −θ_p t of ∂y.

The weights are not differentiated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.backward._plumbing import upstream_gradient
from attnlab.fastpath.numba.backward.softmax import softmax_grads
from attnlab.reference.mla import (
    RMS_EPS,
    MLAWeights,
    _heads,
    check_mla_options,
    checked_weights,
    rms_norm,
    rope_interleaved,
)
from attnlab.validation import check_last_dim, check_scale, gradients_checked


def rms_norm_vjp(x: np.ndarray, weight: np.ndarray, grad: np.ndarray, eps: float = RMS_EPS) -> np.ndarray:
    """Gradient w.r.t. ``x`` of ``rms_norm(x, weight)`` (last axis) given ``grad = ∂loss/∂y``."""
    inv_rms = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    weighted = grad * weight
    along_x = np.mean(weighted * x, axis=-1, keepdims=True)
    return np.asarray(inv_rms * weighted - inv_rms**3 * along_x * x, dtype=x.dtype)


def rope_vjp(grad: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """Gradient through interleaved RoPE: each pair rotation is orthogonal, so its transpose is the
    rotation by the opposite angle (RoPE at negated positions)."""
    return rope_interleaved(grad, -positions, base).astype(grad.dtype, copy=False)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """``(..., H, n, c) -> (..., n, H·c)``, the inverse of :func:`attnlab.reference.mla._heads`."""
    return np.swapaxes(x, -2, -3).reshape(*x.shape[:-3], x.shape[-2], x.shape[-3] * x.shape[-1])


@gradients_checked
def mla_vjp(
    grad_out: Any,
    x: Any,
    weights: MLAWeights,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> tuple[np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.mla.mla_attention` w.r.t. ``x``.

    Args:
        grad_out: ``∂loss/∂y`` of shape ``(..., n, D)`` (the output's shape).
        x: ``(..., n, D)`` token states; weights: :class:`attnlab.reference.MLAWeights` (cast to the
            dtype of ``x``, not differentiated).
        impl, scale, causal, mask, rope_base: as the forward (both ``impl`` values give the same gradient).

    Returns:
        ``(dx,)`` shaped and typed like ``x`` (float32 stays float32).
    """
    dtype = fast_dtype(x)
    with precision(dtype):
        weights = checked_weights(weights)
    impl, rope_base = check_mla_options(impl, rope_base)
    (xa,) = float_arrays(("x",), (x,), dtype)
    check_last_dim("x", xa, weights.d_model, "D, the model width of weights")
    grad = upstream_gradient(grad_out, xa.shape, dtype)
    h, d_nope, d_rope, d_c, d_v = weights.n_heads, weights.d_nope, weights.d_rope, weights.d_latent, weights.d_v
    sigma = check_scale(scale, (d_nope + d_rope) ** -0.5)
    n = xa.shape[-2]
    positions = np.arange(n, dtype=dtype)

    def w(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=dtype)

    # Forward activations (as the forward computes them).
    if weights.w_dq is None or weights.q_norm is None:
        q_down, q_latent = None, xa
    else:
        q_down = xa @ w(weights.w_dq)
        q_latent = rms_norm(q_down, w(weights.q_norm))
    q = _heads(q_latent @ w(weights.w_uq), h)  # (..., H, n, d_nope + d_rope)
    q_rope = rope_interleaved(q[..., d_nope:], positions, rope_base).astype(dtype, copy=False)
    kv = xa @ w(weights.w_dkv)
    c_hat = rms_norm(kv[..., :d_c], w(weights.kv_norm))[..., None, :, :]  # (..., 1, n, d_c)
    k_rope = rope_interleaved(kv[..., d_c:], positions, rope_base).astype(dtype, copy=False)[..., None, :, :]
    w_ukv = w(weights.w_ukv).reshape(d_c, h, d_nope + d_v)
    w_uk, w_uv = w_ukv[..., :d_nope], w_ukv[..., d_nope:]
    q_absorbed = q[..., :d_nope] @ np.transpose(w_uk, (1, 2, 0))  # (..., H, n, d_c)
    queries = np.ascontiguousarray(np.concatenate([q_absorbed, q_rope], -1))
    keys = np.ascontiguousarray(np.concatenate([c_hat, k_rope], -1))
    values = np.ascontiguousarray(c_hat)

    # Backward: output projection, value up-projection, the latent MQA.
    grad_heads = _heads(grad @ w(weights.w_o).T, h)  # (..., H, n, d_v)
    grad_latent_out = np.ascontiguousarray(grad_heads @ np.transpose(w_uv, (1, 2, 0)))  # (..., H, n, d_c)
    grad_queries, grad_keys, grad_values = softmax_grads(
        grad_latent_out, queries, keys, values, scale=sigma, causal=causal, mask=mask
    )
    # Query path: absorbed nope part back through W_UK, RoPE part back through the rotation.
    grad_q = np.concatenate(
        [
            grad_queries[..., :d_c] @ np.transpose(w_uk, (1, 0, 2)),
            rope_vjp(grad_queries[..., d_c:], positions, rope_base),
        ],
        -1,
    )
    grad_q_latent = _merge_heads(grad_q) @ w(weights.w_uq).T
    if q_down is None:
        grad_x = grad_q_latent
    else:
        grad_x = rms_norm_vjp(q_down, w(weights.q_norm), grad_q_latent) @ w(weights.w_dq).T
    # KV path: the latent is both key and value; the RoPE key is shared by all heads.
    grad_c_hat = grad_keys[..., 0, :, :d_c] + grad_values[..., 0, :, :]
    grad_kv = np.concatenate(
        [
            rms_norm_vjp(kv[..., :d_c], w(weights.kv_norm), grad_c_hat),
            rope_vjp(grad_keys[..., 0, :, d_c:], positions, rope_base),
        ],
        -1,
    )
    grad_x = grad_x + grad_kv @ w(weights.w_dkv).T
    return (np.ascontiguousarray(grad_x, dtype=dtype),)
