"""Sinkhorn attention in torch: log-domain Sinkhorn on the masked logits, differentiated by autograd.

Operator of :mod:`attnlab.reference.sinkhorn` (the Sinkformer iteration of Sander et al. 2022, arXiv
2110.11773, in log domain as Peyré & Cuturi 2019, arXiv 1803.00567, §4.4; the plan regime of
Geometric Attention, arXiv 2601.11618): one row step, then ``iterations`` column and row steps, each a
``logsumexp`` over the ``(n, m)`` logits; autograd unrolls the iterations. Half-precision inputs are
iterated in float32 and the output is returned in the input dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    as_option_tensor,
    check_scale,
    expand_kv_heads,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.sinkhorn import DEFAULT_ITERATIONS, _check_count, _check_tol, check_logit_resolution


def _log_marginal(name: str, given: Any, size: int, like: torch.Tensor) -> torch.Tensor:
    if given is None:
        return torch.full((size,), -math.log(size), dtype=like.dtype, device=like.device)
    weights = as_option_tensor(name, given, like, min_ndim=1)
    if weights.shape[-1:] != (size,):
        raise ValueError(
            f"{name}: expected positive weights broadcastable to (..., {size}), got shape {tuple(weights.shape)}"
        )
    if not bool(torch.all(torch.isfinite(weights))) or bool(torch.any(weights <= 0)):
        raise ValueError(f"{name}: expected strictly positive finite weights")
    return torch.log(weights) - torch.log(weights.sum(-1, keepdim=True))


def _masked_lse(x: torch.Tensor, allowed: torch.Tensor | None, dim: int) -> torch.Tensor:
    """``logsumexp`` over ``dim`` of the allowed entries, ``-inf`` where none is allowed (NaN-free gradients)."""
    if allowed is None:
        return torch.logsumexp(x, dim=dim)
    has = allowed.any(dim=dim, keepdim=True)
    filled = torch.where(has, x.masked_fill(~allowed, -math.inf), torch.zeros_like(x))
    return torch.where(has.squeeze(dim), torch.logsumexp(filled, dim=dim), torch.full_like(filled.sum(dim), -math.inf))


def _step(
    logits: torch.Tensor, allowed: torch.Tensor | None, log_marginal: torch.Tensor, other: torch.Tensor, dim: int
) -> torch.Tensor:
    total = _masked_lse(logits + other, allowed, dim)
    finite = torch.isfinite(total)
    return torch.where(
        finite, log_marginal - torch.where(finite, total, torch.zeros_like(total)), torch.zeros_like(total)
    )


@torch_checked
def sinkhorn_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    epsilon: float = 1.0,
    iterations: int = DEFAULT_ITERATIONS,
    tol: float = 0.0,
    row_marginal: Any = None,
    col_marginal: Any = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Row-anchored entropic transport plan of ``σ QKᵀ / ε`` applied to ``V`` (same call as the reference).

    ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; returns
    ``(..., H, n, d_v)`` in the input dtype, rows without a visible key zero. Differentiable.
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    eps = check_scale(epsilon, 1.0, name="epsilon")
    iterations = _check_count("iterations", iterations)
    tol = _check_tol(tol)
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    n, m = q.shape[-2], k.shape[-2]
    log_r = _log_marginal("row_marginal", row_marginal, n, q)
    log_c = _log_marginal("col_marginal", col_marginal, m, q)
    logits = (sigma / eps) * (q @ k.transpose(-1, -2))
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    if allowed is not None:
        allowed = allowed.expand(logits.shape)
    visible = logits.detach().abs() if allowed is None else logits.detach().abs().masked_fill(~allowed, 0.0)
    check_logit_resolution(float(visible.max()) if visible.numel() else 0.0, str(work).removeprefix("torch."))
    # a row offset is absorbed exactly by the row potential: removing each row's max keeps the potentials
    # (and the rounding of logits + f + g) small
    peak = (logits if allowed is None else logits.masked_fill(~allowed, -math.inf)).amax(dim=-1, keepdim=True).detach()
    logits = logits - torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    g = torch.zeros((*logits.shape[:-2], m), dtype=work, device=q.device)
    supported = None
    if tol > 0:
        supported = torch.ones_like(g, dtype=torch.bool) if allowed is None else allowed.any(dim=-2)
    for _ in range(iterations):
        f = _step(logits, allowed, log_r, g[..., None, :], -1)
        g = _step(logits, allowed, log_c, f[..., :, None], -2)
        if supported is not None:
            f = _step(logits, allowed, log_r, g[..., None, :], -1)
            plan = torch.exp(logits + f[..., :, None] + g[..., None, :])
            if allowed is not None:
                plan = plan.masked_fill(~allowed, 0.0)
            gap = torch.where(supported, (plan.sum(-2) - log_c.exp()).abs(), torch.zeros_like(g))
            if float(gap.max()) <= tol:
                break
    # the last row step, as a row softmax of L + g: rows sum to 1 to rounding
    weights = masked_softmax(logits + g[..., None, :], allowed)
    return (weights @ v).to(dtype)
