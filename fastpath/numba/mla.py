"""Numba fast path of multi-head latent attention in the weight-absorbed form.

Source: DeepSeek-AI, "DeepSeek-V2" (arXiv 2405.04434) and the DeepSeek-V3 inference code
(``attn_impl="absorb"``). Queries are absorbed into the latent space, ``q̃_h = (W_UK^h)ᵀ q^C_h``, and
attention runs as an MQA over the cached latent: key ``[ĉ; RoPE(k^R)]`` and value ``ĉ``, shared by all
heads, through the flash-style kernel of :mod:`.softmax` (the shared KV slice is selected by the
head index map, never repeated). Projections are dense GEMMs in NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, numba_checked, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.mla import MLAWeights, _heads, check_mla_options, checked_weights, rms_norm, rope_interleaved
from attnlab.validation import check_last_dim, check_scale


@numba_checked
def mla_attention(
    x: Any,
    weights: MLAWeights,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> np.ndarray:
    """Multi-head latent attention, evaluated in the absorbed form whatever ``impl`` names.

    Same call as :func:`attnlab.reference.mla_attention` (``impl`` is validated; both reference forms
    are the same operator): ``x (..., n, D)``, σ default ``(d_nope + d_rope) ** -0.5``, ``causal`` and
    ``mask`` (broadcastable to ``(..., H, n, n)``). Returns ``(..., n, D)`` in the dtype of ``x``;
    the weights are cast to it.
    """
    dtype = fast_dtype(x)
    with precision(dtype):
        weights = checked_weights(weights)
    impl, rope_base = check_mla_options(impl, rope_base)
    (xa,) = float_arrays(("x",), (x,), dtype)
    check_last_dim("x", xa, weights.d_model, "D, the model width of weights")
    h, d_nope, d_rope, d_c, d_v = weights.n_heads, weights.d_nope, weights.d_rope, weights.d_latent, weights.d_v
    sigma = check_scale(scale, (d_nope + d_rope) ** -0.5)
    n = xa.shape[-2]
    positions = np.arange(n, dtype=dtype)

    def w(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=dtype)

    q_latent = xa if weights.w_dq is None or weights.q_norm is None else rms_norm(xa @ weights.w_dq, weights.q_norm)
    q = _heads(q_latent @ w(weights.w_uq), h)  # (..., H, n, d_nope + d_rope)
    q_rope = rope_interleaved(q[..., d_nope:], positions, rope_base).astype(dtype, copy=False)
    kv = xa @ w(weights.w_dkv)
    c_hat = rms_norm(kv[..., :d_c], w(weights.kv_norm))[..., None, :, :]  # (..., 1, n, d_c)
    k_rope = rope_interleaved(kv[..., d_c:], positions, rope_base).astype(dtype, copy=False)[..., None, :, :]
    w_ukv = w(weights.w_ukv).reshape(d_c, h, d_nope + d_v)
    w_uk, w_uv = w_ukv[..., :d_nope], w_ukv[..., d_nope:]
    # q̃_h = (W_UK^h)ᵀ q^C_h as one batched GEMM over heads: (H, n, d_nope) @ (H, d_nope, d_c).
    q_absorbed = q[..., :d_nope] @ np.transpose(w_uk, (1, 2, 0))
    latent_out = softmax_attention(
        np.concatenate([q_absorbed, q_rope], -1),
        np.concatenate([c_hat, k_rope], -1),
        c_hat,
        scale=sigma,
        causal=causal,
        mask=mask,
    )
    heads = latent_out @ np.transpose(w_uv, (1, 0, 2))  # (..., H, n, d_v)
    merged = np.swapaxes(heads, -2, -3).reshape(*heads.shape[:-3], n, h * d_v)
    return np.asarray(merged @ w(weights.w_o), dtype=dtype)
