"""Numba path of Affine-Scaled Attention: the flash-style softmax kernel plus a prefix sum of the values.

Source: Bae et al. 2026, "Affine-Scaled Attention" (arXiv 2602.23057, abstract); attnlab's reading
``O_i = α_i SDPA_i + β_i Σ_{j visible} v_j`` (see :mod:`attnlab.reference.affine_scaled`). The softmax
part is :func:`attnlab.fastpath.numba.softmax.softmax_attention`; the bias part needs only the visible
value sums, a prefix sum when the visibility is causal and a product with the mask otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.affine_scaled import row_array
from attnlab.validation import allowed_positions, check_bool, expand_kv_heads, numba_checked


def _visible_sums(
    v: np.ndarray, n: int, *, causal: bool, mask: Any, lead: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    m = v.shape[-2]
    if mask is None:
        index = np.clip(np.arange(n) + (m - n + 1), 0, m) if causal else np.full(n, m)
        prefix = np.concatenate([np.zeros_like(v[..., :1, :]), np.cumsum(v, axis=-2)], axis=-2)
        return prefix[..., index, :], index.astype(v.dtype)[:, None]
    allowed = allowed_positions(n, m, causal=causal, mask=mask, lead=lead).astype(v.dtype)
    return allowed @ v, allowed.sum(axis=-1, keepdims=True)


@numba_checked
def affine_scaled_attention(
    q: Any,
    k: Any,
    v: Any,
    alpha: Any,
    beta: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    tie_beta: bool = False,
) -> np.ndarray:
    """``O_i = α_i SDPA_i + β_i Σ_{j visible} v_j`` (same call as the reference), in the input float dtype."""
    dtype = fast_dtype(q, k, v, alpha, *(() if beta is None else (beta,)))
    tie_beta = check_bool("tie_beta", tie_beta)
    causal = check_bool("causal", causal)
    out = softmax_attention(q, k, v, scale=scale, causal=causal, mask=mask)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    _, _, ve = expand_kv_heads(qa, ka, va)
    lead, n = out.shape[:-2], out.shape[-2]
    with precision(dtype):
        a = row_array("alpha", alpha, lead, n)
        sums, counts = _visible_sums(ve, n, causal=causal, mask=mask, lead=lead)
        if tie_beta:
            if beta is not None:
                raise ValueError("beta: tie_beta=True derives β from α; pass beta=None")
            b = np.where(counts > 0, (1 - a) / np.maximum(counts, 1), 0).astype(dtype)
        else:
            if beta is None:
                raise ValueError("beta: expected an array of per-query biases (or tie_beta=True), got None")
            b = row_array("beta", beta, lead, n)
    return np.asarray(a * out + b * sums, dtype=dtype)
