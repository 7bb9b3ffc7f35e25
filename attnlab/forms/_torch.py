"""Torch helpers of the composed-torch oracles, written from the definitions.

The oracles are "the same math, written plainly" that the tolerance rule runs at a fast path's dtype
and, in float64 under autograd, the gradient golden. They must not share code with the fast paths they
judge (a wrong mask helper would otherwise pass every test it is used in), so this module builds its own
visibility pattern, GQA head map, masked softmax, RoPE and RMSNorm. It is imported only when an oracle
runs; the form declarations refer to oracles by ``"module:attr"`` and never import torch themselves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def tensor(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as a tensor (NumPy arrays converted; on ``like``'s device and, for floats, its dtype)."""
    if isinstance(x, torch.Tensor):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))
    if like is None:
        return t
    t = t.to(like.device)
    return t.to(like.dtype) if t.is_floating_point() else t


def repeat_kv(q: torch.Tensor, *kv: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """KV head ``g`` serves query heads ``g·G … g·G + G − 1`` (contiguous groups); batch dims broadcast."""
    if q.ndim >= 3 and kv[0].ndim >= 3 and kv[0].shape[-3] not in (1, q.shape[-3]):
        group = q.shape[-3] // kv[0].shape[-3]
        kv = tuple(torch.repeat_interleave(t, group, dim=-3) for t in kv)
    lead = torch.broadcast_shapes(q.shape[:-2], *(t.shape[:-2] for t in kv))
    return tuple(t.expand(*lead, *t.shape[-2:]) for t in (q, *kv))


def visibility(n: int, m: int, *, causal: bool, mask: Any, device: torch.device) -> torch.Tensor:
    """``(..., n, m)`` booleans: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (when causal)
    and the mask allows it."""
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(m, device=device)[None, :]
    allowed = (j <= i + (m - n)) if causal else torch.ones(n, m, dtype=torch.bool, device=device)
    if mask is not None:
        allowed = allowed & tensor(mask).to(device=device, dtype=torch.bool)
    return allowed


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(s − μ) / Σ exp(s − μ)`` over allowed entries, ``μ`` the row max; empty rows are zeros."""
    allowed = allowed.expand(scores.shape)
    masked = scores.masked_fill(~allowed, -math.inf)
    peak = masked.amax(dim=dim, keepdim=True).detach()
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    weights = torch.where(allowed, torch.exp(masked - peak), torch.zeros_like(scores))
    total = weights.sum(dim=dim, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


def default_scale(scale: float | None, d: int) -> float:
    return d**-0.5 if scale is None else float(scale)


def rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding on interleaved pairs ``(2p, 2p + 1)``, angle ``t · base^(−2p/d)`` (Su et al. 2021)."""
    d = x.shape[-1]
    exponents = torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d
    angles = positions.to(torch.float64)[:, None] * torch.pow(torch.tensor(base, dtype=torch.float64), -exponents)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.empty_like(x)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``x · w / sqrt(mean(x²) + ε)`` over the last axis (Zhang & Sennrich 2019)."""
    return x * weight / torch.sqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps)
