"""Gaussian Adaptive Attention in torch, all heads at once: the equal-size head chunks as one reshaped block,
the remainder-carrying last chunk beside it.

Source: Ioannides, Chadha & Elkins 2024 (arXiv 2401.11143); released code gioannides/Gaussian-Adaptive-Attention.
See :mod:`attnlab.reference.gaam` for the operator (product of each head's Gaussians, unbiased variance, ε,
padding). The product ``Π_g N_g`` is evaluated as ``exp(−Σ_g y_g²/(2c_g²)) · Π_g (2π c_g²)^{−1/2}``, the
Gaussians one at a time (no ``G``-wide intermediate).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import check_tensor
from attnlab.reference.gaam import DEFAULT_EPS, check_heads, check_options


def _weights(
    chunk: torch.Tensor, keep: torch.Tensor | None, delta: torch.Tensor, c: torch.Tensor, eps: float, combine: str
) -> torch.Tensor:
    """Normalised weights of chunks ``(..., heads, size)`` with per-head ``δ, c`` of shape ``(heads, G)``."""
    values = chunk if keep is None else torch.where(keep, chunk, torch.zeros_like(chunk))
    mean = values.mean(dim=-1, keepdim=True)
    sigma = torch.sqrt(values.var(dim=-1, keepdim=True) + eps)
    centred = (chunk - mean) / sigma
    raw = torch.zeros_like(centred)
    for g in range(delta.shape[1]):
        shift, width = (delta[:, g] / sigma[..., 0])[..., None], c[:, g, None]  # offsets in x's units
        term = ((centred - shift) / width) ** 2 / -2
        raw = raw + (term if combine == "product" else torch.exp(term) / (width.abs() * math.sqrt(2 * math.pi)))
    if combine == "product":
        raw = torch.exp(raw) * torch.prod(1 / (c.abs() * math.sqrt(2 * math.pi)), dim=-1)[:, None]
    else:
        raw = raw / delta.shape[1]
    return raw / raw.sum(dim=-1, keepdim=True).clamp(min=eps)


def gaussian_adaptive_attention(
    x: Any,
    mean_offsets: Any,
    scales: Any,
    *,
    axis: int = -1,
    eps: float = DEFAULT_EPS,
    padding_value: float | None = None,
    combine: str = "product",
) -> torch.Tensor:
    """Multi-head Gaussian adaptive attention ``x ⊙ w`` (same call as the reference); differentiable in all three."""
    x = check_tensor("x", x)
    delta = check_tensor("mean_offsets", mean_offsets, ndim=2).to(x.dtype)
    c = check_tensor("scales", scales, ndim=2).to(x.dtype)
    if bool((c == 0).any()):
        raise ValueError("scales: every c_g must be non-zero (N_g divides by c_g²)")
    axis, eps = check_options(x.ndim, axis, eps, padding_value, combine)
    heads = check_heads(tuple(delta.shape), tuple(c.shape), x.shape[axis], axis)
    size = x.shape[axis] // heads
    lines = x.movedim(axis, -1)
    keep = None if padding_value is None else lines != padding_value
    body = (heads - 1) * size
    parts = []
    if heads > 1:
        block = lines[..., :body].reshape(*lines.shape[:-1], heads - 1, size)
        mask = None if keep is None else keep[..., :body].reshape(block.shape)
        parts.append(_weights(block, mask, delta[:-1], c[:-1], eps, combine).reshape(*lines.shape[:-1], body))
    tail = lines[..., body:][..., None, :]
    tail_mask = None if keep is None else keep[..., body:][..., None, :]
    parts.append(_weights(tail, tail_mask, delta[-1:], c[-1:], eps, combine)[..., 0, :])
    weighted = lines * torch.cat(parts, dim=-1)
    out = weighted if keep is None else torch.where(keep, weighted, lines)
    return out.movedim(-1, axis)
