"""Numba fast path of bilinear BTT attention: structured keys in NumPy, then the Numba softmax kernel.

Source: Kuang et al. 2025 (arXiv 2509.07963); operator as in YilunKuang/structured-attention@4895ad5.
The keys ``LN(W_h y_j)`` cost two small core contractions (``O(m·H·s·D·(a + d)/a)``); what remains is
softmax attention with head dim ``D`` — the tiled online-softmax kernel of
:mod:`attnlab.fastpath.numba.softmax` — with the raw queries shared by the heads. The identity link is a
masked GEMM. Everything stays in the input float dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.btt import LN_EPS, RMS_EPS, check_btt_inputs, check_link
from attnlab.validation import allowed_positions, check_bool, check_scale, numba_checked


def _cap(weight: np.ndarray, fan_in: int, fan_out: int) -> np.ndarray:
    rms = math.sqrt(float(np.mean(weight.astype(np.float64) ** 2)) + RMS_EPS)
    return weight / weight.dtype.type(max(1.0, rms / math.sqrt(min(fan_in, fan_out) / fan_in**2)))


def structured_keys(
    y: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, int, int, int, int], layer_norm: bool
) -> np.ndarray:
    """``LN(W_h y_j)`` for every head, ``(..., H, m, D)``: a GEMM with ``W_K`` per row block, then one with ``W_Q``."""
    a, b, c, d, s = sizes
    m = y.shape[-2]
    grid = y.reshape(-1, c, d).transpose(1, 0, 2)  # (c, N·m, d)
    partial = grid @ w_k  # (c, N·m, H·b·s)
    partial = (
        partial.reshape(c, -1, heads * b, s).transpose(2, 0, 3, 1).reshape(heads * b, c * s, -1)
    )  # (H·b, c·s, N·m)
    z = w_q @ partial  # (H·b, a, N·m)
    keys = z.reshape(heads, b, a, -1).transpose(3, 0, 2, 1).reshape(*y.shape[:-2], m, heads, a * b)
    keys = np.moveaxis(keys, -2, -3)
    if not layer_norm:
        return np.ascontiguousarray(keys)
    centred = keys - keys.mean(-1, keepdims=True)
    return centred / np.sqrt((centred * centred).mean(-1, keepdims=True) + keys.dtype.type(LN_EPS))


@numba_checked
def btt_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    scale: float | None = None,
    layer_norm_keys: bool = True,
    normalize_weights: bool = True,
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """BTT bilinear attention (same call as :func:`attnlab.reference.btt.btt_attention`).

    Shapes: ``x (..., n, D)``, ``y (..., 1, m, D)``, ``v (..., H, m, d_v)``, cores ``(H·b, a, c·s)`` and
    ``(c, d, H·b·s)``. Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    dtype = fast_dtype(x, y, v, w_q, w_k)
    with precision(dtype):
        xa, ya, va, wq, wk, sizes, lead = check_btt_inputs(x, y, v, w_q, w_k)
    a, b, c, d, s = sizes
    heads = va.shape[-3]
    kind = check_link(link)
    sigma = check_scale(scale, xa.shape[-1] ** -0.5)
    if check_bool("normalize_weights", normalize_weights):
        wq, wk = _cap(wq, c * s, a), _cap(wk, d, heads * b * s)
    keys = structured_keys(ya, wq, wk, heads, sizes, check_bool("layer_norm_keys", layer_norm_keys))
    queries = np.broadcast_to(xa, (*lead, *xa.shape[-2:]))
    keys = np.broadcast_to(keys, (*lead, *keys.shape[-2:]))
    values = np.broadcast_to(va, (*lead, *va.shape[-2:]))
    if kind == "softmax":
        return softmax_attention(queries, keys, values, scale=sigma, causal=causal, mask=mask)
    allowed = allowed_positions(queries.shape[-2], keys.shape[-2], causal=causal, mask=mask, lead=lead)
    return (
        np.where(allowed, dtype.type(sigma) * (queries @ np.swapaxes(keys, -1, -2)), dtype.type(0.0)) @ values
    ).astype(dtype)
