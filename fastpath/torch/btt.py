"""Bilinear BTT attention with torch: structured keys by two core contractions, then SDPA.

Source: Kuang et al. 2025, "Customizing the Inductive Biases of Softmax Attention using Structured
Matrices" (arXiv 2509.07963); operator as in YilunKuang/structured-attention@4895ad5 (BilinearBTTAttention).
The keys ``LN(W_h y_j)`` of every head cost ``O(m·H·s·D·(a + d)/a)`` through the cores (``W_h`` is never
formed); the scores ``σ x_iᵀ k^h_j`` are ordinary attention logits with head dim ``D``, so the softmax link
runs on :func:`attnlab.fastpath.torch.softmax.softmax_attention` (SDPA, bottom-right causal) with the raw
queries broadcast over the heads. Keys are computed in float32 for float16/bfloat16 inputs.
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
    check_scale,
    check_tensor,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import softmax_attention
from attnlab.reference.btt import LN_EPS, RMS_EPS, btt_shape, check_link
from attnlab.validation import InputOverflow


def rms_cap(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """``W / max(1, RMS(W) / √(min(fan_in, fan_out)/fan_in²))`` (differentiable)."""
    mean_square = (weight * weight).mean()
    if not bool(torch.isfinite(mean_square.detach())):  # the reference stops on this overflow; W / inf = 0 would not
        raise InputOverflow(("w_q", "w_k"), weight.dtype, "the RMS of the weights overflows")
    rms = torch.sqrt(mean_square + RMS_EPS)
    return weight / torch.clamp(rms / math.sqrt(min(fan_in, fan_out) / fan_in**2), min=1.0)


def structured_keys(
    y: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    heads: int,
    sizes: tuple[int, int, int, int, int],
    layer_norm: bool,
) -> torch.Tensor:
    """``LN(W_h y_j)`` for every head, ``(..., H, m, D)``, from shared key tokens ``(..., m, D)``."""
    a, b, c, d, s = sizes
    partial = torch.einsum("...mcd,cdhbs->...mchbs", y.unflatten(-1, (c, d)), w_k.reshape(c, d, heads, b, s))
    z = torch.einsum("...mchbs,hbacs->...mhab", partial, w_q.reshape(heads, b, a, c, s))
    keys = z.flatten(-2).movedim(-2, -3)
    return F.layer_norm(keys, (keys.shape[-1],), eps=LN_EPS) if layer_norm else keys


@torch_checked
def btt_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    scale: float | None = None,
    layer_norm_keys: bool = True,
    normalize_weights: bool = True,
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """BTT bilinear attention ``O = link(σ x_iᵀ LN(W_h y_j) + M) V`` on tensors.

    Args and shapes as :func:`attnlab.reference.btt.btt_attention`: ``x (..., n, D)``, ``y (..., 1, m, D)``
    (shared by the heads), ``v (..., H, m, d_v)``, cores ``w_q (H·b, a, c·s)`` and ``w_k (c, d, H·b·s)``.
    Returns ``(..., H, n, d_v)`` in the input dtype and device; differentiable in every array.
    """
    x, y, v = (check_tensor(name, t) for name, t in (("x", x), ("y", y), ("v", v)))
    w_q, w_k = check_tensor("w_q", w_q, min_ndim=3), check_tensor("w_k", w_k, min_ndim=3)
    check_same_dtype(("x", "y", "v", "w_q", "w_k"), (x, y, v, w_q, w_k))
    if v.ndim < 3:
        raise ValueError(f"v: expected per-head values (..., H, m, d_v) with a head axis, got shape {tuple(v.shape)}")
    if y.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"y: expected last axis of size {x.shape[-1]} (D, the last axis of x), got shape {tuple(y.shape)}"
        )
    if y.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"y/v: expected the same number of keys on axis -2, got y{tuple(y.shape)} and v{tuple(v.shape)}"
        )
    if y.ndim >= 3 and y.shape[-3] != 1:
        raise ValueError(f"y: key tokens are shared by the heads; expected size 1 on axis -3, got {tuple(y.shape)}")
    heads = v.shape[-3]
    sizes = btt_shape(x.shape[-1], heads, w_q, w_k)
    a, b, c, d, s = sizes
    kind = check_link(link)
    sigma = check_scale(scale, x.shape[-1] ** -0.5)
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    wq, wk = w_q.to(work), w_k.to(work)
    if check_bool("normalize_weights", normalize_weights):
        wq, wk = rms_cap(wq, c * s, a), rms_cap(wk, d, heads * b * s)
    shared = y[..., 0, :, :] if y.ndim >= 3 else y
    keys = structured_keys(shared.to(work), wq, wk, heads, sizes, check_bool("layer_norm_keys", layer_norm_keys)).to(
        x.dtype
    )
    lead = broadcast_lead(("v", "x", "y"), (v, x, keys))
    queries, keys = x.expand(*lead, *x.shape[-2:]), keys.expand(*lead, *keys.shape[-2:])
    values = v.expand(*lead, *v.shape[-2:])
    if kind == "softmax":
        return softmax_attention(queries, keys, values, scale=sigma, causal=causal, mask=mask)
    allowed = allowed_mask(
        queries.shape[-2], keys.shape[-2], causal=causal, mask=mask, lead=tuple(lead), device=x.device
    )
    scores = sigma * (queries @ keys.transpose(-1, -2))
    return (scores if allowed is None else scores.masked_fill(~allowed, 0.0)) @ values
