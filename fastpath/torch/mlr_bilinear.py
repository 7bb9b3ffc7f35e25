"""Bilinear MLR attention with torch: all levels as one concatenated feature map, then SDPA.

Source: Kuang et al. 2025 (arXiv 2509.07963); operator as in YilunKuang/structured-attention@4895ad5
(BilinearMLRAttention). The score is a sum over levels of scaled feature products,
``s_ij = Σ_l c_l LN(q^{(l)}_i)·LN(k^{(l)}_j) = q̃_i·k̃_j`` with ``q̃ = [√c_l LN(q^{(l)})]_l`` (head dim
``Σ_l r_l p_l``), so the levels become one attention call
(:func:`attnlab.fastpath.torch.softmax.softmax_attention`, SDPA with scale 1) instead of L score matrices.
Each level's features are one batched GEMM of the token chunks with the level's ``(p_l, D/p_l, H r_l)``
weights. Features are computed in float32 for float16/bfloat16 inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from attnlab.fastpath.torch._common import (
    allowed_mask,
    broadcast_lead,
    check_bool,
    check_same_dtype,
    check_tensor,
    torch_checked,
)
from attnlab.fastpath.torch.btt import rms_cap
from attnlab.fastpath.torch.softmax import softmax_attention
from attnlab.reference.btt import LN_EPS, check_link
from attnlab.reference.mlr_bilinear import NORMALIZATIONS, check_bilinear_mlr_shapes, level_scale
from attnlab.validation import broadcast_batch


def level_features(tokens: torch.Tensor, weight: torch.Tensor, heads: int, rank: int) -> torch.Tensor:
    """``(..., n, D)`` tokens and ``(p, D/p, H r)`` weights → ``(..., H, n, r·p)`` level features."""
    chunks, width = weight.shape[0], weight.shape[1]
    parts = tokens.unflatten(-1, (chunks, width)).movedim(-2, 0)  # (p, ..., n, D/p)
    projected = torch.einsum("p...nw,pwz->...npz", parts, weight).unflatten(-1, (heads, rank))  # (..., n, p, H, r)
    return projected.permute(*range(projected.ndim - 4), -2, -4, -1, -3).flatten(-2)


def mixed_features(
    tokens: torch.Tensor,
    weight: torch.Tensor,
    ranks: tuple[int, ...],
    heads: int,
    *,
    mup: bool,
    use_ln: bool,
    cap: bool,
    divide: int,
) -> torch.Tensor:
    """``[√(c_l / divide) · LN(q^{(l)}_h)]_l`` concatenated over the levels, ``(..., H, n, Σ r_l p_l)``."""
    dim, start, parts = tokens.shape[-1], 0, []
    for level, rank in enumerate(ranks):
        chunks = 2**level
        block = weight[:, start : start + heads * rank].reshape(chunks, dim // chunks, heads * rank)
        if cap:
            block = rms_cap(block, dim // chunks, heads * rank)
        feats = level_features(tokens, block, heads, rank)
        if use_ln:
            feats = F.layer_norm(feats, (feats.shape[-1],), eps=LN_EPS)
        parts.append(feats * math.sqrt(level_scale(rank, chunks, mup) / divide))
        start += heads * rank
    return torch.cat(parts, dim=-1)


@torch_checked
def bilinear_mlr_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    ranks: Any,
    mup: bool = False,
    layer_norm_features: bool = True,
    normalize_weights: bool = True,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Bilinear MLR attention on tensors (same call as the reference).

    Shapes: ``x (..., 1, n, D)``, ``y (..., 1, m, D)``, ``v (..., H, m, d_v)``, packed ``w_q, w_k (D, H·Σr)``.
    Returns ``(..., H, n, d_v)`` in the input dtype and device; differentiable in every array.
    """
    x, y, v = (check_tensor(name, t) for name, t in (("x", x), ("y", y), ("v", v)))
    w_q, w_k = check_tensor("w_q", w_q, ndim=2), check_tensor("w_k", w_k, ndim=2)
    check_same_dtype(("x", "y", "v", "w_q", "w_k"), (x, y, v, w_q, w_k))
    rank_tuple = check_bilinear_mlr_shapes(
        tuple(x.shape), tuple(y.shape), tuple(v.shape), tuple(w_q.shape), tuple(w_k.shape), ranks
    )
    broadcast_batch(("v", "x", "y"), (v, x, y))  # named before the projections rename them q and k
    heads = v.shape[-3]
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {NORMALIZATIONS}, got {normalize!r}")
    kind = check_link(link)
    options: dict[str, Any] = {
        "mup": check_bool("mup", mup),
        "use_ln": check_bool("layer_norm_features", layer_norm_features),
        "cap": check_bool("normalize_weights", normalize_weights),
        "divide": len(rank_tuple) if normalize == "levels" else 1,
    }
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype

    def shared(tokens: torch.Tensor) -> torch.Tensor:
        return (tokens[..., 0, :, :] if tokens.ndim >= 3 else tokens).to(work)

    queries = mixed_features(shared(x), w_q.to(work), rank_tuple, heads, **options).to(x.dtype)
    keys = mixed_features(shared(y), w_k.to(work), rank_tuple, heads, **options).to(x.dtype)
    lead = broadcast_lead(("q", "k", "v"), (queries, keys, v))
    queries, keys, values = (t.expand(*lead, *t.shape[-2:]) for t in (queries, keys, v))
    if kind == "softmax":
        return softmax_attention(queries, keys, values, scale=1.0, causal=causal, mask=mask)
    allowed = allowed_mask(
        queries.shape[-2], keys.shape[-2], causal=causal, mask=mask, lead=tuple(lead), device=x.device
    )
    scores = queries @ keys.transpose(-1, -2)
    return (scores if allowed is None else scores.masked_fill(~allowed, 0.0)) @ values
