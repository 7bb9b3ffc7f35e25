"""LASER attention on PyTorch SDPA with an exact fallback for underflowing rows.

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493).

``O = log(A exp(V))`` runs as one SDPA call on the shifted values ``exp(V − m)`` with the column
maximum ``m_c = max_j V_jc`` (detached: the shift cancels exactly), followed by ``log(·) + m``.
A global column shift underflows on rows whose *visible* values all sit far below ``m_c`` (causal
prefixes, masks): ``exp`` flushes to zero and the log returns ``−inf`` or loses every digit. Such rows
are detected (any output column whose weighted sum is below ``tiny/ε²`` of the dtype) and recomputed
exactly in the log domain, ``O_ic = LSE_j(S_ij + V_jc) − LSE_j(S_ij)``, so the output is finite
wherever the reference's is.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import check_scale, expand_kv_heads, kv_group, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility

#: Largest ``rows × m × d_v`` block the exact fallback materialises at once.
_FALLBACK_ELEMENTS = 1 << 22


def underflow_threshold(dtype: torch.dtype) -> float:
    """``tiny / ε²``: above it, terms flushed or rounded as subnormals (each off by at most ``tiny``)
    change a weighted sum by less than ``m ε²`` relative, far below one rounding."""
    info = torch.finfo(dtype)
    return float(info.tiny / info.eps**2)


def _exact_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None,
    sigma: float,
    batch_idx: torch.Tensor,
    row_idx: torch.Tensor,
) -> torch.Tensor:
    """Log-domain LASER for the selected ``(batch, row)`` pairs of flattened ``(L, n, ·)`` inputs."""
    out = []
    m, d_v = k.shape[-2], v.shape[-1]
    step = max(1, _FALLBACK_ELEMENTS // max(1, m * d_v))
    for start in range(0, batch_idx.numel(), step):
        b, r = batch_idx[start : start + step], row_idx[start : start + step]
        scores = sigma * (k[b] @ q[b, r][..., None])[..., 0]  # (R, m)
        if allowed is not None:
            scores = scores.masked_fill(~allowed[b, r], -math.inf)
        joint = scores[..., None] + v[b]  # (R, m, d_v)
        out.append(torch.logsumexp(joint, dim=-2) - torch.logsumexp(scores, dim=-1, keepdim=True))
    return torch.cat(out)


@torch_checked
def laser_attention(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """LASER attention ``O = log(softmax(σ Q Kᵀ + M) · exp(V))``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``.
        scale, causal, mask: as :func:`attnlab.fastpath.torch.softmax.softmax_attention`.

    Returns:
        ``(..., H, n, d_v)``; a query with no visible key returns zeros. Differentiable.
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    n, m = q.shape[-2], k.shape[-2]
    shift = v.detach().amax(dim=-2, keepdim=True)
    weighted = sdpa(q, k, torch.exp(v - shift), scale=sigma, allowed=allowed, causal_square=square_causal)
    group = kv_group(q, k)
    if group > 1:
        shift = shift.repeat_interleave(group, dim=-3)
    visible = torch.ones_like(weighted[..., :1], dtype=torch.bool)
    if square_causal:
        allowed = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()
    elif allowed is not None:
        visible = allowed.any(dim=-1, keepdim=True).expand(*weighted.shape[:-1], 1)
    under = (weighted < underflow_threshold(weighted.dtype)).any(dim=-1, keepdim=True) & visible
    out = torch.log(torch.where(under, torch.ones_like(weighted), weighted)) + shift
    if allowed is not None:
        out = out.masked_fill(~visible, 0.0)
    if not bool(under.any()):
        return out
    qe, ke, ve = expand_kv_heads(q, k, v)
    lead = qe.shape[:-2]
    flat = (-1, *qe.shape[-2:])
    flat_allowed = None if allowed is None else allowed.expand(*lead, n, m).reshape(-1, n, m)
    batch_idx, row_idx = under.reshape(-1, n).nonzero(as_tuple=True)
    exact = _exact_rows(
        qe.reshape(flat),
        ke.reshape(-1, m, ke.shape[-1]),
        ve.reshape(-1, m, ve.shape[-1]),
        flat_allowed,
        sigma,
        batch_idx,
        row_idx,
    )
    patched = out.reshape(-1, n, out.shape[-1]).index_put((batch_idx, row_idx), exact.to(out.dtype))
    return patched.reshape(out.shape)


def global_shift_peer(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """The paper's evaluation composed plainly, ``log(softmax(S) exp(V − m)) + m`` with the global column
    max ``m_c = max_j V_jc``: memory-lean (only ``n × m`` weights), the benchmark peer of LASER. It
    underflows to ``−inf`` on rows whose visible values sit far below ``m_c``, so it is not a reference."""
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
    shift = v.detach().amax(dim=-2, keepdim=True)
    weighted = sdpa(q, k, torch.exp(v - shift), scale=sigma, allowed=allowed, causal_square=square_causal)
    group = kv_group(q, k)
    return torch.log(weighted) + (shift.repeat_interleave(group, dim=-3) if group > 1 else shift)
