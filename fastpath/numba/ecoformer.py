"""Numba/NumPy fast path of EcoFormer attention (binary codes from kernelised hashing).

Source: Liu et al. 2022, "EcoFormer: Energy-Saving Attention with Linear Complexity" (arXiv 2209.09004);
operator constants as in the authors' code (ziplab/EcoFormer@6ff7155). The codes ``h_i ∈ {±1}^b`` are
computed once per call in float64 (``O(n R (d + b))``, negligible next to the attention): a float32 run
then cannot flip a bit whose projection sits within rounding of 0, which would move the output by
``O(1/b)``. Aggregation runs in the input dtype:

* no mask, not causal: the linear-time form ``(h_iᵀ(Hᵀ[V|1]) + c Σ[V|1])``, two GEMMs, ``O(n b d_v)``;
* no mask, causal: the same per chunk of :data:`CHUNK` tokens, with the running state ``Σ_{j<chunk} h_j
  [v_j|1]ᵀ`` carried across chunks and the chunk's own pairs done quadratically (``O(n·CHUNK·(b + d_v))``);
* a boolean mask: the quadratic form on packed sign words, ``w_ij = c + b − 2·popcount(h_i xor h_j)``
  (integer code distances, no multiply per bit) on tiles of :data:`ROWS` × :data:`COLS` pairs, each tile
  multiplied into ``[V|1]`` by one GEMM.

Squared token–anchor distances use ``‖u − a‖² = 1 + ‖a‖² − 2 u·a`` (``‖u‖ = 1``), one GEMM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, fast_dtype, mask_slices, poisoned, precision
from attnlab.fastpath.numba._sign_bits import code_distance, pack_sign_bits
from attnlab.reference.ecoformer import check_hash_inputs, check_offset, check_values
from attnlab.validation import broadcast_batch, check_bool, numba_checked

#: Tokens per chunk of the causal linear-time form.
CHUNK = 64
#: Query rows per task and keys per tile of the masked quadratic kernel.
ROWS = 64
COLS = 128


def code_projections(
    qk: np.ndarray, anchors: np.ndarray, hash_weights: np.ndarray, kernel_mean: np.ndarray, bandwidth: float | None
) -> np.ndarray:
    """``A(κ(u_i) − μ)`` in float64, ``(..., n, b)``: the values whose signs are the codes."""
    x = np.asarray(qk, dtype=np.float64)
    a = np.asarray(anchors, dtype=np.float64)
    u = x / np.linalg.norm(x, axis=-1, keepdims=True)
    dist = np.maximum(1.0 + np.sum(a * a, axis=-1)[..., None, :] - 2.0 * (u @ np.swapaxes(a, -1, -2)), 0.0)
    width = np.mean(dist, axis=(-2, -1), keepdims=True) if bandwidth is None else np.float64(bandwidth)
    if np.any(width <= 0.0):
        raise ValueError(
            "qk/anchors: every token coincides with every anchor, so the mean squared distance (the kernel "
            "bandwidth) is 0; pass an explicit positive bandwidth="
        )
    features = np.exp(-dist / (2.0 * width)) - np.asarray(kernel_mean, dtype=np.float64)[..., None, :]
    return features @ np.swapaxes(np.asarray(hash_weights, dtype=np.float64), -1, -2)


def _with_ones(v: np.ndarray) -> np.ndarray:
    return np.concatenate([v, np.ones((*v.shape[:-1], 1), dtype=v.dtype)], axis=-1)


def _divide(top: np.ndarray) -> np.ndarray:
    total = top[..., -1:]
    safe = np.where(total != 0, total, 1)
    return np.where(total != 0, top[..., :-1] / safe, 0).astype(top.dtype, copy=False)


def _linear(codes: np.ndarray, v1: np.ndarray, offset: float) -> np.ndarray:
    state = np.swapaxes(codes, -1, -2) @ v1
    return _divide(codes @ state + v1.dtype.type(offset) * np.sum(v1, axis=-2, keepdims=True))


def _chunked_causal(codes: np.ndarray, v1: np.ndarray, offset: float) -> np.ndarray:
    n = codes.shape[-2]
    c = v1.dtype.type(offset)
    state = np.zeros((*codes.shape[:-2], codes.shape[-1], v1.shape[-1]), dtype=v1.dtype)
    plain = np.zeros((*codes.shape[:-2], 1, v1.shape[-1]), dtype=v1.dtype)
    top = np.empty_like(v1)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        h, w1 = codes[..., s:e, :], v1[..., s:e, :]
        inner = np.tril(h @ np.swapaxes(h, -1, -2) + c)
        top[..., s:e, :] = h @ state + c * plain + inner @ w1
        state = state + np.swapaxes(h, -1, -2) @ w1
        plain = plain + np.sum(w1, axis=-2, keepdims=True)
    return _divide(top)


@njit(cache=True)
def _value_tile(v3, idx, c0, c1):
    """``[v3[idx, c0:c1] | 1]``: the value rows plus a ones column that collects the weight sums."""
    dv = v3.shape[2]
    tile = np.empty((c1 - c0, dv + 1), dtype=v3.dtype)
    for j in range(c1 - c0):
        for c in range(dv):
            tile[j, c] = v3[idx, c0 + j, c]
        tile[j, dv] = 1.0
    return tile


@njit(cache=True, fastmath=False, parallel=True)
def _masked_forward(words, v3, mask3, mask_map, causal, bits, offset, out):
    slices, n = out.shape[0], out.shape[1]
    dv = v3.shape[2]
    blocks = (n + ROWS - 1) // ROWS
    top_weight = v3.dtype.type(offset + bits)
    two = v3.dtype.type(2.0)
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * ROWS
        r1 = min(n, r0 + ROWS)
        mi = mask_map[b]
        kend = r1 if causal else n
        acc = np.zeros((r1 - r0, dv + 1), dtype=v3.dtype)
        for c0 in range(0, kend, COLS):
            c1 = min(kend, c0 + COLS)
            w = np.zeros((r1 - r0, c1 - c0), dtype=v3.dtype)
            for r in range(r1 - r0):
                i = r0 + r
                for j in range(c0, c1):
                    if (causal and j > i) or mask3[mi, i, j] == 0:
                        continue
                    w[r, j - c0] = top_weight - two * code_distance(words, b, i, words, b, j)
            acc += np.dot(w, _value_tile(v3, b, c0, c1))
        for r in range(r1 - r0):
            total = acc[r, dv]
            for c in range(dv):
                out[b, r0 + r, c] = acc[r, c] / total if total != 0.0 else 0.0


@numba_checked
def ecoformer_attention(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """EcoFormer attention ``o_i = Σ_j (h_i·h_j + c) v_j / Σ_j (h_i·h_j + c)`` (same call as the reference).

    Args and shapes as :func:`attnlab.reference.ecoformer.ecoformer_attention`: ``qk (..., n, d)``,
    ``v (..., n, d_v)``, ``anchors (..., R, d)``, ``hash_weights (..., b, R)``, ``kernel_mean (..., R)``.
    Returns ``(..., n, d_v)`` in the input float dtype (float32 when every input is float32).
    """
    dtype = fast_dtype(qk, v, anchors, hash_weights, kernel_mean)
    with precision(dtype):
        qk_a, anchors_a, weights_a, mean_a, width = check_hash_inputs(qk, anchors, hash_weights, kernel_mean, bandwidth)
        v_a = check_values(qk_a, v)
    causal = check_bool("causal", causal)
    if causal and width is None:
        raise ValueError("causal: needs a fixed bandwidth= (the default bandwidth reads every token of the sequence)")
    projections = code_projections(qk_a, anchors_a, weights_a, mean_a, width)
    bits = projections.shape[-1]
    c = check_offset(offset, bits)
    lead = broadcast_batch(("qk", "v"), (projections, v_a))
    n, dv = v_a.shape[-2], v_a.shape[-1]
    projections = np.broadcast_to(projections, (*lead, n, bits))
    v_full = np.broadcast_to(v_a, (*lead, n, dv))
    if mask is None:
        codes = np.where(projections >= 0, dtype.type(1.0), dtype.type(-1.0))
        v1 = _with_ones(v_full)
        return _chunked_causal(codes, v1, c) if causal else _linear(codes, v1, c)
    mask3, mask_map, _, causal = mask_slices(mask, n, n, lead, causal=causal)
    out = poisoned((int(np.prod(lead, dtype=np.int64)), n, dv), dtype)
    _masked_forward(
        pack_sign_bits(projections), as_slices(np.ascontiguousarray(v_full)), mask3, mask_map, causal, bits, c, out
    )
    return out.reshape(*lead, n, dv)
