"""Numba fast path of bilinear MLR attention: concatenated level features, then the Numba softmax kernel.

Source: Kuang et al. 2025 (arXiv 2509.07963); operator as in YilunKuang/structured-attention@4895ad5
(BilinearMLRAttention). ``s_ij = Σ_l c_l LN(q^{(l)}_i)·LN(k^{(l)}_j) = q̃_i·k̃_j`` with
``q̃ = [√c_l LN(q^{(l)})]_l``: the L levels become one call of the tiled online-softmax kernel of
:mod:`attnlab.fastpath.numba.softmax` at scale 1, with head dim ``Σ_l r_l p_l``. Each level's features are
one batched GEMM of the token chunks with its weights. Everything stays in the input float dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.btt import LN_EPS, RMS_EPS, check_link
from attnlab.reference.mlr_bilinear import NORMALIZATIONS, check_bilinear_mlr_inputs, level_scale
from attnlab.validation import allowed_positions, check_bool, numba_checked


def mixed_features(
    tokens: np.ndarray,
    weight: np.ndarray,
    ranks: tuple[int, ...],
    heads: int,
    *,
    mup: bool,
    use_ln: bool,
    cap: bool,
    divide: int,
) -> np.ndarray:
    """``[√(c_l / divide) · LN(q^{(l)}_h)]_l`` for tokens ``(..., n, D)``: ``(..., H, n, Σ r_l p_l)``."""
    dim, start, parts = tokens.shape[-1], 0, []
    flat = tokens.reshape(-1, dim)
    for level, rank in enumerate(ranks):
        chunks, width = 2**level, dim // 2**level
        block = weight[:, start : start + heads * rank].reshape(chunks, width, heads * rank)
        if cap:
            rms = math.sqrt(float(np.mean(block.astype(np.float64) ** 2)) + RMS_EPS)
            block = block / block.dtype.type(max(1.0, rms / math.sqrt(min(width, heads * rank) / width**2)))
        projected = flat.reshape(-1, chunks, width).transpose(1, 0, 2) @ block  # (p, N·n, H·r)
        feats = projected.reshape(chunks, -1, heads, rank).transpose(1, 2, 3, 0).reshape(-1, heads, rank * chunks)
        if use_ln:
            centred = feats - feats.mean(-1, keepdims=True)
            feats = centred / np.sqrt((centred * centred).mean(-1, keepdims=True) + feats.dtype.type(LN_EPS))
        parts.append(feats * feats.dtype.type(math.sqrt(level_scale(rank, chunks, mup) / divide)))
        start += heads * rank
    joined = np.concatenate(parts, axis=-1)
    mixed = joined.reshape(*tokens.shape[:-1], heads, joined.shape[-1])
    return np.ascontiguousarray(np.moveaxis(mixed, -2, -3))


@numba_checked
def bilinear_mlr_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    ranks: Any,
    mup: bool = False,
    layer_norm_features: bool = True,
    normalize_weights: bool = True,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Bilinear MLR attention (same call as :func:`attnlab.reference.mlr_bilinear.bilinear_mlr_attention`).

    Shapes: ``x (..., 1, n, D)``, ``y (..., 1, m, D)``, ``v (..., H, m, d_v)``, packed ``w_q, w_k (D, H·Σr)``.
    Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    dtype = fast_dtype(x, y, v, w_q, w_k)
    with precision(dtype):
        xa, ya, va, wq, wk, rank_tuple, lead = check_bilinear_mlr_inputs(x, y, v, w_q, w_k, ranks)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {NORMALIZATIONS}, got {normalize!r}")
    kind = check_link(link)
    heads = va.shape[-3]
    options: dict[str, Any] = {
        "mup": check_bool("mup", mup),
        "use_ln": check_bool("layer_norm_features", layer_norm_features),
        "cap": check_bool("normalize_weights", normalize_weights),
        "divide": len(rank_tuple) if normalize == "levels" else 1,
    }
    queries = mixed_features(xa, wq, rank_tuple, heads, **options)
    keys = mixed_features(ya, wk, rank_tuple, heads, **options)
    queries, keys, values = (np.broadcast_to(t, (*lead, *t.shape[-2:])) for t in (queries, keys, va))
    if kind == "softmax":
        return softmax_attention(queries, keys, values, scale=1.0, causal=causal, mask=mask)
    allowed = allowed_positions(queries.shape[-2], keys.shape[-2], causal=causal, mask=mask, lead=lead)
    return (np.where(allowed, queries @ np.swapaxes(keys, -1, -2), dtype.type(0.0)) @ values).astype(dtype)
