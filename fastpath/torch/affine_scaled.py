"""Affine-Scaled Attention in torch: SDPA for the softmax part plus a prefix sum of the values for the bias.

Source: Bae et al. 2026, "Affine-Scaled Attention" (arXiv 2602.23057, abstract); the operator is attnlab's
reading ``O_i = α_i SDPA_i + β_i Σ_{j visible} v_j`` (see :mod:`attnlab.reference.affine_scaled`).
Causal visibility without a mask needs no ``n × m`` tensor: the visible-value sum of query ``i`` is the
prefix sum of ``V`` at key ``i + m − n``.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_bool,
    check_scale,
    check_tensor,
    expand_kv_heads,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility


def row_tensor(name: str, x: Any, like: torch.Tensor, lead: tuple[int, ...], n: int) -> torch.Tensor:
    """A per-query tensor broadcastable to ``(*lead, n, 1)``, on ``like``'s dtype and device."""
    t = check_tensor(name, x)
    target = (*lead, n, 1)
    try:
        fits = t.shape[-1] == 1 and t.ndim <= len(target) and tuple(torch.broadcast_shapes(t.shape, target)) == target
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name}: expected one value per query, shape broadcastable to {target}, got shape {tuple(t.shape)}"
        )
    if t.dtype != like.dtype or t.device != like.device:
        raise TypeError(f"{name}: expected {like.dtype} on {like.device} like q, got {t.dtype} on {t.device}")
    return t


def visible_sums(
    v: torch.Tensor, n: int, *, causal: bool, mask: Any, lead: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_{j visible} v_j, N_i)`` per query: a total or prefix sum without a mask, a product with it."""
    m = v.shape[-2]
    if mask is None and not causal:
        total = v.sum(dim=-2, keepdim=True).expand(*v.shape[:-2], n, v.shape[-1])
        return total, torch.full((n, 1), float(m), dtype=v.dtype, device=v.device)
    if mask is None:
        index = (torch.arange(n, device=v.device) + (m - n + 1)).clamp(min=0)
        prefix = torch.cat([torch.zeros_like(v[..., :1, :]), v.cumsum(dim=-2)], dim=-2)
        return prefix.index_select(-2, index), index.to(v.dtype)[:, None]
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=lead, device=v.device)
    weights = torch.ones(n, m, dtype=v.dtype, device=v.device) if allowed is None else allowed.to(v.dtype)
    return weights @ v, weights.sum(dim=-1, keepdim=True)


@torch_checked
def affine_scaled_attention(
    q: Any,
    k: Any,
    v: Any,
    alpha: Any,
    beta: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    tie_beta: bool = False,
) -> torch.Tensor:
    """``O_i = α_i SDPA_i + β_i Σ_{j visible} v_j`` (same call as the reference).

    Shapes: ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; ``alpha`` and
    ``beta`` broadcastable to ``(..., H, n, 1)``; ``tie_beta`` uses ``β = (1 − α)/N_i``. Returns
    ``(..., H, n, d_v)`` in the input dtype; rows with no visible key are zeros. Differentiable in every
    array argument.
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    tie_beta = check_bool("tie_beta", tie_beta)
    causal = check_bool("causal", causal)
    n = q.shape[-2]
    _, ke, ve = expand_kv_heads(q, k, v)
    lead = tuple(ke.shape[:-2])
    a = row_tensor("alpha", alpha, q, lead, n)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    out = sdpa(q, k, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    sums, counts = visible_sums(ve, n, causal=causal, mask=mask, lead=lead)
    if tie_beta:
        if beta is not None:
            raise ValueError("beta: tie_beta=True derives β from α; pass beta=None")
        b = torch.where(counts > 0, (1 - a) / counts.clamp(min=1), torch.zeros_like(a))
    else:
        if beta is None:
            raise ValueError("beta: expected an array of per-query biases (or tie_beta=True), got None")
        b = row_tensor("beta", beta, q, lead, n)
    return a * out + b * sums
