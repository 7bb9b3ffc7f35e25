"""Causal windowed 2-simplicial attention in torch, ``O(n · w1 · w2 · d)`` work.

Source: Roy et al., "Fast and Simplex: 2-Simplicial Attention in Triton" (arXiv 2507.02754).
Query ``i`` sees the pairs ``i − w1 < j <= i`` and ``i − w2 < k <= i``. Each query's two key windows
are gathered as strided views (``unfold`` over the front-padded keys), the ``w1 × w2`` logits are one
batched matmul ``(q_i ∘ K1_win) K2_winᵀ``, positions before the sequence start are masked, and
``o_i = Σ_k ((P_iᵀ V1_win) ∘ V2_win)_k``. Query blocks bound the memory to ``block · w1 · w2``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from attnlab.fastpath.torch._common import (
    check_bool,
    check_positive_int,
    check_same_length,
    check_scale,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.tensor import BLOCK_ELEMENTS, check_five, tensor_max_abs
from attnlab.reference.tensor import check_pair_magnitudes


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """``(L, n, c) -> (L, n, w, c)``: row ``i`` holds positions ``i − w + 1 … i`` (zeros before 0)."""
    padded = F.pad(x, (0, 0, w - 1, 0))
    return padded.unfold(1, w, 1).transpose(-1, -2)


def _window_block(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    allowed: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """``q (L, b, d)``, windows ``(L, b, w·, ·)``, ``allowed (b, w1·w2)`` -> ``(L, b, d_v)``."""
    logits = sigma * ((q[..., None, :] * k1) @ k2.transpose(-1, -2))  # (L, b, w1, w2)
    shape = logits.shape
    probs = masked_softmax(logits.reshape(*shape[:2], shape[2] * shape[3]), allowed).reshape(shape)
    mixed = probs.transpose(-1, -2) @ v1  # (L, b, w2, d_v)
    return (mixed * v2).sum(dim=-2)


@torch_checked
def simplicial_attention(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> torch.Tensor:
    """Causal windowed 2-simplicial attention (same math and signature as the reference).

    Args:
        q, k1, k2: ``(..., n, d)``; v1, v2: ``(..., n, d_v)``.
        window1, window2: positive window sizes ``w1``, ``w2`` (clipped to ``n``).
        scale: σ, default ``1/√d``.
        kv_bias: ``k2 ← k2 + 1/d``, ``v2 ← v2 + 1`` (FBGEMM reference default).

    Returns:
        ``(..., n, d_v)``. Differentiable.
    """
    q, k1, k2, v1, v2 = check_five(q, k1, k2, v1, v2)
    w1 = check_positive_int("window1", window1)
    w2 = check_positive_int("window2", window2)
    d, n = q.shape[-1], q.shape[-2]
    sigma = check_scale(scale, d**-0.5)
    check_same_length(("q", "k1", "k2"), (q, k1, k2))
    check_same_length(("q", "v1", "v2"), (q, v1, v2))
    if check_bool("kv_bias", kv_bias):
        k2, v2 = k2 + 1.0 / d, v2 + 1.0
    check_pair_magnitudes((q, k1, k2, v1, v2), sigma, q.dtype, tensor_max_abs)
    w1, w2 = min(w1, n), min(w2, n)
    lead = q.shape[:-2]
    q, k1, k2, v1, v2 = (t.reshape(math.prod(lead), *t.shape[-2:]) for t in (q, k1, k2, v1, v2))
    win_k1, win_v1 = _windows(k1, w1), _windows(v1, w1)
    win_k2, win_v2 = _windows(k2, w2), _windows(v2, w2)
    rows = torch.arange(n, device=q.device)[:, None, None]
    # window slot a of row i is position i − w + 1 + a; it exists iff that position is >= 0
    valid = ((rows - w1 + 1 + torch.arange(w1, device=q.device)[None, :, None]) >= 0) & (
        (rows - w2 + 1 + torch.arange(w2, device=q.device)[None, None, :]) >= 0
    )
    valid = valid.reshape(n, w1 * w2)
    batch, d_v = q.shape[0], v1.shape[-1]
    out = torch.full((batch, n, d_v), torch.nan, dtype=q.dtype, device=q.device)
    block = max(1, BLOCK_ELEMENTS // max(1, batch * w1 * w2))
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k1, k2, v1, v2))
    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        args = (q[:, sl], win_k1[:, sl], win_k2[:, sl], win_v1[:, sl], win_v2[:, sl], valid[sl])
        if grad:
            out[:, sl] = checkpoint(_window_block, *args, sigma, use_reentrant=False)
        else:
            out[:, sl] = _window_block(*args, sigma)
    return out.reshape(*lead, n, d_v)
