"""Numba backward (VJP) of causal windowed 2-simplicial attention.

Source: Roy et al., "Fast and Simplex: 2-Simplicial Attention in Triton" (arXiv 2507.02754); Clift
et al. 2019. Query ``i`` sees the pairs ``j ∈ (i − w1, i]``, ``k ∈ (i − w2, i]``; the backward is the
pair-attention kernel of :mod:`.tensor` restricted to those contiguous ranges: per query it recomputes
the ``w1 × w2`` logits and softmax, so memory is ``O(w1·w2)`` and work ``O(n·w1·w2·(d + d_v))``.

With ``kv_bias`` the forward uses ``k2' = k2 + 1/d`` and ``v2' = v2 + 1``; a constant shift has unit
Jacobian, so the gradients w.r.t. ``k2'`` and ``v2'`` are those w.r.t. ``k2`` and ``v2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba.backward._plumbing import upstream_gradient
from attnlab.fastpath.numba.backward.tensor import pair_attention_grads
from attnlab.fastpath.numba.tensor import prepare_pair_inputs
from attnlab.reference.tensor import check_pair_magnitudes
from attnlab.validation import check_bool, check_positive_int, check_same_length, check_scale, gradients_checked


@gradients_checked
def simplicial_vjp(
    grad_out: Any,
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.simplicial.simplicial_attention`.

    Args:
        grad_out: ``∂loss/∂O`` of shape ``(..., n, d_v)`` (the output's shape).
        q, k1, k2: ``(..., n, d)``; v1, v2: ``(..., n, d_v)`` (leading dims broadcast).
        window1, window2: window sizes ``w1, w2 >= 1``; scale: σ, default ``1/√d``; kv_bias: as the forward.

    Returns:
        ``(dq, dk1, dk2, dv1, dv2)`` shaped and typed like the inputs (float32 stays float32).
    """
    arrays, lead, maps = prepare_pair_inputs(q, k1, k2, v1, v2)
    w1 = check_positive_int("window1", window1)
    w2 = check_positive_int("window2", window2)
    qa = arrays[0]
    d, n = qa.shape[-1], qa.shape[-2]
    sigma = check_scale(scale, d**-0.5)
    kv_bias = check_bool("kv_bias", kv_bias)
    check_same_length(("q", "k1", "k2"), arrays[:3])
    check_same_length(("q", "v1", "v2"), (qa, arrays[3], arrays[4]))
    w1, w2 = min(w1, n), min(w2, n)  # a window past the sequence start sees the whole prefix
    grad = upstream_gradient(grad_out, (*lead, n, arrays[3].shape[-1]), qa.dtype)
    if kv_bias:
        arrays[2] = arrays[2] + qa.dtype.type(1.0 / d)
        arrays[4] = arrays[4] + qa.dtype.type(1.0)
    check_pair_magnitudes(arrays, sigma, qa.dtype)
    dq, dk1, dk2, dv1, dv2 = pair_attention_grads(grad, arrays, maps, scale=sigma, causal=True, window1=w1, window2=w2)
    return dq, dk1, dk2, dv1, dv2
