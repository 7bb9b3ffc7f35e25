"""Backward (VJP) of the factorized multi-head interaction operator, dense value maps.

Source: Ghodsi, "A Unified Factorized Framework for attention and state-space models" (arXiv
2512.15115). With ``Y = Σ_h M_h U_hᵀ`` and ``M_h = α_h X`` (row layout), ``G_h = dY U_h``:

    dα_h = G_h Xᵀ,   dX = Σ_h α_hᵀ G_h,   dU_h = Σ_batch dYᵀ M_h.

Every term is a batched matrix product with nothing element-wise to fuse, so the products go
straight to BLAS through ``numpy.matmul`` (no jitted loop would beat it); broadcast leading dims of
``x`` and ``alpha`` are summed back. Only the dense ``u (H, D, D)`` form and array coefficients are
differentiated; ``w_v``/``w_o`` or a callable ``alpha`` raise ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.backward._plumbing import sum_to_shape, upstream_gradient
from attnlab.validation import as_float_array, broadcast_batch, gradients_checked


@gradients_checked
def interaction_vjp(
    grad_out: Any,
    x: Any,
    alpha: Any,
    u: Any = None,
    *,
    w_v: Any = None,
    w_o: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.interaction.factorized_interaction`.

    Args:
        grad_out: ``∂loss/∂Y``, shape ``(..., n, D)`` (the broadcast of ``x`` and ``alpha``'s batch).
        x: ``(..., n, D)``; alpha: ``(..., H, n, n)`` array; u: ``(H, D, D)``.

    Returns:
        ``(dx, dalpha, du)`` shaped and typed like ``x``, ``alpha``, ``u``.
    """
    if w_v is not None or w_o is not None or u is None:
        raise ValueError("u: the VJP covers the dense form only; pass u (H, D, D) and no w_v/w_o")
    if callable(alpha):
        raise ValueError("alpha: the VJP needs an array of coefficients (..., H, n, n), not a callable")
    dtype = fast_dtype(x, alpha, u)
    (xa,) = float_arrays(("x",), (x,), dtype)
    n, d_model = xa.shape[-2:]
    with precision(dtype):
        coeffs = as_float_array("alpha", alpha, min_ndim=3, layout=f"(..., H, {n}, {n})")
        ua = as_float_array("u", u, ndim=3, layout="(H, D, D)")
    if coeffs.shape[-2:] != (n, n):
        raise ValueError(f"alpha: expected shape (..., H, {n}, {n}), got {coeffs.shape}")
    if ua.shape[1:] != (d_model, d_model):
        raise ValueError(f"u: expected shape (H, {d_model}, {d_model}), got {ua.shape}")
    heads = ua.shape[0]
    if coeffs.shape[-3] != heads:
        raise ValueError(f"alpha: expected {heads} heads on axis -3 (one per value map), got {coeffs.shape}")
    lead = broadcast_batch(("x", "alpha"), (xa, np.empty((*coeffs.shape[:-3], 1, 1))))
    grad = upstream_gradient(grad_out, (*lead, n, d_model), dtype)
    x_heads = xa[..., None, :, :]  # (..., 1, n, D)
    grad_heads = grad[..., None, :, :]
    g = grad_heads @ ua  # (..., H, n, D): dM_h = dY U_h
    d_alpha = g @ np.swapaxes(x_heads, -1, -2)
    d_x = (np.swapaxes(coeffs, -1, -2) @ g).sum(axis=-3)
    mixed = coeffs @ x_heads  # M_h = α_h X
    d_u = (np.swapaxes(grad_heads, -1, -2) @ mixed).reshape(-1, heads, d_model, d_model).sum(axis=0)
    return (
        sum_to_shape(d_x, xa.shape).astype(dtype, copy=False),
        sum_to_shape(d_alpha, coeffs.shape).astype(dtype, copy=False),
        np.ascontiguousarray(d_u, dtype=dtype),
    )
