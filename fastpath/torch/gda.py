"""Grouped Differential Attention on two SDPA calls (signal heads, noise heads), value width ``2 d_v``.

Source: Lim et al., "Grouped Differential Attention", 2025 (arXiv 2510.06949), with the head layout of
vLLM's grouped differential attention backend; the same operator as
:func:`attnlab.reference.gda.gda_attention`. The noise heads are attended once and their outputs
repeated for the ``r`` signal heads of each group.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    as_option_tensor,
    check_bool,
    check_same_dtype,
    check_scale,
    check_tensor,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import sdpa
from attnlab.reference.gda import RMS_EPS, check_float, check_layout


def split_groups(x: torch.Tensor, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise heads (axis −3) of groups ``[signal × r, noise]``."""
    groups = x.shape[-3] // (ratio + 1)
    grouped = x.reshape(*x.shape[:-3], groups, ratio + 1, *x.shape[-2:])
    return grouped[..., :ratio, :, :].reshape(*x.shape[:-3], groups * ratio, *x.shape[-2:]), grouped[..., ratio, :, :]


def headwise_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``x w / sqrt(mean(x²) + ε)``; an all-zero row stays zero (also for ε = 0, with finite gradients)."""
    mean_square = torch.mean(x * x, dim=-1, keepdim=True) + eps
    positive = mean_square > 0
    safe = torch.where(positive, mean_square, torch.ones_like(mean_square))
    return torch.where(positive, x * torch.rsqrt(safe), torch.zeros_like(x)) * weight


@torch_checked
def gda_attention(
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
) -> torch.Tensor:
    """Grouped differential attention ``O_i = (1 − λ_init) subln(O1_i − λ O2_{⌊i/r⌋})`` on PyTorch SDPA.

    Args and shapes as :func:`attnlab.reference.gda.gda_attention`: ``q (..., H, n, d)`` in groups
    ``[signal × r, noise]``, ``k (..., H_kv, m, d)`` and ``v (..., H_kv, m, d_v)`` in interleaved pairs;
    ``norm_weight`` a tensor or array of shape ``(2 d_v,)``.

    Returns:
        ``(..., H₁, n, 2 d_v)`` in the inputs' dtype and device; differentiable in ``q``, ``k``, ``v``.
    """
    q, k, v = (check_tensor(name, t, min_ndim=3) for name, t in zip(("q", "k", "v"), (q, k, v)))
    check_same_dtype(("q", "k", "v"), (q, k, v))
    r, _, _ = check_layout(q, k, ratio)
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k: expected last axis of size {q.shape[-1]} (d_k, the last axis of q), got shape {tuple(k.shape)}"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k/v: expected the same leading dims and length (..., m, *), got k{tuple(k.shape)} and v{tuple(v.shape)}"
        )
    lam_value = check_float("lam", lam)
    factor = 1.0 if lam_init is None else 1.0 - check_float("lam_init", lam_init)
    apply_norm = check_bool("norm", norm)
    eps_value = check_float("eps", eps, minimum=0.0)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    n, m, heads = q.shape[-2], k.shape[-2], q.shape[-3]
    square_causal = check_bool("causal", causal) and n == m and mask is None
    allowed = (
        None
        if square_causal
        else allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    )
    signal_mask = noise_mask = allowed
    if allowed is not None and allowed.ndim >= 3 and allowed.shape[-3] == heads > 1:
        signal_mask, noise_mask = split_groups(allowed, r)
    signal_q, noise_q = split_groups(q, r)
    values = torch.cat([v[..., 0::2, :, :], v[..., 1::2, :, :]], dim=-1)
    signal = sdpa(signal_q, k[..., 0::2, :, :], values, scale=sigma, allowed=signal_mask, causal_square=square_causal)
    noise = sdpa(noise_q, k[..., 1::2, :, :], values, scale=sigma, allowed=noise_mask, causal_square=square_causal)
    out = signal - lam_value * torch.repeat_interleave(noise, r, dim=-3)
    d_out = out.shape[-1]
    weight = torch.ones(d_out, dtype=out.dtype, device=out.device)
    if norm_weight is not None:  # checked as the reference checks it, whether or not the norm applies
        weight = as_option_tensor("norm_weight", norm_weight, out, min_ndim=1)
        if tuple(weight.shape) != (d_out,):
            raise ValueError(
                f"norm_weight: expected shape ({d_out},) (2 d_v, the output width), got {tuple(weight.shape)}"
            )
    if apply_norm:
        out = headwise_rms_norm(out, weight, eps_value)
    return factor * out if factor != 1.0 else out
