"""Differential attention (DIFF Transformer core) on two SDPA calls.

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258).
``O = softmax(σQ1K1ᵀ + M)V − λ softmax(σQ2K2ᵀ + M)V``; the visibility mask is built once and shared.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch._common import check_same_length, check_scale
from attnlab.fastpath.torch.softmax import check_qkv, sdpa, visibility


def as_lambda(lam: Any, like: torch.Tensor) -> float | torch.Tensor:
    """λ as a float (DIFF v1) or a tensor broadcastable to ``(..., H, n, 1)`` (v2), on ``like``'s device."""
    if lam is None or isinstance(lam, (bool, np.bool_)):
        raise TypeError(f"lam: expected a float or a float array broadcastable to (..., n, 1), got {lam!r}")
    if isinstance(lam, (int, float, np.number)):
        value = float(lam)
        if not math.isfinite(value):
            raise ValueError(f"lam: expected a finite float, got {lam!r}")
        return value
    if isinstance(lam, torch.Tensor):
        tensor = lam.to(device=like.device, dtype=like.dtype)
    else:
        arr = np.asarray(lam)
        if arr.dtype.kind != "f":
            raise TypeError(f"lam: expected a float or a float array, got dtype {arr.dtype}")
        tensor = torch.as_tensor(arr, device=like.device).to(like.dtype)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("lam: contains NaN or Inf; every entry must be finite")
    try:
        shape = torch.broadcast_shapes(tensor.shape, like.shape)
    except RuntimeError:
        shape = None
    if shape != like.shape:
        raise ValueError(
            f"lam: expected a float or an array broadcastable to {(*like.shape[:-1], 1)}, "
            f"got shape {tuple(tensor.shape)}"
        )
    return tensor


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
    q2, k2, _ = check_qkv(q2, k2, v, ("q2", "k2", "v"))
    if q2.shape[-1] != q1.shape[-1]:
        raise ValueError(
            f"q2: expected last axis of size {q1.shape[-1]} (d, the last axis of q1), got shape {tuple(q2.shape)}"
        )
    check_same_length(("k1", "k2", "v"), (k1, k2, v))
    sigma = check_scale(scale, q1.shape[-1] ** -0.5)
    allowed, square_causal = visibility(q1, k1, causal=causal, mask=mask)
    first = sdpa(q1, k1, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    second = sdpa(q2, k2, v, scale=sigma, allowed=allowed, causal_square=square_causal)
    return first - as_lambda(lam, first) * second
