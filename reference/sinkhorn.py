"""Doubly stochastic attention by entropic optimal transport (Sinkhorn), Geometric Attention's plan anchor.

Sources: Freytes 2026, "Geometric Attention: A Regime-Explicit Operator Semantics for Transformer
Attention", arXiv 2601.11618 (abstract: plan-based anchors such as entropic OT/Sinkhorn are a regime of
the operator; quotienting unary row/column score fields); the iteration is the Sinkformer construction
of Sander et al. 2022, "Sinkformers: Transformers with Doubly Stochastic Attention", arXiv 2110.11773
(Sinkhorn's algorithm on ``exp(S)`` in place of the row-wise SoftMax), in log domain as in Peyré &
Cuturi 2019, "Computational Optimal Transport", arXiv 1803.00567, §4.4.

Scores ``S = σ Q Kᵀ`` (``n × m``), temperature ``ε``, marginals ``r`` (rows) and ``c`` (columns), both
normalised to sum 1 (default uniform). The plan is ``P = diag(e^f) e^{S/ε} diag(e^g)``; log-domain
Sinkhorn alternates

    f ← log r − LSE_j(S_ij/ε + g_j)   (row step),     g ← log c − LSE_i(S_ij/ε + f_i)   (column step),

starting from ``g = 0`` with a row step, then ``iterations`` times a column step followed by a row
step (``tol > 0`` stops early once the column marginals are met to ``tol``). Attention is the
row-anchored plan ``A = diag(r)^{-1} P`` and ``O = A V``: rows of ``A`` always sum to 1; at convergence
its columns sum to ``c_j / r`` (1 for square uniform marginals: doubly stochastic). With zero
iterations ``A = softmax_row(S/ε)``.

Masks restrict the support: masked pairs carry no mass, rows and columns without support are left out
of the marginal constraints (their potentials stay 0). A causal mask is accepted but the column
constraints couple all rows, so the operator is not causal in the G3 sense; the square causal support
admits only the identity as a doubly stochastic plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import as_float_array, check_scale, overflow_checked

DEFAULT_ITERATIONS = 3


#: Most Sinkhorn sweeps a call runs (each is O(n·m); past this a call is a hang, not a computation).
MAX_ITERATIONS = 10**6


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a non-negative int, got {type(value).__name__}")
    if not 0 <= int(value) <= MAX_ITERATIONS:
        raise ValueError(f"{name}: expected a non-negative int of at most {MAX_ITERATIONS}, got {value}")
    return int(value)


def _check_tol(tol: Any) -> float:
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.number)):
        raise TypeError(f"tol: expected a non-negative float, got {type(tol).__name__}")
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol: expected a non-negative finite float, got {tol!r}")
    return float(tol)


#: Finest spacing (in nats) of the floats near the largest logit that the log-domain iterations tolerate:
#: each step forms ``L_ij + f_i`` with ``f_i ≈ −L_ij``, so what survives of the logits is their spacing.
LOGIT_SPACING = 2.0**-4


def check_logit_resolution(largest: float, dtype: Any) -> None:
    """Refuse logits ``σ q·k / ε`` so large that their float spacing exceeds :data:`LOGIT_SPACING`: beyond
    it the transport plan is decided by rounding, not by the inputs."""
    limit = LOGIT_SPACING / float(np.finfo(dtype).eps)
    if not largest < limit:
        raise ValueError(
            f"q/k: the logits σ q·k / ε reach {largest:.3g}, beyond {limit:.3g}, the largest whose {np.dtype(dtype)} "
            "spacing Sinkhorn's log-domain iterations resolve (each step cancels L_ij against a potential of "
            "the same size); rescale q or k, or raise epsilon"
        )


def _marginal(name: str, given: Any, size: int, lead: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``log`` of a positive marginal of length ``size`` normalised to sum 1, broadcast to ``(*lead, size)``."""
    if given is None:
        return np.full((*lead, size), -np.log(size), dtype=dtype)
    arr = as_float_array(name, given, min_ndim=1)
    try:
        arr = np.broadcast_to(arr, (*lead, size))
    except ValueError:
        raise ValueError(
            f"{name}: expected positive weights broadcastable to {(*lead, size)}, got shape {arr.shape}"
        ) from None
    if np.any(arr <= 0):
        raise ValueError(f"{name}: expected strictly positive weights")
    return np.log(arr) - np.log(arr.sum(axis=-1, keepdims=True))


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - peak), axis=axis)) + np.squeeze(peak, axis)


def row_step(logits: np.ndarray, log_r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``f_i = log r_i − LSE_j(L_ij + g_j)``; 0 on rows without support."""
    total = _lse(logits + g[..., None, :], -1)
    return np.where(np.isfinite(total), log_r - np.where(np.isfinite(total), total, 0.0), 0.0)


def column_step(logits: np.ndarray, log_c: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``g_j = log c_j − LSE_i(L_ij + f_i)``; 0 on columns without support."""
    total = _lse(logits + f[..., :, None], -2)
    return np.where(np.isfinite(total), log_c - np.where(np.isfinite(total), total, 0.0), 0.0)


def sinkhorn_potentials(
    logits: np.ndarray, log_r: np.ndarray, log_c: np.ndarray, iterations: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-domain Sinkhorn on masked logits ``L = S/ε`` (``-inf`` off the support): ``(f, g)``."""
    g = np.zeros(log_c.shape, dtype=logits.dtype)
    f = row_step(logits, log_r, g)
    for _ in range(iterations):
        g = column_step(logits, log_c, f)
        f = row_step(logits, log_r, g)
        if tol > 0.0:
            plan = np.exp(logits + f[..., :, None] + g[..., None, :])
            supported = np.isfinite(_lse(logits, -2))
            gap = np.where(supported, np.abs(plan.sum(axis=-2) - np.exp(log_c)), 0.0)
            if float(np.max(gap, initial=0.0)) <= tol:
                break
    return f, g


@overflow_checked
def sinkhorn_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    epsilon: float = 1.0,
    iterations: int = DEFAULT_ITERATIONS,
    tol: float = 0.0,
    row_marginal: Any = None,
    col_marginal: Any = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Sinkhorn attention ``O = diag(r)^{-1} P V`` with ``P`` the entropic transport plan of ``σ QKᵀ / ε``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)`` (query head ``h``
            reads KV head ``h // (H / H_kv)``).
        scale: σ, default ``d_k ** -0.5``.
        epsilon: entropic temperature ε > 0 (the plan is sharper as ε → 0).
        iterations: column-then-row step pairs after the first row step (0: softmax of ``S/ε``).
        tol: stop early once every supported column marginal is met to ``tol`` (0: run them all).
        row_marginal, col_marginal: positive weights ``(..., n)`` / ``(..., m)``, normalised to sum 1;
            default uniform.
        causal: bottom-right causal support (key ``j`` for query ``i`` iff ``j <= i + m − n``).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; rows with no visible key are zero.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    eps = check_scale(epsilon, 1.0, name="epsilon")
    iterations = _check_count("iterations", iterations)
    tol = _check_tol(tol)
    lead, n, m = qa.shape[:-2], qa.shape[-2], ka.shape[-2]
    log_r = _marginal("row_marginal", row_marginal, n, lead, qa.dtype)
    log_c = _marginal("col_marginal", col_marginal, m, lead, qa.dtype)
    allowed = np.broadcast_to(allowed, (*lead, n, m))
    logits = np.where(allowed, (sigma / eps) * (qa @ np.swapaxes(ka, -1, -2)), -np.inf)
    check_logit_resolution(float(np.max(np.abs(logits), where=allowed, initial=0.0)), qa.dtype)
    f, g = sinkhorn_potentials(logits, log_r, log_c, iterations, tol)
    weights = np.exp(logits + (f - log_r)[..., :, None] + g[..., None, :])
    return weights @ va
