"""Differential attention, the DIFF Transformer core.

Source: Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258). Only the operator
``softmax(Q1 K1ᵀ)V − λ softmax(Q2 K2ᵀ)V`` lives here; the headwise RMSNorm, the ``(1 − λ_init)``
factor and the λ re-parameterisation belong to a module built on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import as_float_array, check_last_dim, check_same_length


def _check_lambda(lam: Any) -> np.ndarray | float:
    if isinstance(lam, (bool, np.bool_)) or lam is None:
        raise TypeError(f"lam: expected a float or a float array broadcastable to (..., n, 1), got {lam!r}")
    if isinstance(lam, (int, float, np.number)):
        value = float(lam)
        if not np.isfinite(value):
            raise ValueError(f"lam: expected a finite float, got {lam!r}")
        return value
    return as_float_array("lam", lam, min_ndim=0)


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
) -> np.ndarray:
    """Differential attention ``O = softmax(σ Q1 K1ᵀ + M) V − λ · softmax(σ Q2 K2ᵀ + M) V``.

    Args:
        q1, q2: ``(..., H, n, d)``; k1, k2: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``
            (DIFF v1 uses ``d_v = 2d``).
        lam: λ, a float (v1: one scalar per layer) or an array broadcastable to ``(..., H, n, 1)``
            (v2: token- and head-dependent).
        scale: σ, default ``d ** -0.5``. causal, mask: as :func:`softmax_attention`.

    Returns:
        ``(..., H, n, d_v)``; the combined weights of each row sum to ``1 − λ``.
    """
    q1, k1, q2, k2, v = (as_float_array(name, a) for name, a in zip(("q1", "k1", "q2", "k2", "v"), (q1, k1, q2, k2, v)))
    for name, arr in (("k1", k1), ("q2", q2), ("k2", k2)):
        check_last_dim(name, arr, q1.shape[-1], "d, the last axis of q1")
    check_same_length(("k1", "k2", "v"), (k1, k2, v))
    lam_value = _check_lambda(lam)
    first = softmax_attention(q1, k1, v, scale=scale, causal=causal, mask=mask)
    second = softmax_attention(q2, k2, v, scale=scale, causal=causal, mask=mask)
    if isinstance(lam_value, np.ndarray):
        try:
            np.broadcast_shapes(lam_value.shape, first.shape)
        except ValueError:
            raise ValueError(
                f"lam: expected a float or an array broadcastable to {(*first.shape[:-1], 1)}, "
                f"got shape {lam_value.shape}"
            ) from None
    return first - lam_value * second
