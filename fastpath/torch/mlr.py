"""Sequence-axis MLR attention with torch (batched, autograd, CPU and CUDA).

Source: Kuang et al. 2025 (arXiv 2509.07963); operator as in YilunKuang/structured-attention@4895ad5
(AttentionMLR). A level with blocks of ``b`` positions only multiplies queries and keys inside each block:
queries and keys are placed at their positions on a grid of ``P = ⌈T/b⌉·b`` rows (``T = max(n, m)``), cut into
``P/b`` blocks, and one batched GEMM gives every block's ``b × b`` products, added onto the block diagonal of
the ``P × P`` logits — ``O(T·b·r)`` per level instead of ``O(n·m·r)`` (the paper's ``T Σ_l b_l r_l``). The summed
logits are normalised and go through a masked softmax (or the identity link); they are accumulated in
float32 for float16/bfloat16 inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import allowed_mask, check_scale, expand_kv_heads, masked_softmax, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.btt import check_link
from attnlab.reference.mlr import NORMALIZATIONS, check_levels


def block_pattern(n: int, m: int, size: int, device: torch.device) -> torch.Tensor:
    """Query ``i`` (position ``i + T − n``) and key ``j`` (``j + T − m``, ``T = max(n, m)``) in one block."""
    span = max(n, m)
    rows = torch.div(torch.arange(n, device=device) + (span - n), size, rounding_mode="floor")
    cols = torch.div(torch.arange(m, device=device) + (span - m), size, rounding_mode="floor")
    return rows[:, None] == cols[None, :]


def _on_grid(x: torch.Tensor, offset: int, rows: int) -> torch.Tensor:
    """``x (..., t, r)`` placed at rows ``offset … offset + t − 1`` of a zero ``(..., rows, r)`` grid."""
    return torch.nn.functional.pad(x, (0, 0, offset, rows - offset - x.shape[-2]))


@torch_checked
def mlr_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    ranks: Any,
    block_sizes: Any = None,
    scale: float | None = None,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Sequence-axis MLR attention on tensors (same call as :func:`attnlab.reference.mlr.mlr_attention`).

    Shapes: ``q (..., H, n, d)``, ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``. Returns
    ``(..., H, n, d_v)`` in the input dtype and device; differentiable.
    """
    q, k, v = check_qkv(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    rank_tuple, sizes = check_levels(q.shape[-1], max(n, m), ranks, block_sizes)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {NORMALIZATIONS}, got {normalize!r}")
    sigma = None if scale is None else check_scale(scale, 1.0)
    kind = check_link(link)
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    span = max(n, m)
    grid = max(-(-span // size) * size for size in sizes)
    full = q.new_zeros(*q.shape[:-2], grid, grid)
    count = q.new_zeros(n, m)
    start = 0
    for r, size in zip(rank_tuple, sizes):
        c = 1.0 / r if sigma is None else sigma
        padded = -(-span // size) * size
        blocks = padded // size
        qg = _on_grid(q[..., start : start + r] * c, span - n, padded).unflatten(-2, (blocks, size))
        kg = _on_grid(k[..., start : start + r], span - m, padded).unflatten(-2, (blocks, size))
        products = qg @ kg.transpose(-1, -2)  # (..., blocks, size, size)
        level = full[..., :padded, :padded].unflatten(-1, (blocks, size)).unflatten(-3, (blocks, size))
        level.diagonal(dim1=-4, dim2=-2).add_(products.movedim(-3, -1))
        count = count + block_pattern(n, m, size, q.device)
        start += r
    scores = full[..., span - n : span, span - m : span]
    if normalize == "levels":
        scores = scores / len(rank_tuple)
    elif normalize == "coverage":
        scores = scores / count.clamp(min=1.0)
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    if kind == "softmax":
        weights = masked_softmax(scores, allowed)
    else:
        weights = scores if allowed is None else scores.masked_fill(~allowed, 0.0)
    return (weights @ v).to(dtype)
