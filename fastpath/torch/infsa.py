"""Infinite Self-Attention in torch: the Frobenius-normalised ReLU graph, then a batched solve (Neumann), hops
(series, single hop) or the pooled mode (the code's Linear-InfSA).

Source: Roffo 2026, "Infinite Self-Attention" (arXiv 2603.00175); released code giorgioroffo/infinite-self-attention.
See :mod:`attnlab.reference.infsa` for the modes and which of them is the paper's operator. Half precision has no
batched solve in torch, so this path takes float32 and float64.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import check_scale, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.infsa import DEFAULT_EPS, DEFAULT_RHO, check_options
from attnlab.validation import InputOverflow


def _positive(total: torch.Tensor) -> torch.Tensor:
    """A normaliser that is 0 only where everything it divides is 0 (``eps = 0``): those stay 0, as in
    the reference."""
    return torch.where(total > 0, total, torch.ones_like(total))


@torch_checked
def infsa_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    rho: float = DEFAULT_RHO,
    mode: str = "neumann",
    terms: int | None = None,
    scale: float | None = None,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Infinite self-attention (same call as the reference); differentiable, in the input dtype."""
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, 1.0 / q.shape[-1])
    rho, eps, mode, terms = check_options(rho, eps, mode, terms)
    q, k, v = expand_kv_heads(q, k, v)
    if mode == "pooled":
        root = sigma**0.5
        qs, ks = q * root, k * root
        energy = torch.linalg.vector_norm(qs, dim=-1)
        summary = torch.einsum("...n,...nd->...d", energy / _positive(energy.sum(-1, keepdim=True) + eps), qs)
        scores = torch.relu(torch.einsum("...md,...d->...m", ks, summary))
        pooled = rho * torch.einsum("...m,...mc->...c", scores / _positive(scores.sum(-1, keepdim=True) + eps), v)
        return pooled[..., None, :].expand(*v.shape[:-2], q.shape[-2], v.shape[-1])
    raw = torch.relu(sigma * (q @ k.transpose(-1, -2)))
    if not bool(torch.isfinite((raw.detach() ** 2).sum((-2, -1))).all()):  # the reference's Frobenius range
        raise InputOverflow(("q", "k", "scale"), raw.dtype, "the affinity's squared Frobenius norm overflows")
    graph = raw / _positive(torch.linalg.matrix_norm(raw)[..., None, None] + eps)
    one_hop = rho * (graph @ v)
    if mode == "pure":
        return one_hop
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: mode={mode!r} diffuses on one token graph and needs n == m, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    if mode == "series":
        total, hop = one_hop, one_hop
        for _ in range(terms - 1):
            hop = rho * (graph @ hop)
            total = total + hop
        return total
    eye = torch.eye(graph.shape[-1], dtype=graph.dtype, device=graph.device)
    return torch.linalg.solve(eye - rho * graph, one_hop)
