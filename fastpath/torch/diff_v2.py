"""Differential attention V2 on one SDPA call over all ``2H`` query heads.

Source: Ye, Dong, Sun & Wei, "Differential Transformer V2" (Microsoft, 2026; microsoft/unilm
``Diff-Transformer-V2``). ``O_h = o_{2h} − sigmoid(λ_h) o_{2h+1}`` with ``o_j`` the GQA softmax attention
of query head ``j`` (KV head ``j // (2H / H_kv)``), as :func:`attnlab.reference.diff_v2.diff_v2_attention`.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import check_scale, check_tensor, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility


def check_lam(lam: Any, like: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
    """``lam`` as a tensor on ``like``'s dtype and device, broadcastable to ``(..., H, n, 1)``."""
    lam = check_tensor("lam", lam)
    target = (*out_shape[:-1], 1)
    try:
        ok = lam.ndim <= len(target) and tuple(torch.broadcast_shapes(lam.shape, target)) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"lam: expected the pre-sigmoid weights of shape (..., H, n, 1) broadcastable to {target}, "
            f"got shape {tuple(lam.shape)}"
        )
    if lam.dtype != like.dtype or lam.device != like.device:
        raise TypeError(
            f"q/lam: expected one dtype and one device, got q: {like.dtype} on {like.device}, "
            f"lam: {lam.dtype} on {lam.device}"
        )
    return lam


@torch_checked
def diff_v2_attention(
    q: Any, k: Any, v: Any, lam: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """Differential attention V2 ``O_h = A(Q_{2h}) V − sigmoid(λ_h) ⊙ A(Q_{2h+1}) V`` on PyTorch SDPA.

    Args:
        q: ``(..., 2H, n, d)``; k: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``; ``H_kv | 2H``.
        lam: pre-sigmoid weights, a tensor broadcastable to ``(..., H, n, 1)``.
        scale, causal, mask: as :func:`attnlab.fastpath.torch.softmax.softmax_attention`.

    Returns:
        ``(..., H, n, d_v)`` in the inputs' dtype and device; differentiable in ``q``, ``k``, ``v``, ``lam``.
    """
    q = check_tensor("q", q, min_ndim=3)
    if q.shape[-3] % 2:
        raise ValueError(
            f"q: expected an even number 2H of query heads on axis -3 (pairs 2h, 2h + 1), got shape {tuple(q.shape)}"
        )
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    heads = sdpa(q, k, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    first, second = heads[..., 0::2, :, :], heads[..., 1::2, :, :]
    return first - torch.sigmoid(check_lam(lam, q, tuple(first.shape))) * second
