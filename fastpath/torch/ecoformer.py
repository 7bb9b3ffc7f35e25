"""EcoFormer attention with torch (binary codes from kernelised hashing; linear time).

Source: Liu et al. 2022, "EcoFormer: Energy-Saving Attention with Linear Complexity" (arXiv 2209.09004);
operator constants as in the authors' code (ziplab/EcoFormer@6ff7155). The codes are computed in float64
without gradient (they are piecewise constant; the paper trains through them with a straight-through
estimator, which is not part of the operator), so a low-precision run never flips a bit whose projection
sits within rounding of 0. Aggregation runs in float32 for float16/bfloat16 inputs (float64 stays float64)
and the output is cast back:

* no mask, not causal: ``(h_iᵀ(Hᵀ[V|1]) + c Σ[V|1])``, two batched GEMMs;
* no mask, causal: chunks of :data:`CHUNK` tokens, an exclusive cumulative sum of the per-chunk states
  ``Σ h_j [v_j|1]ᵀ`` across chunks and a lower-triangular product inside each chunk;
* a boolean mask: the quadratic form ``w_ij = h_i·h_j + c`` on the visible pairs.

Squared token–anchor distances use ``1 + ‖a‖² − 2 u·a`` (one GEMM, no ``n × R × d`` temporary).
"""

from __future__ import annotations

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
from attnlab.reference.ecoformer import check_bandwidth, check_kernel_mean_lead, check_offset

#: Tokens per chunk of the causal linear-time form.
CHUNK = 64


def binary_codes(
    qk: torch.Tensor,
    anchors: torch.Tensor,
    hash_weights: torch.Tensor,
    kernel_mean: torch.Tensor,
    bandwidth: float | None,
) -> torch.Tensor:
    """±1 codes ``sign(A(κ(u_i) − μ))`` (``sign(0) = +1``) in float64, detached, ``(..., n, b)``."""
    x, a = qk.detach().double(), anchors.detach().double()
    u = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    dist = (1.0 + (a * a).sum(-1)[..., None, :] - 2.0 * (u @ a.transpose(-1, -2))).clamp_min(0.0)
    width = dist.mean(dim=(-2, -1), keepdim=True) if bandwidth is None else torch.tensor(bandwidth, dtype=torch.float64)
    if bool((width <= 0).any()):
        raise ValueError("qk/anchors: the kernel bandwidth (mean squared token–anchor distance) is 0; pass bandwidth=")
    features = torch.exp(-dist / (2.0 * width)) - kernel_mean.detach().double()[..., None, :]
    projected = features @ hash_weights.detach().double().transpose(-1, -2)
    return torch.where(projected >= 0, 1.0, -1.0).to(torch.float64)


def _divide(top: torch.Tensor) -> torch.Tensor:
    total = top[..., -1:]
    return torch.where(total != 0, top[..., :-1] / torch.where(total != 0, total, torch.ones_like(total)), 0.0)


def _chunked_causal(codes: torch.Tensor, v1: torch.Tensor, offset: float) -> torch.Tensor:
    n = codes.shape[-2]
    pad = (-n) % CHUNK
    h = F.pad(codes, (0, 0, 0, pad)).unflatten(-2, (-1, CHUNK))
    w1 = F.pad(v1, (0, 0, 0, pad)).unflatten(-2, (-1, CHUNK))
    states = h.transpose(-1, -2) @ w1
    before = torch.cumsum(states, dim=-3) - states
    plain = w1.sum(-2, keepdim=True)
    plain_before = torch.cumsum(plain, dim=-3) - plain
    inner = torch.tril(h @ h.transpose(-1, -2) + offset)
    top = h @ before + offset * plain_before + inner @ w1
    return _divide(top.flatten(-3, -2)[..., :n, :])


@torch_checked
def ecoformer_attention(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """EcoFormer attention ``o_i = Σ_j (h_i·h_j + c) v_j / Σ_j (h_i·h_j + c)`` on tensors.

    Args and shapes as :func:`attnlab.reference.ecoformer.ecoformer_attention`: ``qk (..., n, d)``,
    ``v (..., n, d_v)``, ``anchors (..., R, d)``, ``hash_weights (..., b, R)``, ``kernel_mean (..., R)``.
    Returns ``(..., n, d_v)`` in ``v``'s dtype and device; differentiable in ``v`` (the codes carry no
    gradient).
    """
    qk, v, anchors, hash_weights = (
        check_tensor(n, t) for n, t in zip(("qk", "v", "anchors", "hash_weights"), (qk, v, anchors, hash_weights))
    )
    kernel_mean = check_tensor("kernel_mean", kernel_mean, min_ndim=1)
    check_same_dtype(("qk", "v", "anchors", "hash_weights", "kernel_mean"), (qk, v, anchors, hash_weights, kernel_mean))
    if anchors.shape[-1] != qk.shape[-1]:
        raise ValueError(
            f"anchors: expected last axis of size {qk.shape[-1]} (d, the last axis of qk), got {tuple(anchors.shape)}"
        )
    r = anchors.shape[-2]
    for name, t in (("hash_weights", hash_weights), ("kernel_mean", kernel_mean)):
        if t.shape[-1] != r:
            raise ValueError(f"{name}: expected last axis of size {r} (R, the number of anchors), got {tuple(t.shape)}")
    broadcast_lead(("qk", "anchors", "hash_weights"), (qk, anchors, hash_weights))
    check_kernel_mean_lead(tuple(kernel_mean.shape), tuple(qk.shape))
    if v.shape[-2] != qk.shape[-2]:
        raise ValueError(
            f"qk/v: expected the same number of tokens on axis -2, got qk{tuple(qk.shape)} and v{tuple(v.shape)}"
        )
    if bool((torch.linalg.vector_norm(qk.detach(), dim=-1) == 0).any()):
        raise ValueError("qk: a token has an all-zero projection; EcoFormer ℓ2-normalises each token of qk")
    width = check_bandwidth(bandwidth)
    causal = check_bool("causal", causal)
    if causal and width is None:
        raise ValueError("causal: needs a fixed bandwidth= (the default bandwidth reads every token of the sequence)")
    codes = binary_codes(qk, anchors, hash_weights, kernel_mean, width)
    c = check_offset(offset, codes.shape[-1])
    work = torch.float32 if v.dtype in (torch.float16, torch.bfloat16) else v.dtype
    lead = broadcast_lead(("qk", "v"), (codes, v))
    n = v.shape[-2]
    h = codes.to(device=v.device, dtype=work).expand(*lead, *codes.shape[-2:])
    v1 = torch.cat([v.to(work), torch.ones(*v.shape[:-1], 1, dtype=work, device=v.device)], dim=-1).expand(
        *lead, n, v.shape[-1] + 1
    )
    if mask is None and not causal:
        out = _divide(h @ (h.transpose(-1, -2) @ v1) + c * v1.sum(-2, keepdim=True))
    elif mask is None:
        out = _chunked_causal(h, v1, c)
    else:
        allowed = allowed_mask(n, n, causal=causal, mask=mask, lead=tuple(lead), device=v.device)
        assert allowed is not None
        weights = (h @ h.transpose(-1, -2) + c).masked_fill(~allowed, 0.0)
        out = _divide(weights @ v1)
    return out.to(v.dtype)
