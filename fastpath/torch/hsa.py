"""Hierarchical Self-Attention in torch by block means (the reading of Amizadeh et al. 2025, arXiv
2509.15448; see :mod:`attnlab.reference.hsa`).

Forward KL, the efficient algorithm: every tree node's mean key and mean value come from one sparse
``(nodes × m)`` averaging matrix (``O(m · depth)`` non-zeros, the bottom-up pass of the dynamic
programme); each query then scores only its ``O(branching · depth)`` blocks, ``log|B| + σ q_i·k̄_B``,
and mixes the blocks' mean values. Nothing of size ``n × m`` is formed. Reverse KL needs the full
softmax row, so it is evaluated densely. Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch

from attnlab.fastpath.torch._common import check_scale, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.hsa import PROJECTIONS, check_tree


def _frozen(tree: Any) -> Any:
    return int(tree) if not isinstance(tree, (list, tuple)) else tuple(_frozen(c) for c in tree)


@lru_cache(maxsize=64)
def _layout(tree: Any, m: int) -> tuple[list[list[int]], list[list[int]]]:
    """Tree nodes (their token lists, leaves first as nodes ``0 … m − 1``) and each query's block nodes."""
    nodes: list[list[int]] = [[t] for t in range(m)]
    blocks: list[list[int]] = [[] for _ in range(m)]

    def build(node: Any) -> tuple[int, list[int]]:
        if isinstance(node, int):
            return node, [node]
        children = [build(c) for c in node]
        nodes.append([t for _, tokens in children for t in tokens])
        node_id = len(nodes) - 1
        for index, (_, tokens) in enumerate(children):
            others = [cid for other, (cid, _) in enumerate(children) if other != index]
            for t in tokens:
                blocks[t].extend(others)  # appended from the deepest ancestor up
        return node_id, nodes[node_id]

    build(tree)
    return nodes, [[t, *b] for t, b in enumerate(blocks)]


@torch_checked
def hsa_attention(
    q: Any, k: Any, v: Any, *, tree: Any, scale: float | None = None, projection: str = "forward_kl"
) -> torch.Tensor:
    """``o_i = Σ_B P_i(B) v̄_B`` over the blocks of ``tree`` seen from query ``i`` (same call as the reference).

    ``q (..., H, n, d_k)``, ``k (..., H_kv, n, d_k)``, ``v (..., H_kv, n, d_v)``; ``tree`` nested
    sequences of the token ints. Returns ``(..., H, n, d_v)`` in the input dtype. Differentiable.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection: expected one of {PROJECTIONS}, got {projection!r}")
    q, k, v = check_qkv(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    if n != m:
        raise ValueError(f"q/k: hierarchical self-attention needs one token sequence, got n={n} queries and m={m} keys")
    check_tree(tree, m)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    nodes, blocks = _layout(_frozen(tree), m)
    device = q.device
    rows = torch.tensor([i for i, tokens in enumerate(nodes) for _ in tokens], device=device)
    cols = torch.tensor([t for tokens in nodes for t in tokens], device=device)
    sizes = torch.tensor([len(tokens) for tokens in nodes], dtype=work, device=device)
    averaging = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), 1.0 / sizes[rows], (len(nodes), m), check_invariants=False
    ).coalesce()

    def node_means(x: torch.Tensor) -> torch.Tensor:
        flat = x.movedim(-2, 0).reshape(m, -1)
        return torch.sparse.mm(averaging, flat).reshape(len(nodes), *x.shape[:-2], x.shape[-1]).movedim(0, -2)

    width = max(len(b) for b in blocks)
    index = torch.tensor([b + [0] * (width - len(b)) for b in blocks], device=device)
    used = torch.tensor([[True] * len(b) + [False] * (width - len(b)) for b in blocks], device=device)
    block_values = node_means(v)[..., index, :]  # (..., n, width, d_v)
    if projection == "forward_kl":
        block_keys = node_means(k)[..., index, :]
        logits = sigma * torch.einsum("...id,...ibd->...ib", q, block_keys) + torch.log(sizes[index])
        mass = torch.softmax(logits.masked_fill(~used, -math.inf), dim=-1)
    else:
        soft = torch.softmax(sigma * (q @ k.transpose(-1, -2)), dim=-1)
        node_mass = torch.sparse.mm(averaging, soft.movedim(-1, 0).reshape(m, -1)).reshape(len(nodes), *soft.shape[:-1])
        node_mass = node_mass.movedim(0, -1) * sizes  # averaging matrix divides by |B|; restore the sums
        mass = torch.gather(node_mass, -1, index.expand(*soft.shape[:-2], n, width)) * used
    return torch.einsum("...ib,...ibd->...id", mass, block_values).to(dtype)
