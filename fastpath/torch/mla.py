"""Multi-head latent attention (DeepSeek-V2/V3) in the absorbed form, on SDPA.

Source: DeepSeek-AI, "DeepSeek-V2" (arXiv 2405.04434) and the DeepSeek-V3 inference code
(``attn_impl="absorb"``). The absorbed form is an MQA over the cached latent: queries
``[q̃_h; RoPE(q^R_h)]`` with ``q̃_h = (W_UK^h)ᵀ q^C_h``, one shared key ``[ĉ; RoPE(k^R)]`` and value
``ĉ``; then ``o_h = W_UV^h õ_h`` and ``y = W_O concat_h o_h``. Row-vector convention ``y = x W``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_bool,
    check_last_dim,
    check_scale,
    check_tensor,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import sdpa
from attnlab.reference.mla import RMS_EPS, MLAWeights, check_mla_options, check_mla_weights, checked_weights
from attnlab.validation import InputOverflow


@dataclass(frozen=True)
class TorchMLAWeights:
    """:class:`attnlab.reference.MLAWeights` as tensors of one dtype and device (same shapes)."""

    w_dq: torch.Tensor | None
    q_norm: torch.Tensor | None
    w_uq: torch.Tensor
    w_dkv: torch.Tensor
    kv_norm: torch.Tensor
    w_ukv: torch.Tensor
    w_o: torch.Tensor
    n_heads: int
    d_nope: int
    d_rope: int
    d_v: int

    @property
    def d_model(self) -> int:
        return int(self.w_dkv.shape[0])

    @property
    def d_latent(self) -> int:
        return int(self.kv_norm.shape[0])

    @classmethod
    def from_numpy(cls, weights: MLAWeights, dtype: torch.dtype, device: torch.device | str = "cpu") -> TorchMLAWeights:
        def conv(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), device=device).to(dtype)

        return cls(
            w_dq=None if weights.w_dq is None else conv(weights.w_dq),
            q_norm=None if weights.q_norm is None else conv(weights.q_norm),
            w_uq=conv(weights.w_uq),
            w_dkv=conv(weights.w_dkv),
            kv_norm=conv(weights.kv_norm),
            w_ukv=conv(weights.w_ukv),
            w_o=conv(weights.w_o),
            n_heads=weights.n_heads,
            d_nope=weights.d_nope,
            d_rope=weights.d_rope,
            d_v=weights.d_v,
        )


def as_torch_weights(weights: Any, like: torch.Tensor) -> TorchMLAWeights:
    """Accept :class:`MLAWeights` (NumPy, validated and converted) or :class:`TorchMLAWeights` (validated:
    tensors of ``like``'s dtype and device); return tensors matching ``like``."""
    if isinstance(weights, MLAWeights):
        return TorchMLAWeights.from_numpy(checked_weights(weights), like.dtype, like.device)
    if isinstance(weights, TorchMLAWeights):

        def field(name: str, value: Any, ndim: int) -> torch.Tensor:
            tensor = check_tensor(name, value, ndim=ndim, layout="(rows, cols)" if ndim == 2 else "(size,)")
            if tensor.dtype != like.dtype or tensor.device != like.device:
                raise TypeError(
                    f"{name}: tensors are {tensor.dtype} on {tensor.device}, x is {like.dtype} on {like.device}"
                )
            return tensor

        checked = check_mla_weights(weights, field)
        return TorchMLAWeights(**{f: checked[f] for f in TorchMLAWeights.__dataclass_fields__})
    raise TypeError(f"weights: expected an MLAWeights or TorchMLAWeights, got {type(weights).__name__}")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = RMS_EPS) -> torch.Tensor:
    """``x / sqrt(mean(x²) + ε) · w`` over the last axis. A mean of squares that overflows is refused
    (``rsqrt(inf) = 0`` would silently zero the row; the NumPy paths stop on the overflow)."""
    mean_square = (x * x).mean(dim=-1, keepdim=True)
    if mean_square.numel() and not bool(torch.isfinite(mean_square.detach()).all()):
        raise InputOverflow(("x", "weights"), x.dtype, "the RMSNorm mean of squares overflows")
    return x * torch.rsqrt(mean_square + eps) * weight


def rope_interleaved(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary embedding on interleaved pairs ``(2p, 2p+1)`` with angle ``t · base^{-2p/d}``.

    ``x`` is ``(..., n, d)`` with even ``d``; ``positions`` is ``(n,)``.
    """
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angles = positions.to(torch.float64)[:, None] * freqs[None, :]
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(..., n, H·c) -> (..., H, n, c)``."""
    return x.reshape(*x.shape[:-1], n_heads, x.shape[-1] // n_heads).transpose(-2, -3)


@torch_checked
def mla_attention(
    x: Any,
    weights: Any,
    *,
    impl: str = "absorb",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> torch.Tensor:
    """Multi-head latent attention, absorbed form (one MQA SDPA call over the latent).

    Args:
        x: ``(..., n, D)`` token states (tensor; the weights follow its dtype and device).
        weights: :class:`MLAWeights` (converted per call) or :class:`TorchMLAWeights`.
        impl: accepted for signature parity with the reference (``"naive"`` or ``"absorb"``); this
            path always runs the absorbed form, which equals the naive one in exact arithmetic.
        scale: σ, default ``(d_nope + d_rope) ** -0.5``. causal, mask: as softmax attention.
        rope_base: RoPE base θ.

    Returns:
        ``(..., n, D)``. Differentiable in ``x`` (and in the weights when given as tensors).
    """
    if not isinstance(weights, (MLAWeights, TorchMLAWeights)):
        raise TypeError(f"weights: expected an MLAWeights or TorchMLAWeights, got {type(weights).__name__}")
    impl, rope_base = check_mla_options(impl, rope_base)
    x = check_tensor("x", x)
    w = as_torch_weights(weights, x)
    check_last_dim("x", x, w.d_model, "D, the model width of weights")
    h, d_nope, d_rope, d_c = w.n_heads, w.d_nope, w.d_rope, w.d_latent
    sigma = check_scale(scale, (d_nope + d_rope) ** -0.5)
    n = x.shape[-2]
    positions = torch.arange(n, device=x.device)

    q_latent = x if w.w_dq is None or w.q_norm is None else rms_norm(x @ w.w_dq, w.q_norm)
    q = split_heads(q_latent @ w.w_uq, h)  # (..., H, n, d_nope + d_rope)
    q_rope = rope_interleaved(q[..., d_nope:], positions, rope_base)
    w_ukv = w.w_ukv.reshape(d_c, h, d_nope + w.d_v)
    q_absorbed = torch.einsum("...hnd,chd->...hnc", q[..., :d_nope], w_ukv[..., :d_nope])

    kv = x @ w.w_dkv
    c_hat = rms_norm(kv[..., :d_c], w.kv_norm)[..., None, :, :]  # (..., 1, n, d_c)
    k_rope = rope_interleaved(kv[..., d_c:], positions, rope_base)[..., None, :, :]
    keys = torch.cat([c_hat, k_rope], dim=-1)
    queries = torch.cat([q_absorbed, q_rope], dim=-1)
    square_causal = check_bool("causal", causal) and mask is None
    allowed = (
        None
        if square_causal
        else allowed_mask(n, n, causal=causal, mask=mask, lead=tuple(queries.shape[:-2]), device=x.device)
    )
    lead = queries.shape[:-2]
    latent_out = sdpa(
        queries,
        keys.expand(*lead, n, keys.shape[-1]),
        c_hat.expand(*lead, n, d_c),
        scale=sigma,
        allowed=allowed,
        causal_square=square_causal,
    )
    heads = torch.einsum("...hnc,chv->...hnv", latent_out, w_ukv[..., d_nope:])
    merged = heads.transpose(-2, -3).reshape(*heads.shape[:-3], n, h * w.d_v)
    return merged @ w.w_o
