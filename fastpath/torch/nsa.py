"""NSA-style sparse attention in torch (Yuan et al. 2025, arXiv 2502.11089; the operator of
:mod:`attnlab.reference.nsa`): three SDPA calls with boolean masks.

Compressed branch: SDPA over the mean-pooled blocks, visible once complete. Selection: each KV group's
mean compressed probabilities, forced first/previous/current blocks, and a stable descending sort (ties
to the lower block) for the top ``top_n``; the selected blocks' tokens ``j <= t`` become a boolean mask.
Window: the band ``t − w < j <= t``. The selection itself has no gradient (it is piecewise constant);
the branches and gates are differentiated by autograd.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    check_positive_int,
    check_scale,
    check_tensor,
    kv_group,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv, sdpa
from attnlab.reference.nsa import DEFAULT_BLOCK, DEFAULT_TOP_N, DEFAULT_WINDOW
from attnlab.validation import check_broadcast_to


@torch_checked
def nsa_attention(
    q: Any,
    k: Any,
    v: Any,
    gates: Any = None,
    *,
    block_size: int = DEFAULT_BLOCK,
    top_n: int = DEFAULT_TOP_N,
    window: int = DEFAULT_WINDOW,
    scale: float | None = None,
) -> torch.Tensor:
    """``o_t = g_cmp o_cmp + g_slc o_slc + g_swa o_swa`` (same call as the reference); differentiable."""
    q, k, v = check_qkv(q, k, v)
    n = q.shape[-2]
    if k.shape[-2] != n:
        raise ValueError(
            f"q/k: NSA is causal self-attention over one sequence, got n={n} queries and m={k.shape[-2]} keys"
        )
    bs = check_positive_int("block_size", block_size)
    top_n = check_positive_int("top_n", top_n)
    window = check_positive_int("window", window)
    bs, window = min(bs, n + 1), min(window, n)  # larger ones select the same tokens, as in the reference
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    group = kv_group(q, k) if k.shape[-3] != 1 or q.ndim < 3 else q.shape[-3]
    device = q.device
    full, total = n // bs, -(-n // bs)
    t = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    blocks = torch.arange(total, device=device)[None, :]
    if full:
        kc = k[..., : full * bs, :].unflatten(-2, (full, bs)).mean(-2)
        vc = v[..., : full * bs, :].unflatten(-2, (full, bs)).mean(-2)
        visible = (blocks[:, :full] + 1) * bs - 1 <= t
        o_cmp = sdpa(q, kc, vc, scale=sigma, allowed=visible)
        with torch.no_grad():
            kc_heads = (
                kc.repeat_interleave(q.shape[-3] // kc.shape[-3], dim=-3)
                if q.ndim >= 3 and kc.shape[-3] != q.shape[-3]
                else kc
            )
            # selection scores at the input precision (float32 for half types): near-tied blocks must rank alike
            work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
            probs = masked_softmax(sigma * (q.to(work) @ kc_heads.to(work).transpose(-1, -2)), visible)
            probs = (
                probs.unflatten(-3, (probs.shape[-3] // group, group))
                .mean(-3, keepdim=True)
                .expand(*probs.shape[:-3], probs.shape[-3] // group, group, n, full)
                .flatten(-4, -3)
            )
    else:
        o_cmp = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=device)
        probs = torch.zeros(*q.shape[:-1], 0, device=device)
    with torch.no_grad():
        current = t // bs
        forced = (blocks == 0) | (blocks == current) | (blocks == current - 1)
        allowed = forced | ((blocks + 1) * bs - 1 <= t)
        scores = torch.nn.functional.pad(probs, (0, total - probs.shape[-1]))
        key = torch.where(forced, torch.inf, torch.where(allowed, scores, -torch.inf))
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices[..., :top_n]
        chosen = torch.zeros_like(key, dtype=torch.bool).scatter(-1, order, True) & allowed
        tokens = torch.gather(chosen, -1, (j // bs).expand(*chosen.shape[:-1], n)) & (j <= t)
    o_slc = sdpa(q, k, v, scale=sigma, allowed=tokens)
    o_swa = sdpa(q, k, v, scale=sigma, allowed=(j <= t) & (j > t - window))
    if gates is None:
        return o_cmp + o_slc + o_swa
    g = check_tensor("gates", gates, min_ndim=2, layout="(..., H, n, 3)")  # a positional array: a tensor
    if g.dtype != q.dtype or g.device != q.device:
        raise TypeError(f"gates: expected {q.dtype} on {q.device} like q, got {g.dtype} on {g.device}")
    target = (*o_cmp.shape[:-1], 3)
    check_broadcast_to("gates", tuple(g.shape), target, "an array (..., H, n, 3)")
    return g[..., 0:1] * o_cmp + g[..., 1:2] * o_slc + g[..., 2:3] * o_swa
