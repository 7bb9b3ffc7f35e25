"""Numba fast path of differential attention V2: the flash-style softmax kernel over all ``2H`` query heads.

Source: Ye, Dong, Sun & Wei, "Differential Transformer V2" (Microsoft, 2026; microsoft/unilm
``Diff-Transformer-V2``). One call of :func:`attnlab.fastpath.numba.softmax.softmax_attention` (GQA by
index maps, no ``n·m`` map formed) gives every head ``o_j``; the pairs combine as
``o_{2h} − sigmoid(λ_h) o_{2h+1}``. Same call as :func:`attnlab.reference.diff_v2.diff_v2_attention`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.diff_v2 import check_lam
from attnlab.validation import numba_checked


def check_heads(q: np.ndarray) -> None:
    if q.ndim < 3 or q.shape[-3] % 2:
        raise ValueError(
            f"q: expected an even number 2H of query heads on axis -3 (pairs 2h, 2h + 1), got shape {q.shape}"
        )


def gate_of(lam: Any, out_shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(λ, sigmoid(λ))`` in ``dtype``, ``λ`` checked against the output shape ``(..., H, n, d_v)``."""
    with precision(dtype):
        lam_arr = check_lam(lam, out_shape)
    return lam_arr, expit(lam_arr).astype(dtype, copy=False)


@numba_checked
def diff_v2_attention(
    q: Any, k: Any, v: Any, lam: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    """Differential attention V2 ``O_h = A(Q_{2h}) V − sigmoid(λ_h) ⊙ A(Q_{2h+1}) V``.

    Shapes as the reference: ``q (..., 2H, n, d)``, ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``,
    ``lam`` broadcastable to ``(..., H, n, 1)``. Returns ``(..., H, n, d_v)`` in the input float dtype
    (float32 stays float32).
    """
    dtype = fast_dtype(q, k, v, lam)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_heads(qa)
    heads = softmax_attention(qa, ka, va, scale=scale, causal=causal, mask=mask)
    first, second = heads[..., 0::2, :, :], heads[..., 1::2, :, :]
    _, gate = gate_of(lam, first.shape, dtype)
    return np.ascontiguousarray(first - gate * second, dtype=dtype)
