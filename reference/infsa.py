"""Infinite Self-Attention (InfSA): attention as a discounted diffusion on the token graph, summed to all hops.

Source: Roffo 2026, "Infinite Self-Attention" (arXiv 2603.00175, abstract: "accumulating multi-hop interactions
through a discounted Neumann series over attention matrices"); released code giorgioroffo/infinite-self-attention
(``infsa/core.py``). The token graph is the Frobenius-normalised ReLU affinity

    Â = ReLU(σ Q Kᵀ) / (‖ReLU(σ Q Kᵀ)‖_F + ε),     σ = 1/d by default (the code's ``(q/√d)·(k/√d)``),

so ``‖Â‖₂ <= ‖Â‖_F <= 1`` and the series converges for ``0 < ρ < 1``. Modes:

* ``"neumann"`` (the paper's operator): ``Y = Σ_{t>=1} ρ^t Â^t V = ((I − ρÂ)⁻¹ − I) V``, evaluated by solving
  ``(I − ρÂ) Y = ρ Â V`` (needs ``n = m``: one token set);
* ``"series"``: the same sum truncated after ``terms`` hops (its error is at most ``ρ^{T+1}/(1 − ρ) ‖V‖_F``);
* ``"pure"`` (the code's ``pure_infsa``): one hop, ``ρ Â V``; the code gets further hops from stacked layers;
* ``"pooled"`` (the code's ``linear_infsa``, Linear-InfSA): energies ``e_t = ‖√σ q_t‖``,
  ``q̄ = Σ_t (e_t/(Σe + ε)) √σ q_t``, ``a = ReLU(√σ K q̄)``, ``a ← a/(Σa + ε)``, and every position returns the
  same pooled ``ρ Σ_j a_j v_j``.

The paper's Neumann series and the code's single hop differ; ``mode`` selects either. No causal form or mask:
the Frobenius normalisation couples every pair of the graph.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.validation import (
    as_float_array,
    check_last_dim,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)

MODES = ("neumann", "series", "pure", "pooled")
DEFAULT_RHO = 0.95
DEFAULT_EPS = 1e-6


def _positive(total: np.ndarray) -> np.ndarray:
    """A normaliser that is 0 only where everything it divides is 0 (``eps = 0``): those stay 0."""
    return np.where(total > 0, total, 1.0)


def affinity(q: np.ndarray, k: np.ndarray, sigma: float, eps: float) -> np.ndarray:
    """``Â = ReLU(σ Q Kᵀ) / (‖·‖_F + ε)`` per slice; an all-zero affinity stays zero."""
    raw = np.maximum(sigma * (q @ np.swapaxes(k, -1, -2)), 0.0)
    return raw / _positive(np.sqrt(np.sum(raw * raw, axis=(-2, -1), keepdims=True)) + eps)


def neumann(graph: np.ndarray, v: np.ndarray, rho: float) -> np.ndarray:
    """``((I − ρÂ)⁻¹ − I) V`` by solving ``(I − ρÂ) Y = ρ Â V``."""
    n = graph.shape[-1]
    return np.linalg.solve(np.eye(n, dtype=graph.dtype) - rho * graph, rho * (graph @ v))


def series(graph: np.ndarray, v: np.ndarray, rho: float, terms: int) -> np.ndarray:
    """``Σ_{t=1}^{T} ρ^t Â^t V`` by ``T`` products."""
    hop, total = v, np.zeros_like(v)
    for _ in range(terms):
        hop = rho * (graph @ hop)
        total = total + hop
    return total


def pooled(q: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, rho: float, eps: float) -> np.ndarray:
    """Linear-InfSA: one energy-pooled query, one ReLU attention over the keys, broadcast to every position."""
    root = math.sqrt(sigma)
    qs, ks = root * q, root * k
    energy = np.sqrt(np.sum(qs * qs, axis=-1))
    weights = energy / _positive(energy.sum(axis=-1, keepdims=True) + eps)
    summary = np.einsum("...n,...nd->...d", weights, qs)
    scores = np.maximum(np.einsum("...md,...d->...m", ks, summary), 0.0)
    scores = scores / _positive(scores.sum(axis=-1, keepdims=True) + eps)
    out = rho * np.einsum("...m,...mc->...c", scores, v)
    return np.broadcast_to(out[..., None, :], (*v.shape[:-2], q.shape[-2], v.shape[-1])).copy()


#: Most hops a ``mode="series"`` call sums (ρ^t has long underflowed; a larger count is a hang, not a sum).
MAX_TERMS = 10**5


def check_options(rho: Any, eps: Any, mode: Any, terms: Any) -> tuple[float, float, str, int]:
    """Validated ``(ρ, ε, mode, T)``; ``T = 0`` outside ``mode="series"``."""
    if isinstance(rho, (bool, np.bool_)) or not isinstance(rho, (int, float, np.number)):
        raise TypeError(f"rho: expected a float in (0, 1), got {type(rho).__name__}")
    if not (0.0 < float(rho) < 1.0):
        raise ValueError(f"rho: expected a float in (0, 1) (the series converges for ρ‖Â‖ < 1), got {rho!r}")
    if (
        isinstance(eps, (bool, np.bool_))
        or not isinstance(eps, (int, float, np.number))
        or not (np.isfinite(eps) and eps >= 0)
    ):
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "series":
        count = check_positive_int("terms", terms)
        if count > MAX_TERMS:
            raise ValueError(f"terms: expected a positive int of at most {MAX_TERMS} (hops of ρ^t), got {terms!r}")
        return float(rho), float(eps), str(mode), count
    if terms is not None:
        raise ValueError(f"terms: only mode='series' takes a number of terms, got terms={terms!r} with mode={mode!r}")
    return float(rho), float(eps), str(mode), 0


@overflow_checked
def infsa_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    rho: float = DEFAULT_RHO,
    mode: str = "neumann",
    terms: int | None = None,
    scale: float | None = None,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Infinite self-attention ``Y = ((I − ρÂ)⁻¹ − I) V`` (or its truncations and the code's variants).

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv`` divides ``H``.
        rho: discount ``ρ ∈ (0, 1)`` (0.95 in the released code).
        mode: ``"neumann"``, ``"series"``, ``"pure"`` or ``"pooled"`` (see the module docstring).
        terms: number of hops ``T`` for ``mode="series"``.
        scale: σ of the affinity ``ReLU(σ QKᵀ)``, default ``1/d_k``.
        eps: added to the Frobenius norm (and the pooled mode's sums), 1e-6 as in the code.

    Returns:
        ``(..., H, n, d_v)``.
    """
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, 1.0 / q.shape[-1])
    rho, eps, mode, terms = check_options(rho, eps, mode, terms)
    if mode == "pooled":
        return pooled(q, k, v, sigma, rho, eps)
    graph = affinity(q, k, sigma, eps)
    if mode == "pure":
        return rho * (graph @ v)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: mode={mode!r} diffuses on one token graph and needs n == m, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    if mode == "series":
        return series(graph, v, rho, terms)
    return neumann(graph, v, rho)
