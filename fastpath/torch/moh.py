"""Mixture-of-Head attention on one SDPA call plus a per-token router (shared and top-K routed heads).

Source: Jin et al., "MoH: Multi-Head Attention as Mixture-of-Head Attention", 2024 (arXiv 2410.11842);
the same operator as :func:`attnlab.reference.moh.moh_attention` (``gating="paper"`` or the released
code's ``"code"``). Every head is attended, as in the released code.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import check_scale, check_tensor, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility
from attnlab.reference.moh import check_router


def gates(
    x: torch.Tensor, w_shared: torch.Tensor, w_routed: torch.Tensor, w_mix: torch.Tensor, *, top_k: int, gating: str
) -> torch.Tensor:
    """Per-token head gates ``(..., n, H)``, shared heads first."""
    shared = torch.softmax(x @ w_shared.T, dim=-1)
    routed = torch.softmax(x @ w_routed.T, dim=-1)
    mix = torch.softmax(x @ w_mix.T, dim=-1)
    keep = torch.zeros_like(routed, dtype=torch.bool).scatter_(-1, routed.topk(top_k, dim=-1).indices, True)
    picked = routed.masked_fill(~keep, 0.0)
    if gating == "code":
        shared = shared * w_shared.shape[0]
        picked = picked * (top_k / picked.sum(dim=-1, keepdim=True))
        mix = mix * 2.0
    return torch.cat([mix[..., :1] * shared, mix[..., 1:] * picked], dim=-1)


@torch_checked
def moh_attention(
    q: Any,
    k: Any,
    v: Any,
    x: Any,
    w_shared: Any,
    w_routed: Any,
    w_mix: Any,
    *,
    top_k: int,
    gating: str = "paper",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Gated head outputs ``g_{t,h} O_{t,h}`` of Mixture-of-Head attention on PyTorch SDPA.

    Args and shapes as :func:`attnlab.reference.moh.moh_attention`: ``q (..., H, n, d_k)``, ``k``/``v``
    with ``H_kv | H`` heads, router inputs ``x (..., n, D)``, routers ``w_shared (h_s, D)``,
    ``w_routed (h_r, D)``, ``w_mix (2, D)``; all tensors of one dtype and device.

    Returns:
        ``(..., H, n, d_v)``; differentiable in every tensor (through the selected routed scores).
    """
    q, k, v = check_qkv(q, k, v)
    if q.ndim < 3:
        raise ValueError(f"q: expected at least 3 dims laid out (..., H, n, d), got shape {tuple(q.shape)}")
    x = check_tensor("x", x)
    routers = [
        check_tensor(name, w, ndim=2) for name, w in (("w_shared", w_shared), ("w_routed", w_routed), ("w_mix", w_mix))
    ]
    for name, t in zip(("x", "w_shared", "w_routed", "w_mix"), (x, *routers)):
        if t.dtype != q.dtype or t.device != q.device:
            raise TypeError(
                f"q/{name}: expected one dtype and one device, got q: {q.dtype} on {q.device}, "
                f"{name}: {t.dtype} on {t.device}"
            )
    top = check_router(q, x, *routers, top_k, gating)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    heads = sdpa(q, k, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    return heads * gates(x, *routers, top_k=top, gating=gating).transpose(-1, -2).unsqueeze(-1)
