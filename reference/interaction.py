"""Multi-head attention as a factorized interaction operator (Ghodsi 2025, arXiv 2512.15115).

Source: Ghodsi, "A Unified Factorized Framework for attention and state-space models" (arXiv
2512.15115). A sequence map ``y_i = Σ_j W_ij(X) x_j`` is *factorized* with ``H`` heads when
``W_ij(X) = Σ_h α^h_ij(X) U_h``: only scalar coefficients depend on the input, and the value maps
``U_h`` are shared. Multi-head softmax attention is the instance ``α^h = softmax(σ X W_Q^h (X W_K^h)ᵀ)``,
``U_h = (W_V^h W_O^h)ᵀ``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.reference.softmax import attention_weights
from attnlab.validation import (
    as_float_array,
    broadcast_batch,
    check_magnitude,
    checked_call,
    max_abs,
    overflow_checked,
)

Coefficients = np.ndarray | Callable[[np.ndarray], np.ndarray]


def check_interaction_magnitudes(
    x: Any, coeffs: Any, dense: Any, maps: tuple, magnitude: Callable[[Any], float] = max_abs
) -> None:
    """Reject inputs whose output ``|y| <= H·n·max|α|·max|x|·D·max|U|`` can overflow (``einsum`` sets no
    floating-point flag). Shared by the reference and the fast paths (``magnitude``: ``max |·|``)."""
    heads, n, d_model = coeffs.shape[-3], x.shape[-2], x.shape[-1]
    if dense is not None:
        maps_bound = magnitude(dense) * d_model
    else:
        maps_bound = magnitude(maps[0]) * magnitude(maps[1]) * d_model * maps[0].shape[-1]
    bound = heads * n * magnitude(coeffs) * magnitude(x) * maps_bound
    check_magnitude(bound, x.dtype, "an output Σ_h α_h X U_hᵀ")


def check_value_maps_given(u: Any, w_v: Any, w_o: Any) -> None:
    """Exactly one of: ``u``, or both ``w_v`` and ``w_o``."""
    if (u is None) == (w_v is None and w_o is None) or (u is None and (w_v is None or w_o is None)):
        raise ValueError(
            "u / w_v, w_o: pass either u (H, D, D) or both w_v (H, D, d_v) and w_o (H, d_v, D), not both, "
            f"got u={type(u).__name__}, w_v={type(w_v).__name__}, w_o={type(w_o).__name__}"
        )


def _value_maps(u: Any, w_v: Any, w_o: Any, d_model: int) -> tuple[np.ndarray | None, tuple]:
    check_value_maps_given(u, w_v, w_o)
    if u is not None:
        u = as_float_array("u", u, ndim=3, layout="(H, D, D)")
        if u.shape[1:] != (d_model, d_model):
            raise ValueError(f"u: expected shape (H, {d_model}, {d_model}), got {u.shape}")
        return u, ()
    w_v = as_float_array("w_v", w_v, ndim=3, layout="(H, D, d_v)")
    w_o = as_float_array("w_o", w_o, ndim=3, layout="(H, d_v, D)")
    if w_v.shape[1] != d_model:
        raise ValueError(f"w_v: expected shape (H, {d_model}, d_v), got {w_v.shape}")
    if w_o.shape != (w_v.shape[0], w_v.shape[2], d_model):
        raise ValueError(f"w_o: expected shape ({w_v.shape[0]}, {w_v.shape[2]}, {d_model}), got {w_o.shape}")
    return None, (w_v, w_o)


@overflow_checked
def factorized_interaction(
    x: Any,
    alpha: Coefficients,
    u: Any = None,
    *,
    w_v: Any = None,
    w_o: Any = None,
) -> np.ndarray:
    """Factorized multi-head interaction ``y_i = Σ_j Σ_h α^h_ij U_h x_j``.

    In row layout ``Y = Σ_h (α_h X) U_hᵀ``; with low-rank maps ``U_h = (W_V^h W_O^h)ᵀ`` this is
    ``Y = Σ_h α_h X W_V^h W_O^h``, the summation form of multi-head attention.

    Args:
        x: ``(..., n, D)``.
        alpha: coefficients ``(..., H, n, n)`` or a callable ``x -> (..., H, n, n)``; any real
            values (not necessarily softmax-normalised or causal).
        u: dense value maps ``(H, D, D)``; or pass ``w_v (H, D, d_v)`` and ``w_o (H, d_v, D)``.

    Returns:
        ``(..., n, D)``.
    """
    x, coeffs, dense, low_rank = check_interaction(x, alpha, u, w_v, w_o)
    mixed = coeffs @ x[..., None, :, :]  # (..., H, n, D)
    if dense is not None:
        per_head = np.einsum("...hnd,hed->...hne", mixed, dense)
    else:
        w_v, w_o = low_rank
        per_head = mixed @ w_v @ w_o
    return per_head.sum(axis=-3)


def check_interaction(
    x: Any, alpha: Any, u: Any, w_v: Any, w_o: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray]]:
    """Validated ``x``, coefficients ``α (..., H, n, n)`` (from the callable where one is given), and
    either the dense maps ``U`` (with ``(W_V, W_O)`` empty) or ``U = None`` and ``(W_V, W_O)``."""
    x = as_float_array("x", x)
    n, d_model = x.shape[-2:]
    coeffs = checked_call("alpha", alpha, x) if callable(alpha) else alpha
    coeffs = as_float_array("alpha", coeffs, min_ndim=3, layout=f"(..., H, {n}, {n})")
    if coeffs.shape[-2:] != (n, n):
        raise ValueError(f"alpha: expected shape (..., H, {n}, {n}), got {coeffs.shape}")
    broadcast_batch(("x", "alpha"), (x, coeffs[..., 0, :, :]))
    dense, maps = _value_maps(u, w_v, w_o, d_model)
    heads = dense.shape[0] if dense is not None else maps[0].shape[0]
    if coeffs.shape[-3] != heads:
        raise ValueError(f"alpha: expected {heads} heads on axis -3 (one per value map), got {coeffs.shape}")
    check_interaction_magnitudes(x, coeffs, dense, maps)
    return x, coeffs, dense, maps


def interaction_matrices(alpha: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The per-pair maps ``W_ij = Σ_h α^h_ij U_h`` as an ``(..., n, n, D, D)`` array."""
    return np.einsum("...hij,hde->...ijde", alpha, u)


def softmax_coefficients(x: Any, w_q: Any, w_k: Any, *, scale: float | None = None, causal: bool = False) -> np.ndarray:
    """``α^h = softmax(σ (X W_Q^h)(X W_K^h)ᵀ)`` for ``w_q, w_k`` of shape ``(H, D, d_k)``."""
    x = as_float_array("x", x)
    w_q = as_float_array("w_q", w_q, ndim=3, layout="(H, D, d_k)")
    w_k = as_float_array("w_k", w_k, ndim=3, layout="(H, D, d_k)")
    q = np.einsum("...nd,hdk->...hnk", x, w_q)
    k = np.einsum("...nd,hdk->...hnk", x, w_k)
    return attention_weights(q, k, scale=scale, causal=causal)
