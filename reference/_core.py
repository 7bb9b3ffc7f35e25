"""Numerically stable masked softmax / log-sum-exp used by every reference operator.

Policy for a row with no visible key: weights 0, output 0, ``lse = -inf``.
"""

from __future__ import annotations

import numpy as np


def masked_logsumexp(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log Σ_{j allowed} exp(x_j)`` along ``axis``; ``-inf`` where nothing is allowed."""
    allowed = np.broadcast_to(allowed, x.shape)
    masked = np.where(allowed, x, -np.inf)
    peak = np.max(masked, axis=axis, keepdims=True)
    finite_peak = np.where(np.isfinite(peak), peak, 0.0)
    total = np.sum(np.where(allowed, np.exp(masked - finite_peak), 0.0), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = np.log(total) + finite_peak
    return np.squeeze(lse, axis=axis)


def masked_softmax(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax over the allowed entries of ``axis``: ``a_j = exp(x_j - μ) / Σ exp(x_k - μ)``.

    Rows with no allowed entry return zeros (never NaN).
    """
    allowed = np.broadcast_to(allowed, x.shape)
    masked = np.where(allowed, x, -np.inf)
    peak = np.max(masked, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    p = np.where(allowed, np.exp(masked - peak), 0.0)
    total = np.sum(p, axis=axis, keepdims=True)
    return p / np.where(total > 0.0, total, 1.0)
