"""Brute-force loops: every operator written as plainly as possible, one scalar at a time.

These are a second, independent form of each reference operator, used on tiny inputs (n <= 8) to
test the vectorised references. They handle one (batch, head) slice of 2-d arrays; the callers loop
over leading dims with :func:`over_batch`. No masking tricks: visibility is an explicit ``if``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def over_batch(fn: Callable[..., np.ndarray], *arrays: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Apply a 2-d brute-force ``fn`` to every leading index of equally-shaped batch dims."""
    lead = arrays[0].shape[:-2]
    if not lead:
        return fn(*arrays, **kwargs)
    outs = [fn(*(a[idx] for a in arrays), **kwargs) for idx in np.ndindex(*lead)]
    return np.stack(outs).reshape(*lead, *outs[0].shape)


def _visible(i: int, j: int, n: int, m: int, causal: bool, mask: np.ndarray | None) -> bool:
    if causal and j > i + m - n:
        return False
    return not (mask is not None and not mask[i, j])


def softmax_attention_loop(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    causal: bool = False,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    n, m = q.shape[0], k.shape[0]
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        logits = {}
        for j in range(m):
            if _visible(i, j, n, m, causal, mask):
                logits[j] = scale * sum(q[i, t] * k[j, t] for t in range(q.shape[1]))
        if not logits:
            continue
        top = max(logits.values())
        weights = {j: math.exp(s - top) for j, s in logits.items()}
        total = sum(weights.values())
        for c in range(v.shape[1]):
            out[i, c] = sum(w * v[j, c] for j, w in weights.items()) / total
    return out


def linear_attention_loop(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False, eps: float = 1e-6
) -> np.ndarray:
    def phi(x: float) -> float:
        return x + 1.0 if x > 0 else math.exp(x)

    n, m = q.shape[0], k.shape[0]
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        num = [0.0] * v.shape[1]
        den = 0.0
        for j in range(m):
            if causal and j > i:
                continue
            w = sum(phi(q[i, t]) * phi(k[j, t]) for t in range(q.shape[1]))
            den += w
            for c in range(v.shape[1]):
                num[c] += w * v[j, c]
        out[i] = [x / (den + eps) for x in num]
    return out


def laser_attention_loop(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    causal: bool = False,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    weights = softmax_attention_loop(q, k, np.eye(k.shape[0]), scale, causal, mask)
    out = np.zeros((q.shape[0], v.shape[1]))
    for i in range(q.shape[0]):
        if weights[i].sum() == 0:
            continue
        for c in range(v.shape[1]):
            out[i, c] = math.log(sum(weights[i, j] * math.exp(v[j, c]) for j in range(k.shape[0])))
    return out


def tensor_attention_loop(
    q: np.ndarray,
    k1: np.ndarray,
    k2: np.ndarray,
    v1: np.ndarray,
    v2: np.ndarray,
    scale: float,
    visible: Callable[[int, int, int], bool] | None = None,
) -> np.ndarray:
    n, d = q.shape
    out = np.zeros((n, v1.shape[1]))
    for i in range(n):
        logits = {}
        for j in range(k1.shape[0]):
            for kk in range(k2.shape[0]):
                if visible is None or visible(i, j, kk):
                    logits[j, kk] = scale * sum(q[i, t] * k1[j, t] * k2[kk, t] for t in range(d))
        if not logits:
            continue
        top = max(logits.values())
        weights = {jk: math.exp(s - top) for jk, s in logits.items()}
        total = sum(weights.values())
        for (j, kk), w in weights.items():
            out[i] += (w / total) * v1[j] * v2[kk]
    return out


def hamming_attention_loop(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, causal: bool = False
) -> np.ndarray:
    n, m, d = q.shape[0], k.shape[0], q.shape[1]
    logits = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            distance = sum((q[i, t] >= 0) != (k[j, t] >= 0) for t in range(d))
            logits[i, j] = scale * (d - 2 * distance)
    # the scores are now plain numbers: attention over them with an identity "query"
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        visible = [j for j in range(m) if not (causal and j > i + m - n)]
        if not visible:
            continue
        top = max(logits[i, j] for j in visible)
        weights = {j: math.exp(logits[i, j] - top) for j in visible}
        total = sum(weights.values())
        for j, w in weights.items():
            out[i] += (w / total) * v[j]
    return out


def interaction_loop(x: np.ndarray, alpha: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``y_i = Σ_j Σ_h α^h_ij U_h x_j`` with column vectors, one entry at a time."""
    n, dim = x.shape
    y = np.zeros((n, dim))
    for i in range(n):
        for j in range(n):
            for h in range(u.shape[0]):
                for a in range(dim):
                    y[i, a] += alpha[h, i, j] * sum(u[h, a, b] * x[j, b] for b in range(dim))
    return y
