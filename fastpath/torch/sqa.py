"""Sparse Query Attention layer: per-head projections, one GQA SDPA call over ``H_q`` query heads, output projection.

Source: Filipek, "Sparse Query Attention (SQA)", Reactive AI, 2025 (arXiv 2510.01817); the same layer as
:func:`attnlab.reference.sqa.sqa_attention`.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    broadcast_lead,
    check_bool,
    check_same_dtype,
    check_scale,
    check_tensor,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import sdpa
from attnlab.reference.sqa import check_weights


@torch_checked
def sqa_attention(
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """SQA layer ``Y = Σ_{h < H_q} softmax(σ (X W_Q^h)(C W_K^{g(h)})ᵀ + M)(C W_V^{g(h)}) W_O^h`` on PyTorch SDPA.

    Args and shapes as :func:`attnlab.reference.sqa.sqa_attention`: ``x (..., n, D)``, ``context (..., m, D_c)``,
    ``w_q (H_q, D, d_h)``, ``w_k (H_kv, D_c, d_h)``, ``w_v (H_kv, D_c, d_v)``, ``w_o (H_q, d_v, D_out)``.

    Returns:
        ``(..., n, D_out)`` in the inputs' dtype and device; differentiable in every tensor.
    """
    names = ("x", "context", "w_q", "w_k", "w_v", "w_o")
    x, context = check_tensor("x", x), check_tensor("context", context)
    w_q, w_k, w_v, w_o = (check_tensor(name, w, ndim=3) for name, w in zip(names[2:], (w_q, w_k, w_v, w_o)))
    check_same_dtype(names, (x, context, w_q, w_k, w_v, w_o))
    check_weights(x, context, w_q, w_k, w_v, w_o)
    lead = broadcast_lead(("x", "context"), (x, context))
    n, m = x.shape[-2], context.shape[-2]
    sigma = check_scale(scale, w_q.shape[-1] ** -0.5)
    square_causal = check_bool("causal", causal) and n == m and mask is None
    allowed = None if square_causal else allowed_mask(n, m, causal=causal, mask=mask, lead=lead, device=x.device)
    q = torch.einsum("...nd,hde->...hne", x, w_q)
    k = torch.einsum("...md,hde->...hme", context, w_k)
    v = torch.einsum("...md,hde->...hme", context, w_v)
    heads = sdpa(
        q, k, v, scale=sigma, allowed=None if allowed is None else allowed.unsqueeze(-3), causal_square=square_causal
    )
    return torch.einsum("...hne,hed->...nd", heads, w_o)
