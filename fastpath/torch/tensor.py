"""Tensor (Kronecker) attention streamed over query blocks in torch.

Source: Alman & Song, ICLR 2024 (arXiv 2310.04064). For a block of queries ``I`` the logits
``s_{i,jk} = σ Σ_l q_il k1_jl k2_kl`` are one batched matmul ``(q_i ∘ K1) K2ᵀ`` of size
``|I| × m1 × m2``, so memory is ``O(m1 m2)`` per query (``O(n²)``), never the ``n³`` cube. The softmax
runs jointly over the pairs and ``o_i = Σ_k ((P_iᵀ V1) ∘ V2)_k``. Causal blocks only touch the keys
``j, k < end of block``. Under autograd each block is checkpointed, so the backward pass also keeps
one block of logits at a time.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from attnlab.fastpath.torch._common import (
    check_bool,
    check_last_dim,
    check_same_dtype,
    check_same_length,
    check_scale,
    check_tensor,
    masked_softmax,
    torch_checked,
)
from attnlab.reference.tensor import check_pair_magnitudes

#: Largest number of pair logits one query block materialises (over all batch entries).
BLOCK_ELEMENTS = 1 << 22


def check_five(q: Any, k1: Any, k2: Any, v1: Any, v2: Any) -> list[torch.Tensor]:
    """Validate ``q (..., n, d)``, ``k1/v1 (..., m1, ·)``, ``k2/v2 (..., m2, ·)``; broadcast batch dims."""
    names = ("q", "k1", "k2", "v1", "v2")
    ts = [check_tensor(name, t) for name, t in zip(names, (q, k1, k2, v1, v2))]
    check_same_dtype(names, tuple(ts))
    q, k1, k2, v1, v2 = ts
    d = q.shape[-1]
    check_last_dim("k1", k1, d, "d, the last axis of q")
    check_last_dim("k2", k2, d, "d, the last axis of q")
    check_last_dim("v2", v2, v1.shape[-1], "d_v, the last axis of v1")
    check_same_length(("k1", "v1"), (k1, v1))
    check_same_length(("k2", "v2"), (k2, v2))
    try:
        lead = torch.broadcast_shapes(*(t.shape[:-2] for t in ts))
    except RuntimeError:
        detail = ", ".join(f"{n}{tuple(t.shape)}" for n, t in zip(names, ts))
        raise ValueError(f"{'/'.join(names)}: leading (batch/head) dims must broadcast, got {detail}") from None
    return [t.expand(*lead, *t.shape[-2:]) for t in ts]


def tensor_max_abs(t: torch.Tensor) -> float:
    return float(t.detach().abs().amax()) if t.numel() else 0.0


def pair_block(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    allowed: torch.Tensor | None,
    sigma: float,
) -> torch.Tensor:
    """Outputs of one query block: ``q (L, b, d)``, keys/values ``(L, m·, ·)``, ``allowed (b, m1, m2)``."""
    logits = sigma * ((q[:, :, None, :] * k1[:, None, :, :]) @ k2[:, None].transpose(-1, -2))  # (L, b, m1, m2)
    shape = logits.shape
    flat_allowed = None if allowed is None else allowed.reshape(shape[1], shape[2] * shape[3])
    probs = masked_softmax(logits.reshape(*shape[:2], shape[2] * shape[3]), flat_allowed).reshape(shape)
    mixed = probs.transpose(-1, -2) @ v1[:, None]  # (L, b, m2, d_v) = P_iᵀ V1
    return (mixed * v2[:, None]).sum(dim=-2)


def _block_size(batch: int, m1: int, m2: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(1, batch * m1 * m2))


def run_pair_blocks(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    sigma: float,
    visible: Any,
    key_range: Any,
) -> torch.Tensor:
    """Stream query blocks; ``visible(start, stop) -> (b, m1', m2') | None`` over the keys
    ``key_range(start, stop) -> (j0, j1, k0, k1)``. Writes into a NaN-poisoned output buffer."""
    lead = q.shape[:-2]
    n, d_v = q.shape[-2], v1.shape[-1]
    flat = [t.reshape(math.prod(lead), *t.shape[-2:]) for t in (q, k1, k2, v1, v2)]
    qf, k1f, k2f, v1f, v2f = flat
    batch = qf.shape[0]
    out = torch.full((batch, n, d_v), torch.nan, dtype=q.dtype, device=q.device)
    block = _block_size(batch, k1.shape[-2], k2.shape[-2])
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in flat)
    for start in range(0, n, block):
        stop = min(start + block, n)
        a0, a1, b0, b1 = key_range(start, stop)
        args = (
            qf[:, start:stop],
            k1f[:, a0:a1],
            k2f[:, b0:b1],
            v1f[:, a0:a1],
            v2f[:, b0:b1],
            visible(start, stop),
        )
        if grad:
            result = checkpoint(pair_block, *args, sigma, use_reentrant=False)
        else:
            result = pair_block(*args, sigma)
        out[:, start:stop] = result
    return out.reshape(*lead, n, d_v)


@torch_checked
def tensor_attention(
    q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False
) -> torch.Tensor:
    """Tensor attention ``o_i = Σ_{j,k} softmax_{(j,k)}(σ Σ_l q_il k1_jl k2_kl) · (v1_j ∘ v2_k)``.

    Args:
        q: ``(..., n, d)``; k1, v1: ``(..., m1, d)``, ``(..., m1, d_v)``; k2, v2: ``(..., m2, d)``,
            ``(..., m2, d_v)``.
        scale: σ, default ``1/d``.
        causal: pair ``(j, k)`` visible iff ``j <= i`` and ``k <= i`` (needs ``n == m1 == m2``).

    Returns:
        ``(..., n, d_v)``. Time ``O(n m1 m2 d)``, memory ``O(block · m1 m2)``. Differentiable.
    """
    q, k1, k2, v1, v2 = check_five(q, k1, k2, v1, v2)
    sigma = check_scale(scale, 1.0 / q.shape[-1])
    causal = check_bool("causal", causal)
    n, m1, m2 = q.shape[-2], k1.shape[-2], k2.shape[-2]
    if causal and not (n == m1 == m2):
        raise ValueError(f"q/k1/k2: causal tensor attention needs n == m1 == m2, got {n}, {m1}, {m2}")
    check_pair_magnitudes((q, k1, k2, v1, v2), sigma, q.dtype, tensor_max_abs)
    device = q.device

    def key_range(start: int, stop: int) -> tuple[int, int, int, int]:
        return (0, stop, 0, stop) if causal else (0, m1, 0, m2)

    def visible(start: int, stop: int) -> torch.Tensor | None:
        if not causal:
            return None
        rows = torch.arange(start, stop, device=device)[:, None, None]
        keys = torch.arange(stop, device=device)
        return (keys[None, :, None] <= rows) & (keys[None, None, :] <= rows)

    return run_pair_blocks(q, k1, k2, v1, v2, sigma, visible, key_range)
