"""Agent attention in torch: adaptive average pooling for the agents, then the two softmax products with their
``n × n_a`` and ``n_a × m`` weights formed explicitly (``n_a`` is small: SDPA would add nothing but, on CPU at large
logits, a float32 backward ~100 times less accurate).

Source: Han et al. 2024, "Agent Attention" (ECCV 2024, arXiv 2312.08874), §3.2; see
:mod:`attnlab.reference.agent` for the operator and its conventions. Cost ``O(n · n_a · d)``: nothing of
size ``n × m`` is formed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_last_dim,
    check_positive_int,
    check_scale,
    check_tensor,
    expand_kv_heads,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.agent import DEFAULT_AGENTS, check_agents_lead, check_grid


def pool_agents(q: torch.Tensor, num_agents: int, grid: tuple[int, int] | None) -> torch.Tensor:
    """``q (..., n, d)`` average-pooled to ``(..., num_agents, d)`` (1-d, or 2-d over an ``(h, w)`` grid)."""
    lead, n, d = q.shape[:-2], q.shape[-2], q.shape[-1]
    flat = q.reshape(-1, n, d).transpose(1, 2)
    if grid is None:
        pooled = F.adaptive_avg_pool1d(flat, num_agents)
    else:
        p = math.isqrt(num_agents)
        pooled = F.adaptive_avg_pool2d(flat.reshape(-1, d, *grid), (p, p)).reshape(-1, d, num_agents)
    return pooled.transpose(1, 2).reshape(*lead, num_agents, d)


def _bias(name: str, bias: Any, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    if bias is None:
        return None
    t = check_tensor(name, bias)
    try:
        fits = t.ndim <= len(shape) and tuple(torch.broadcast_shapes(t.shape, shape)) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: expected an additive bias broadcastable to {shape}, got shape {tuple(t.shape)}")
    return t.to(dtype=like.dtype, device=like.device)


@torch_checked
def agent_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    agents: Any = None,
    num_agents: int = DEFAULT_AGENTS,
    grid: tuple[int, int] | None = None,
    scale: float | None = None,
    mask: Any = None,
    agent_bias: Any = None,
    query_bias: Any = None,
) -> torch.Tensor:
    """``O = softmax(σ Q Aᵀ + B_2) · softmax(σ A Kᵀ + B_1) V`` (same call as the reference).

    Shapes: ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; ``agents``
    ``(..., n_a, d_k)`` or pooled from ``q``; ``mask`` broadcastable to ``(..., n_a, m)``. Returns
    ``(..., H, n, d_v)`` in the input dtype. Differentiable.
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    n, m = q.shape[-2], k.shape[-2]
    if agents is None:
        count = check_positive_int("num_agents", num_agents)
        a = pool_agents(q, count, check_grid(grid, n, count))
    else:
        if grid is not None or num_agents != DEFAULT_AGENTS:
            raise ValueError("agents: given explicitly, so num_agents and grid must be left unset")
        a = check_tensor("agents", agents).to(dtype=q.dtype, device=q.device)
        check_last_dim("agents", a, q.shape[-1], "d_k, the last axis of q")
        check_agents_lead(tuple(a.shape), tuple(q.shape))
        a = a.expand(*q.shape[:-2], *a.shape[-2:])
    n_a = a.shape[-2]
    _, ke, ve = expand_kv_heads(q, k, v)
    lead = tuple(ke.shape[:-2])
    b1 = _bias("agent_bias", agent_bias, (*lead, n_a, m), q)
    b2 = _bias("query_bias", query_bias, (*lead, n, n_a), q)
    allowed = allowed_mask(n_a, m, causal=False, mask=mask, lead=lead, device=q.device)
    gather = sigma * (a @ ke.transpose(-1, -2))
    agent_values = masked_softmax(gather if b1 is None else gather + b1, allowed) @ ve
    spread = sigma * (q @ a.transpose(-1, -2))
    return torch.softmax(spread if b2 is None else spread + b2, dim=-1) @ agent_values
