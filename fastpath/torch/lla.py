"""Local Linear Attention in torch: softmax weights, centred per-query moments by batched GEMMs, one solve.

Source: Zuo et al. 2025, "Local Linear Attention" (arXiv 2510.01450); see :mod:`attnlab.reference.lla` for the
operator and attnlab's reading of its kernel and ridge. For a chunk of queries at a time the key differences
``D_i = K − μ_i`` give ``Σ_i = D_iᵀ diag(a_i) D_i`` and ``C_i = Vᵀ diag(a_i) D_i`` (``O(n·m·d²)`` flops,
``O(chunk·m·d)`` memory; raw moments ``Σ a k kᵀ − μ μᵀ`` would cancel where the weights concentrate), then
``o_i = v̄_i + C_i (Σ_i + λ' I)⁻¹ (q_i − μ_i)``.

Only ``lam > 0`` with ``lam_convention="normalised"`` is implemented here (one positive ridge for every
row, so every system is positive definite); the reference covers ``lam = 0`` and the objective convention.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import allowed_mask, check_scale, expand_kv_heads, masked_softmax
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.lla import CHUNK_ELEMENTS, check_lam


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
    """Local linear attention (same call as the reference; ``lam > 0``, normalised convention); differentiable."""
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    ridge, convention = check_lam(lam, lam_convention)
    if form not in ("parallel", "blocked"):
        raise ValueError(f"form: expected one of ['blocked', 'parallel'], got {form!r}")
    if convention != "normalised" or ridge == 0:
        raise ValueError(
            "lam/lam_convention: the torch path needs lam > 0 on the normalised weights; use the reference"
        )
    q, k, v = expand_kv_heads(q, k, v)
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    a = masked_softmax(sigma * (q @ k.transpose(-1, -2)), allowed)
    center = k.mean(dim=-2, keepdim=True)
    kc, qc = k - center, q - center
    mu = a @ kc
    lead = max(1, a[..., 0, 0].numel())
    rows = max(1, CHUNK_ELEMENTS // max(1, lead * m * d))
    covs, crosses = [], []
    for start in range(0, n, rows):
        diff = kc[..., None, :, :] - mu[..., start : start + rows, None, :]
        weights = a[..., start : start + rows, :, None]
        covs.append((weights * diff).transpose(-1, -2) @ diff)
        crosses.append((weights * v[..., None, :, :]).transpose(-1, -2) @ diff)
    cov, cross = torch.cat(covs, dim=-3), torch.cat(crosses, dim=-3)
    eye = torch.eye(d, dtype=q.dtype, device=q.device)
    r = torch.linalg.solve(0.5 * (cov + cov.transpose(-1, -2)) + ridge * eye, (qc - mu)[..., None])
    return a @ v + (cross @ r)[..., 0]
