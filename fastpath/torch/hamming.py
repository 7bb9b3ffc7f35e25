"""Hamming attention on ±1 sign codes (HAD) with torch.

Source: Horton et al. 2025, "Hamming Attention Distillation" (arXiv 2502.01770). Codes use
``sign(0) = +1`` (``torch.sign`` would give 0). For ±1 codes ``q̂·k̂ = d − 2·Ham(q̂, k̂)`` is an
integer of magnitude ≤ d, so the code matmul is exact in float32 (d < 2²⁴) and float64.

Without top-N the scores go straight into SDPA as ``σ q̂·k̂`` (the codes are the queries and keys);
with top-N the integer scores are formed once, the N largest visible per row are kept (ties with the
N-th value kept, as the reference does), and a masked softmax follows.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_positive_int,
    expand_kv_heads,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility
from attnlab.reference.hamming import check_hamming_scale


def sign_code(x: torch.Tensor) -> torch.Tensor:
    """Binarise to ±1 in ``x``'s dtype with ``sign(0) = +1``; no gradient flows (the codes are constants)."""
    return torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype)


def hamming_scores(q: Any, k: Any, *, scale: float | None = None) -> torch.Tensor:
    """Logits ``σ (d − 2·Ham(sign q_i, sign k_j)) = σ q̂·k̂``, ``(..., H, n, m)``.

    The code products are accumulated in float32 (float64 for float64 inputs), where they are exact
    integers, and scaled once.
    """
    q, k, _ = check_qkv(q, k, k, ("q", "k", "k"))
    sigma = check_hamming_scale(scale, q.shape[-1], q.dtype)
    exact = torch.float64 if q.dtype == torch.float64 else torch.float32
    qe, ke = expand_kv_heads(q, k)
    dots = sign_code(qe).to(exact) @ sign_code(ke).to(exact).transpose(-1, -2)
    return (sigma * dots).to(q.dtype)


def keep_top_n(scores: torch.Tensor, allowed: torch.Tensor | None, top_n: int) -> torch.Tensor:
    """Visibility restricted to each row's ``top_n`` largest visible scores, ties with the N-th kept."""
    full = torch.ones_like(scores, dtype=torch.bool) if allowed is None else allowed.expand(scores.shape)
    if top_n >= scores.shape[-1]:
        return full
    masked = scores.detach().masked_fill(~full, -torch.inf)
    kth = masked.topk(top_n, dim=-1).values[..., -1:]
    return full & (masked >= kth)


@torch_checked
def hamming_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> torch.Tensor:
    """Softmax attention over binarised logits ``s_ij = σ sign(q_i)·sign(k_j)``.

    Args:
        q: ``(..., H, n, d)``; k: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)`` (full precision).
        scale: σ, default ``d ** -0.5``. causal, mask: as softmax attention, applied before top-N.
        top_n: keep the N largest visible logits per row (ties kept); None keeps all.

    Returns:
        ``(..., H, n, d_v)``. Gradients flow to ``v`` only (sign has zero derivative almost everywhere).
    """
    q, k, v = check_qkv(q, k, v)
    sigma = check_hamming_scale(scale, q.shape[-1], q.dtype)
    n, m = q.shape[-2], k.shape[-2]
    if top_n is None:
        allowed, square_causal = visibility(q, k, causal=causal, mask=mask)
        return sdpa(sign_code(q), sign_code(k), v, scale=sigma, allowed=allowed, causal_square=square_causal)
    top_n = check_positive_int("top_n", top_n)
    scores = hamming_scores(q, k, scale=sigma)
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(scores.shape[:-2]), device=q.device)
    _, ve = expand_kv_heads(q, v)
    return masked_softmax(scores, keep_top_n(scores, allowed, top_n)) @ ve
