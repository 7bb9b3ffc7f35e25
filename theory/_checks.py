"""Small float64 numeric helpers shared by the theory claim families.

Everything here is deterministic given its inputs (random draws take an explicit seed) so a claim's
evidence line is the same on every rerun.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rng_for(seed: int) -> np.random.Generator:
    """A NumPy generator for ``seed`` (one per check, so checks are independent of run order)."""
    return np.random.default_rng(seed)


def stable_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``softmax(z) = exp(z − max z) / Σ exp(z − max z)`` along ``axis`` (float64)."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log softmax(z)`` without forming the probabilities (exact for very negative entries)."""
    z = np.asarray(z, dtype=np.float64)
    peak = np.max(z, axis=axis, keepdims=True)
    return z - peak - np.log(np.sum(np.exp(z - peak), axis=axis, keepdims=True))


def softmax_jacobian(p: np.ndarray) -> np.ndarray:
    """The softmax Jacobian ``J = diag(p) − p pᵀ`` for a probability vector ``p`` of shape ``(n,)``."""
    p = np.asarray(p, dtype=np.float64)
    return np.diag(p) - np.outer(p, p)


def operator_norm(matrix: np.ndarray, order: float) -> float:
    """Induced ``ℓ_order → ℓ_order`` norm for ``order`` in {1, 2, inf}."""
    if order == 1:
        return float(np.max(np.sum(np.abs(matrix), axis=0)))
    if order == 2:
        return float(np.linalg.norm(matrix, 2))
    if order == np.inf:
        return float(np.max(np.sum(np.abs(matrix), axis=1)))
    raise ValueError(f"order: expected 1, 2 or inf, got {order!r}")


def shannon_entropy(p: np.ndarray) -> float:
    """``H(p) = −Σ p_i log p_i`` in nats (terms with ``p_i = 0`` contribute 0)."""
    p = np.asarray(p, dtype=np.float64)
    positive = p[p > 0]
    return float(-np.sum(positive * np.log(positive)))


def central_difference_jacobian(
    func: Callable[[np.ndarray], np.ndarray], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Jacobian ``∂func(x)/∂x`` by central differences, shape ``(*func(x).shape, *x.shape)``."""
    x = np.asarray(x, dtype=np.float64)
    base = np.asarray(func(x))
    jac = np.empty(base.shape + x.shape)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        jac[(..., *index)] = (np.asarray(func(x + step)) - np.asarray(func(x - step))) / (2.0 * eps)
    return jac


def relative_error(measured: np.ndarray, expected: np.ndarray) -> float:
    """``max|measured − expected| / max(1, max|expected|)``: relative for large, absolute for small."""
    measured = np.asarray(measured, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    return float(np.max(np.abs(measured - expected))) / scale if expected.size else 0.0


def random_logits(rng: np.random.Generator, n: int, *, spread: float = 10.0) -> np.ndarray:
    """Logits for a sweep: Gaussian of a random scale in ``[0.01, spread]`` (log-uniform), so the
    draws cover diffuse (near-uniform) through saturated (near one-hot) softmax outputs."""
    scale = float(np.exp(rng.uniform(np.log(0.01), np.log(spread))))
    return rng.standard_normal(n) * scale
