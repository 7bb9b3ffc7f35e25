"""Differential attention (DIFF Transformer core) on two SDPA calls.

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258).
``O = softmax(σQ1K1ᵀ + M)V − λ softmax(σQ2K2ᵀ + M)V``; the visibility mask is built once and shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch._common import (
    as_option_tensor,
    broadcast_lead,
    check_real,
    check_same_length,
    check_scale,
    torch_checked,
)
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility
from attnlab.validation import check_broadcast_to, is_real_number

_LAM = "a finite float or a float array broadcastable to (..., H, n, 1)"


def as_lambda(lam: Any, like: torch.Tensor) -> float | torch.Tensor:
    """λ as a float (DIFF v1) or a tensor broadcastable to ``(..., H, n, 1)`` (v2), on ``like``'s device
    and in its dtype. Integer, boolean and complex λ are rejected, as on the NumPy paths."""
    if lam is None or isinstance(lam, (bool, np.bool_, complex)) or is_real_number(lam):
        return check_real("lam", lam, what=_LAM)
    tensor = as_option_tensor("lam", lam, like)
    check_broadcast_to("lam", tuple(tensor.shape), tuple(like.shape), "a float or an array")
    return tensor


@torch_checked
def differential_attention(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """Differential attention ``O = softmax(σ Q1 K1ᵀ + M) V − λ softmax(σ Q2 K2ᵀ + M) V``.

    Args:
        q1, q2: ``(..., H, n, d)``; k1, k2: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``.
        lam: float, or a tensor/array broadcastable to ``(..., H, n, 1)``.
        scale, causal, mask: as :func:`attnlab.fastpath.torch.softmax.softmax_attention`.

    Returns:
        ``(..., H, n, d_v)``. Differentiable (also in ``lam`` when it is a tensor).
    """
    q1, k1, v = check_qkv(q1, k1, v, ("q1", "k1", "v"))
    # q2's width is q1's (as in the reference): checked before k2 is compared with q2, which would blame k2
    if torch.is_tensor(q2) and q2.ndim >= 2 and q2.shape[-1] != q1.shape[-1]:
        raise ValueError(
            f"q2: expected last axis of size {q1.shape[-1]} (d, the last axis of q1), got shape {tuple(q2.shape)}"
        )
    q2, k2, _ = check_qkv(q2, k2, v, ("q2", "k2", "v"))
    if q2.dtype != q1.dtype or q2.device != q1.device:
        raise TypeError(
            f"q1/q2: expected one dtype and one device, got {q1.dtype} on {q1.device} and {q2.dtype} on {q2.device}"
        )
    check_same_length(("k1", "k2", "v"), (k1, k2, v))
    check_same_length(("q1", "q2"), (q1, q2))
    broadcast_lead(("q1", "q2"), (q1, q2))
    if not (lam is None or isinstance(lam, (bool, np.bool_, complex)) or is_real_number(lam)):
        as_option_tensor("lam", lam, q1)  # its type, dtype and values; the shape once the output's is known
    else:
        check_real("lam", lam, what=_LAM)
    sigma = check_scale(scale, q1.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q1, k1, causal=causal, mask=mask)
    first = sdpa(q1, k1, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    second = sdpa(q2, k2, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    lam_value = as_lambda(lam, first.expand(torch.broadcast_shapes(first.shape, second.shape)))
    return first - lam_value * second
