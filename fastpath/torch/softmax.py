"""Softmax attention through ``torch.nn.functional.scaled_dot_product_attention``.

Source: Vaswani et al. 2017 (arXiv 1706.03762); GQA: Ainslie et al. 2023 (arXiv 2305.13245).
PyTorch's ``is_causal=True`` aligns the causal triangle top-left; attnlab's ``causal`` is
bottom-right (FlashAttention >= 2.1), so for ``m != n`` the mask is built here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from attnlab.fastpath.torch._common import (
    allowed_mask,
    broadcast_lead,
    check_bool,
    check_last_dim,
    check_same_dtype,
    check_scale,
    check_tensor,
    kv_group,
    row_has_key,
    torch_checked,
)


def check_qkv(q: Any, k: Any, v: Any, names: tuple[str, str, str] = ("q", "k", "v")) -> tuple[torch.Tensor, ...]:
    """Validate ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``."""
    q, k, v = (check_tensor(name, t) for name, t in zip(names, (q, k, v)))
    check_same_dtype(names, (q, k, v))
    check_last_dim(names[1], k, q.shape[-1], f"d_k, the last axis of {names[0]}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"{names[1]}/{names[2]}: expected the same leading dims and length (..., m, *), "
            f"got {names[1]}{tuple(k.shape)} and {names[2]}{tuple(v.shape)}"
        )
    kv_group(q, k, (names[0], names[1]))
    return q, k, v


def visibility(q: torch.Tensor, k: torch.Tensor, *, causal: Any, mask: Any) -> tuple[torch.Tensor | None, bool]:
    """``(allowed, square_causal)`` for SDPA: square causal self-attention without a mask uses SDPA's own
    ``is_causal`` (no mask tensor, so the fused kernels stay eligible); anything else gets an explicit
    bottom-right boolean mask, or None when every pair is visible."""
    n, m = q.shape[-2], k.shape[-2]
    square_causal = check_bool("causal", causal) and n == m and mask is None
    if square_causal:
        return None, True
    return allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device), False


def sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    allowed: torch.Tensor | None,
    causal_square: bool = False,
) -> torch.Tensor:
    """SDPA with the GQA head map, a boolean visibility mask, and zeros on rows with no visible key.

    Rows with no visible key are opened to every key before the kernel runs (so neither the forward
    nor the backward ever sees an all ``-inf`` row) and zeroed afterwards.
    """
    group = kv_group(q, k)
    if group > 1 and not (q.ndim == 4 and k.shape[:-3] == q.shape[:-3]):
        k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
        group = 1
    if group == 1:
        lead = broadcast_lead(("q", "k", "v"), (q, k, v))
        q, k, v = (t.expand(*lead, *t.shape[-2:]) if t.shape[:-2] != lead else t for t in (q, k, v))
    empty = None
    if allowed is not None:
        has = row_has_key(allowed)
        if not bool(has.all()):
            empty = ~has
            allowed = allowed | empty
    out = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=allowed,
        is_causal=causal_square and allowed is None,
        scale=scale,
        enable_gqa=group > 1,
    )
    if empty is not None:
        out = out.masked_fill(empty, 0.0)
    return out


@torch_checked
def softmax_attention(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """Softmax attention ``O = softmax_row(σ Q Kᵀ + M) V`` on PyTorch SDPA.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``, one floating
            dtype and device (the output follows them). ``H_kv`` divides ``H`` (contiguous groups).
        scale: σ, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m - n`` (bottom-right).
        mask: boolean (NumPy or torch) broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)``; a query with no visible key returns zeros. Differentiable.
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    return sdpa(q, k, v, scale=sigma, allowed=allowed, causal_square=square_causal)


def sdpa_peer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False, **_: Any) -> torch.Tensor:
    """Bare PyTorch SDPA, the benchmark peer (its top-left ``is_causal`` equals attnlab's causal when n == m)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.shape[-3] != q.shape[-3])
