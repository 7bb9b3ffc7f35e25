"""Local Linear Attention in torch: softmax weights, centred per-query moments by batched GEMMs, one solve.

Source: Zuo et al. 2025, "Local Linear Attention" (arXiv 2510.01450); see :mod:`attnlab.reference.lla` for the
operator and attnlab's reading of its kernel and ridge. For a chunk of queries at a time the key differences
``D_i = K − μ_i`` give ``Σ_i = D_iᵀ diag(a_i) D_i`` and ``C_i = Vᵀ diag(a_i) D_i`` (``O(n·m·d²)`` flops,
``O(chunk·m·d)`` memory; raw moments ``Σ a k kᵀ − μ μᵀ`` would cancel where the weights concentrate), then
``o_i = v̄_i + C_i (Σ_i + λ' I)⁻¹ (q_i − μ_i)``. The differences are taken relative to each row's heaviest key
(``μ_i − k_{j*}`` has no cancellation), as in the reference: at float32 on one-hot rows (logits ~1e3) that cut
the gradient error about 300-fold.

Both λ conventions and ``lam = 0`` (the pseudo-inverse limit) are covered; ``form`` is validated, the
evaluation is the per-query one.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import allowed_mask, check_scale, expand_kv_heads, masked_softmax, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.lla import CHUNK_ELEMENTS, MAX_RIDGE, PINV_RTOL, check_lam


@torch_checked
def lla_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
    form: str = "parallel",
) -> torch.Tensor:
    """Local linear attention (same call as the reference); differentiable, in the input dtype."""
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    ridge, convention = check_lam(lam, lam_convention)
    if form not in ("parallel", "blocked"):
        raise ValueError(f"form: expected one of ['blocked', 'parallel'], got {form!r}")
    q, k, v = expand_kv_heads(q, k, v)
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    logits = sigma * (q @ k.transpose(-1, -2))
    a = masked_softmax(logits, allowed)
    center = k.mean(dim=-2, keepdim=True)
    kc, qc = k - center, q - center
    anchor = torch.gather(kc, -2, a.argmax(dim=-1)[..., None].expand(*a.shape[:-1], d))  # each row's heaviest key
    lead = max(1, a[..., 0, 0].numel())
    rows = max(1, CHUNK_ELEMENTS // max(1, lead * m * d))
    covs, crosses, offsets = [], [], []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        rel = kc[..., None, :, :] - anchor[..., start:stop, None, :]
        weights = a[..., start:stop, :, None]
        shift = (weights * rel).sum(dim=-2)  # μ_i − k_{j*}: no cancellation, even for one-hot rows
        diff = rel - shift[..., :, None, :]
        covs.append((weights * diff).transpose(-1, -2) @ diff)
        crosses.append((weights * v[..., None, :, :]).transpose(-1, -2) @ diff)
        offsets.append((qc[..., start:stop, :] - anchor[..., start:stop, :]) - shift)
    cov, cross, offset = torch.cat(covs, dim=-3), torch.cat(crosses, dim=-3), torch.cat(offsets, dim=-2)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return a @ v + _fit_correction(cov, cross, offset, _ridges(logits, allowed, ridge, convention))


def _ridges(logits: torch.Tensor, allowed: torch.Tensor | None, lam: float, convention: str) -> torch.Tensor:
    """``λ'_i`` per row: ``lam``, or ``2 lam / Σ_j e^{s_ij}`` for the objective as written (1 on empty rows)."""
    if convention == "normalised":
        return torch.full(logits.shape[:-1], lam, dtype=logits.dtype, device=logits.device)
    masked = logits if allowed is None else logits.masked_fill(~allowed, -math.inf)
    lse = torch.logsumexp(masked, dim=-1)
    limit = min(MAX_RIDGE, torch.finfo(logits.dtype).max ** 0.5)
    ridge = (2 * lam * torch.exp(-lse.clamp(min=-math.log(limit)))).clamp(max=limit)
    return torch.where(torch.isfinite(lse), ridge, torch.ones_like(ridge))


def _fit_correction(cov: torch.Tensor, cross: torch.Tensor, offset: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
    """``C (Σ + λ'I)⁻¹ x`` with each system divided by its size ``tr Σ + d λ'``; rows whose ridge is below
    ``PINV_RTOL`` of that size use the pseudo-inverse (the ``λ' → 0⁺`` limit), as the reference does."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    size = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) + d * ridge
    size = torch.where(size > 0, size, torch.ones_like(size))
    system = cov / size[..., None, None] + (ridge / size)[..., None, None] * eye
    regular = (ridge / size) > PINV_RTOL
    solvable = torch.where(regular[..., None, None], system, eye)
    coords = torch.linalg.solve(solvable, offset[..., None])
    if not bool(regular.all()):
        # below float64 the noise in a singular Σ's null eigenvalues is ~eps·d, far above PINV_RTOL
        rtol = max(PINV_RTOL, 10 * d * torch.finfo(cov.dtype).eps) if cov.dtype != torch.float64 else PINV_RTOL
        singular = torch.where(regular[..., None, None], eye, system)
        limit = torch.linalg.pinv(singular, hermitian=True, rtol=rtol) @ offset[..., None]
        coords = torch.where(regular[..., None, None], coords, limit)
    return (cross / size[..., None, None] @ coords)[..., 0]
