"""Gaussian Adaptive Attention in torch: each head's chunk a view of ``x``, its Gaussians summed in one exponent.

Source: Ioannides, Chadha & Elkins 2024 (arXiv 2401.11143); released code gioannides/Gaussian-Adaptive-Attention.
See :mod:`attnlab.reference.gaam` for the operator (product of each head's Gaussians, unbiased variance, ε,
padding). The product ``Π_g N_g`` is evaluated as ``exp(−(A y² − 2By + C)/2) · Π_g (2π c_g²)^{−1/2}`` with the
head's ``A, B, C`` summed over its Gaussians: one quadratic and one exponential per entry whatever ``G`` is.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import check_tensor, torch_checked
from attnlab.reference.gaam import DEFAULT_EPS, check_heads, check_options


def _head_weights(
    chunk: torch.Tensor,
    keep: torch.Tensor | None,
    delta: torch.Tensor,
    c: torch.Tensor,
    eps: float,
    combine: str,
    dim: int,
) -> torch.Tensor:
    """Normalised weights of one head's chunk along ``dim``, its Gaussians' ``δ, c`` of shape ``(G,)``."""
    values = chunk if keep is None else torch.where(keep, chunk, torch.zeros_like(chunk))
    mean = values.mean(dim=dim, keepdim=True)
    sigma = torch.sqrt(values.var(dim=dim, keepdim=True) + eps)
    y = (chunk - mean) / sigma
    precision = 1 / (c * c)
    if combine == "product":
        # Σ_g (y − δ_g/σ)²/c_g² = A y² − 2 B y + C: one quadratic in y whatever G is
        a = precision.sum()
        b = (delta * precision).sum() / sigma
        cc = (delta * delta * precision).sum() / (sigma * sigma)
        raw = torch.exp(-(a * y * y - 2 * b * y + cc) / 2) * torch.prod(1 / (c.abs() * math.sqrt(2 * math.pi)))
    else:
        raw = torch.zeros_like(y)
        for g in range(delta.shape[0]):
            raw = raw + torch.exp(-((y - delta[g] / sigma) ** 2) * precision[g] / 2) / (
                c[g].abs() * math.sqrt(2 * math.pi)
            )
        raw = raw / delta.shape[0]
    return raw / raw.sum(dim=dim, keepdim=True).clamp(min=eps)


@torch_checked
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
    parts = []
    for h in range(heads):
        start = h * size
        chunk = x.narrow(axis, start, size if h < heads - 1 else x.shape[axis] - start)
        keep = None if padding_value is None else chunk != padding_value
        weighted = chunk * _head_weights(chunk, keep, delta[h], c[h], eps, combine, axis)
        parts.append(weighted if keep is None else torch.where(keep, weighted, chunk))
    return torch.cat(parts, dim=axis)
