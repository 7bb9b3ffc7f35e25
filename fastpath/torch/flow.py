"""Flow-Attention in torch, linear time: feature sums (prefix sums when causal) and one product through
``φ(K)ᵀ (c ⊙ V)``.

Source: Wu et al. 2022, "Flowformer" (ICML 2022, arXiv 2202.06258), §3; see :mod:`attnlab.reference.flow` for
the operator, its ε and clamp (the released code's variants) and the causal normalisation. Causal keeps the
running ``φ(k) vᵀ`` state as a cumulative sum, ``O(n · d · d_v)`` memory, as the released code does.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import check_bool, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.flow import FORMS, check_flow_options
from attnlab.validation import InputOverflow


def check_flows(incoming: torch.Tensor, outgoing: torch.Tensor) -> None:
    """The flows divide by ``incoming`` and ``outgoing``: they must be positive and finite, as the reference
    requires (it stops on the 0/0 of sigmoid features flushed to 0 with ``eps = 0``, or on an overflow)."""
    for flow in (incoming, outgoing):
        if flow.numel() and not bool(((flow > 0) & torch.isfinite(flow)).all()):
            raise InputOverflow(("q", "k", "eps"), flow.dtype, "a flow normaliser is 0 or infinite")


@torch_checked
def flow_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    eps: float = 0.0,
    clamp: float | None = None,
    competition: bool = True,
    allocation: bool = True,
    form: str = "linear_time",
) -> torch.Tensor:
    """Flow-Attention (same call as the reference; ``form`` is validated, the evaluation is linear-time)."""
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    q, k, v = check_qkv(q, k, v)
    causal = check_bool("causal", causal)
    eps, clamp = check_flow_options(eps, clamp)
    competition = check_bool("competition", competition)
    allocation = check_bool("allocation", allocation)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal flow attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    q, k, v = expand_kv_heads(q, k, v)
    fq, fk = torch.sigmoid(q), torch.sigmoid(k)
    n, m = fq.shape[-2], fk.shape[-2]
    if causal:
        count = torch.arange(1, n + 1, dtype=q.dtype, device=q.device)
        incoming = ((fq + eps) * (fk.cumsum(-2) + eps)).sum(-1) / count
        outgoing = ((fk + eps) * (fq.cumsum(-2) + eps)).sum(-1) / count
        check_flows(incoming, outgoing)
        sink = ((fq + eps) * ((fk / outgoing[..., None]).cumsum(-2) + eps)).sum(-1) / count
        source = ((fk + eps) * ((fq / incoming[..., None]).cumsum(-2) + eps)).sum(-1) / count
        if clamp is not None:
            source = source.clamp(-clamp, clamp)
        share = torch.exp(source - torch.logcumsumexp(source, dim=-1)) * count
        alloc = torch.sigmoid(sink)
        values = v * share[..., None] if competition else v
        state = (fk[..., :, :, None] * values[..., :, None, :]).cumsum(-3)
        out = torch.einsum("...td,...tdc->...tc", fq, state) / (incoming * count)[..., None]
    else:
        incoming = ((fq + eps) * (fk.sum(-2, keepdim=True) + eps)).sum(-1)
        outgoing = ((fk + eps) * (fq.sum(-2, keepdim=True) + eps)).sum(-1)
        check_flows(incoming, outgoing)
        sink = ((fq + eps) * ((fk / outgoing[..., None]).sum(-2, keepdim=True) + eps)).sum(-1)
        source = ((fk + eps) * ((fq / incoming[..., None]).sum(-2, keepdim=True) + eps)).sum(-1)
        if clamp is not None:
            source = source.clamp(-clamp, clamp)
        alloc = torch.sigmoid(sink * (n / m))
        values = v * (torch.softmax(source, dim=-1) * m)[..., None] if competition else v
        out = (fq / incoming[..., None]) @ (fk.transpose(-1, -2) @ values)
    return out * alloc[..., None] if allocation else out
