"""Numba fast path of the Sparse Query Attention layer: BLAS projections around the flash-style softmax kernel.

Source: Filipek, "Sparse Query Attention (SQA)", Reactive AI, 2025 (arXiv 2510.01817). The ``H_q``
query heads and ``H_kv`` KV heads are projected by batched GEMMs, attended by
:func:`attnlab.fastpath.numba.softmax.softmax_attention` (GQA by index maps), and projected back with
``Σ_h O_h W_O^h``. Same call as :func:`attnlab.reference.sqa.sqa_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.sqa import check_weights
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    broadcast_batch,
    check_bool,
    check_scale,
    numba_checked,
)

NAMES = ("x", "context", "w_q", "w_k", "w_v", "w_o")


@dataclass(frozen=True)
class Projected:
    """A validated SQA call in one float dtype, with the per-head queries, keys and values."""

    x: np.ndarray
    context: np.ndarray
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    mask: np.ndarray | None
    causal: bool
    scale: float
    dtype: np.dtype


def project(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(..., n, D) × (H, D, e) -> (..., H, n, e)`` as one batched GEMM."""
    return np.matmul(x[..., None, :, :], w)


def prepare(
    x: Any, context: Any, w_q: Any, w_k: Any, w_v: Any, w_o: Any, *, scale: Any, causal: Any, mask: Any
) -> Projected:
    dtype = fast_dtype(x, context, w_q, w_k, w_v, w_o)
    xa, ca = float_arrays(NAMES[:2], (x, context), dtype)
    with precision(dtype):
        weights = tuple(as_float_array(name, w, ndim=3) for name, w in zip(NAMES[2:], (w_q, w_k, w_v, w_o)))
    wq, wk, wv, wo = weights
    check_weights(xa, ca, wq, wk, wv, wo)
    lead = broadcast_batch(("x", "context"), (xa, ca))
    causal = check_bool("causal", causal)
    allowed = None
    if mask is not None:
        allowed = allowed_positions(xa.shape[-2], ca.shape[-2], causal=False, mask=mask, lead=lead)[..., None, :, :]
    sigma = check_scale(scale, wq.shape[-1] ** -0.5)
    return Projected(
        xa, ca, (wq, wk, wv, wo), project(xa, wq), project(ca, wk), project(ca, wv), allowed, causal, sigma, dtype
    )


@numba_checked
def sqa_attention(
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """SQA layer ``Y = Σ_{h < H_q} softmax(σ (X W_Q^h)(C W_K^{g(h)})ᵀ + M)(C W_V^{g(h)}) W_O^h``.

    Args and shapes as :func:`attnlab.reference.sqa.sqa_attention`. Returns ``(..., n, D_out)`` in the
    input float dtype (float32 stays float32).
    """
    p = prepare(x, context, w_q, w_k, w_v, w_o, scale=scale, causal=causal, mask=mask)
    heads = softmax_attention(p.q, p.k, p.v, scale=p.scale, causal=p.causal, mask=p.mask)
    return np.ascontiguousarray(np.matmul(heads, p.weights[3]).sum(axis=-3), dtype=p.dtype)
