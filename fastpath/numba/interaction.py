"""Numba fast path of the factorized multi-head interaction operator.

Source: Ghodsi, "A Unified Factorized Framework for attention and state-space models" (arXiv
2512.15115). ``Y = Σ_h α_h (X M_h)`` with ``M_h = U_hᵀ`` (dense) or ``W_V^h`` followed by ``W_O^h``
(low rank). Per batch slice the kernel forms ``Z_h = α_h (X M_h)`` head by head and accumulates
``Z_h`` (dense) or ``Z_h W_O^h`` (low rank); the ``n² D²`` pair maps ``W_ij`` are never built and the
low-rank path runs every ``n × n`` product at width ``d_v``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, batch_map, fast_dtype, numba_checked, poisoned, precision
from attnlab.reference.interaction import check_interaction
from attnlab.validation import broadcast_batch


@njit(cache=True, fastmath=False, parallel=True)
def _interaction_forward(x3, alpha4, x_map, alpha_map, maps_in, maps_out, low_rank, out):
    """``out[b] = Σ_h alpha[h] (x maps_in[h]) (maps_out[h] if low_rank)``."""
    slices = out.shape[0]
    heads = alpha4.shape[1]
    for b in prange(slices):
        x = x3[x_map[b]]
        total = np.zeros((out.shape[1], out.shape[2]), dtype=out.dtype)
        for h in range(heads):
            mixed = np.dot(alpha4[alpha_map[b], h], np.dot(x, maps_in[h]))
            if low_rank:
                total += np.dot(mixed, maps_out[h])
            else:
                total += mixed
        out[b] = total


@numba_checked
def factorized_interaction(
    x: Any,
    alpha: np.ndarray | Callable[[np.ndarray], np.ndarray],
    u: Any = None,
    *,
    w_v: Any = None,
    w_o: Any = None,
) -> np.ndarray:
    """Factorized multi-head interaction ``y_i = Σ_j Σ_h α^h_ij U_h x_j`` (row layout ``Y = Σ_h α_h X U_hᵀ``).

    Same call as :func:`attnlab.reference.factorized_interaction`: ``x (..., n, D)``, ``alpha``
    ``(..., H, n, n)`` or a callable of ``x``, and either ``u (H, D, D)`` or ``w_v (H, D, d_v)`` with
    ``w_o (H, d_v, D)``. Returns ``(..., n, D)`` in the float dtype of ``x`` and ``alpha``.
    """
    dtype = fast_dtype(x) if callable(alpha) else fast_dtype(x, alpha)
    with precision(dtype):
        xa, coeffs, dense, low_rank = check_interaction(x, alpha, u, w_v, w_o)
    n, d_model = xa.shape[-2:]
    heads = coeffs.shape[-3]
    if dense is not None:
        maps_in = np.ascontiguousarray(np.swapaxes(dense, -1, -2), dtype=dtype)
        maps_out = np.zeros((1, 1, 1), dtype=dtype)
    else:
        maps_in = np.ascontiguousarray(low_rank[0], dtype=dtype)
        maps_out = np.ascontiguousarray(low_rank[1], dtype=dtype)
    alpha_lead = coeffs.shape[:-3]
    lead = broadcast_batch(("x", "alpha"), (xa, np.empty((*alpha_lead, 1, 1))))
    alpha4 = np.require(coeffs.reshape(-1, heads, n, n), requirements=["C", "W"])
    out = poisoned((int(np.prod(lead)) if lead else 1, n, d_model), dtype)
    _interaction_forward(
        as_slices(xa),
        alpha4,
        batch_map(xa.shape[:-2], lead),
        batch_map(alpha_lead, lead),
        maps_in,
        maps_out,
        dense is None,
        out,
    )
    return out.reshape(*lead, n, d_model)
