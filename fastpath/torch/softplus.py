"""LSSA / LSSAR in torch: softplus weights through their logarithm, then one masked softmax.

Source: Gao, Spratling & Gionfrida 2025 (arXiv 2501.13428, abstract); see
:mod:`attnlab.reference.softplus` for attnlab's reading. ``A = softplus(κs)/Σ softplus(κs)`` is evaluated as
``softmax(log softplus(κs))`` and ``A^p/ΣA^p`` as ``softmax(p · log softplus(κs))``, so neither underflow of
softplus at very negative logits nor overflow of ``A^p`` can produce 0/0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_bool,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    masked_softmax,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.softplus import DEFAULT_BASE_LENGTH, REWEIGHTS, check_power

#: Below this, ``log softplus(x) = x − e^x/2`` to double precision (the next term is ``5e^{2x}/24``).
TAIL = -30.0


def log_softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(log(1 + e^x))`` without underflow and with finite gradients everywhere.

    Three branches, each fed only inputs in its own range (so no branch's derivative is ever inf or NaN,
    which ``torch.where`` would turn into NaN gradients): ``x − e^x/2`` below ``TAIL``,
    ``x + log(log1p(e^x)/e^x)`` up to 0, ``log(x + log1p(e^{−x}))`` above.
    """
    tail = torch.where(x < TAIL, x, torch.full_like(x, TAIL))
    low = torch.where((x >= TAIL) & (x <= 0), x, torch.full_like(x, -1.0))
    high = torch.where(x > 0, x, torch.ones_like(x))
    y = torch.exp(low)
    small = low + torch.log(torch.log1p(y) / y)
    large = torch.log(high + torch.log1p(torch.exp(-high)))
    return torch.where(x < TAIL, tail - torch.exp(tail) / 2, torch.where(x <= 0, small, large))


@torch_checked
def softplus_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    length_scale: bool = True,
    base_length: int = DEFAULT_BASE_LENGTH,
    power: float | None = None,
    reweight: str = "power",
) -> torch.Tensor:
    """LSSA (``power=None``) or LSSAR, same call as the reference; differentiable, in the input dtype."""
    q, k, v = check_qkv(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    length_scale = check_bool("length_scale", length_scale)
    base_length = check_positive_int("base_length", base_length)
    if base_length < 2:
        raise ValueError(f"base_length: expected at least 2 (log N_0 is the denominator), got {base_length}")
    p = check_power(power)
    if reweight not in REWEIGHTS:
        raise ValueError(f"reweight: expected one of {REWEIGHTS}, got {reweight!r}")
    q, k, v = expand_kv_heads(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    allowed = allowed_mask(n, m, causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    if allowed is None:
        allowed = torch.ones(n, m, dtype=torch.bool, device=q.device)
    allowed = allowed.expand(*q.shape[:-2], n, m)
    counts = allowed.sum(-1, keepdim=True).to(q.dtype)
    kappa = torch.log(counts.clamp(min=1)) / math.log(base_length) if length_scale else torch.ones_like(counts)
    log_weights = log_softplus(kappa * (sigma * (q @ k.transpose(-1, -2))))
    if p is None:
        return masked_softmax(log_weights, allowed) @ v
    if reweight == "power":
        return masked_softmax(p * log_weights, allowed) @ v
    base = masked_softmax(log_weights, allowed)
    excess = counts * base - 1
    above = allowed & (excess > 0)
    sharpened = masked_softmax(p * torch.log(torch.where(above, excess, torch.ones_like(excess))), above)
    return torch.where(above.any(-1, keepdim=True), sharpened, base) @ v
