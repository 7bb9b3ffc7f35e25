"""Holographic attention with torch (complex tensors, autograd, CPU and CUDA).

Source: Huang et al. 2025 (arXiv 2509.19331); constants as in EonHao/Holographic-Transformers@453ccbc.
The released code rotates the values one query at a time in a Python loop; here the whole
``(n, m)`` weight-and-phasor matrix multiplies the values in one complex GEMM. The phasor is taken
directly from the shifted score ``u = s + ε(1 + i)`` as ``u / |u|`` and the decay's ``|Δφ|`` as
``atan2(|Im u|, Re u)``, so no ``exp(iΔφ)`` is evaluated (``u = 0`` gives ``Δφ = 0`` and phasor 1).
Complex inputs keep their precision (complex64 or complex128); real inputs are read as complex.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_device,
    check_scale,
    check_tensor,
    expand_kv_heads,
    kv_group,
    masked_softmax,
    torch_checked,
)
from attnlab.reference.holographic import PHASE_EPS, check_holographic_options
from attnlab.validation import InputOverflow

_REAL = {
    torch.float16: torch.complex64,
    torch.bfloat16: torch.complex64,
    torch.float32: torch.complex64,
    torch.float64: torch.complex128,
}


def _check(name: str, x: Any) -> torch.Tensor:
    """A finite floating or complex tensor ``(..., n, d)`` (the shared torch checks), as a complex tensor."""
    x = check_tensor(name, x, complex_ok=True)
    return x if x.is_complex() else x.to(_REAL[x.dtype])


@torch_checked
def holographic_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    alpha: Any = None,
    scale: float | None = None,
    eps: float = PHASE_EPS,
    cosine: bool = True,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Holographic attention ``o_i = Σ_j softmax_j(σ sim_ij e^{−α|Δφ_ij|}) e^{iΔφ_ij} v_j`` on tensors.

    Args and shapes as :func:`attnlab.reference.holographic.holographic_attention`: complex (or real)
    ``q (..., H, n, d)``, ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``. Returns a complex tensor
    ``(..., H, n, d_v)`` on the inputs' device; differentiable.
    """
    q, k, v = _check("q", q), _check("k", k), _check("v", v)
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k: expected last axis of size {q.shape[-1]} (d_k, the last axis of q), got shape {tuple(k.shape)}"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k/v: expected the same leading dims and length (..., m, *), got k{tuple(k.shape)} and v{tuple(v.shape)}"
        )
    kv_group(q, k)
    dtype = torch.complex128 if torch.complex128 in (q.dtype, k.dtype, v.dtype) else torch.complex64
    q, k, v = expand_kv_heads(q.to(dtype), k.to(dtype), v.to(dtype))
    probe = np.zeros((*q.shape[-3:-2], 1, 1)) if q.ndim >= 3 else np.zeros((1, 1))
    alpha_np = alpha
    if isinstance(alpha, torch.Tensor):  # the reference's checks, on the values (dtype kept: bool is refused)
        check_device("alpha", alpha)
        alpha_np = (
            (alpha.detach().double() if alpha.dtype in (torch.float16, torch.bfloat16) else alpha.detach())
            .cpu()
            .numpy()
        )
    decay_np, eps_value, cosine = check_holographic_options(probe, alpha_np, eps, cosine)
    real = q.real.dtype
    decay = torch.as_tensor(decay_np, dtype=real, device=q.device)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    if cosine and eps_value == 0.0:
        for name, x in (("q", q), ("k", k)):
            if bool(((x.detach().abs() ** 2).sum(-1) == 0).any()):  # the reference's test, underflow included
                raise ValueError(
                    f"{name}: an all-zero vector (or one whose squared norm underflows to 0) has no cosine "
                    "similarity when eps = 0"
                )
    s = q @ torch.conj_physical(k).transpose(-1, -2)
    shifted = s + complex(eps_value, eps_value)
    radius = shifted.abs()
    unit = torch.where(
        radius > 0, shifted / torch.where(radius > 0, radius, torch.ones_like(radius)), torch.ones_like(shifted)
    )
    sim = s.real
    if cosine:
        for name, x in (("q", q), ("k", k)):  # the reference's squared norms: the same range on both paths
            if not bool(torch.isfinite((x.detach().abs() ** 2).sum(-1)).all()):
                raise InputOverflow((name,), x.real.dtype, f"the squared norms of {name} overflow")
        norms = torch.linalg.vector_norm(q, dim=-1)[..., :, None] * torch.linalg.vector_norm(k, dim=-1)[..., None, :]
        sim = sim / (norms + eps_value)
    logits = sigma * sim * torch.exp(-decay * torch.atan2(shifted.imag.abs(), shifted.real))
    allowed = allowed_mask(
        q.shape[-2], k.shape[-2], causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device
    )
    weights = masked_softmax(logits, allowed)
    return (weights * unit) @ v
