"""Numba fast path of Hamming attention on sign codes (HAD).

Source: Horton et al. 2025, "Hamming Attention Distillation" (arXiv 2502.01770). The logits are
``σ q̂·k̂ = σ(d − 2h)`` with ``q̂ = sign(q)`` (``sign(0) = +1``) and ``h`` the Hamming distance.

Without ``top_n`` the ±1 codes go through the softmax kernel as ordinary queries and keys (the GEMM
sums ``d`` terms ``±σ``: exact when σ is a power of two, as for ``d = 64``, otherwise within a few
roundings of ``σ(d − 2h)``), and a BLAS GEMM beats a popcount loop (Numba has no popcount
intrinsic) by a wide margin: ~9x the composed-torch peer against ~1x for the popcount kernel.

With ``top_n``, signs are packed into uint64 words (bit set = sign +1) and
``q̂·k̂ = d − 2·popcount(q̂ xor k̂)``. Logits take only the ``d + 1`` values ``σ(d − 2h)``, so every
softmax weight is a table entry
``e^{−2σ(h − h_min)}`` indexed by the Hamming distance ``h``: the online softmax runs on integers and
needs no exponential per pair. ``top_n`` keeps per row every visible key whose distance is at most
that of the N-th closest visible key (ties kept, as the reference), found from a per-row histogram
of distances (``O(d)`` memory).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import (
    as_slices,
    attention_maps,
    fast_dtype,
    float_arrays,
    mask_slices,
    numba_checked,
    poisoned,
)
from attnlab.fastpath.numba._kernels import BLOCK_COLS, BLOCK_ROWS, key_end
from attnlab.fastpath.numba.softmax import softmax_forward
from attnlab.reference.hamming import check_hamming_scale
from attnlab.validation import check_last_dim, check_positive_int

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit(cache=True, fastmath=False)
def popcount64(x):
    """Number of set bits of a uint64 (SWAR bit-slicing; Numba has no popcount intrinsic)."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


def pack_signs(x: np.ndarray) -> np.ndarray:
    """``(..., n, d)`` floats -> ``(N, n, ⌈d/64⌉)`` uint64 words, bit set where ``x >= 0``."""
    bits = np.packbits(x >= 0, axis=-1, bitorder="little")
    words = -(-x.shape[-1] // 64)
    padded = np.zeros((*bits.shape[:-1], 8 * words), dtype=np.uint8)
    padded[..., : bits.shape[-1]] = bits
    return np.ascontiguousarray(padded.reshape(-1, x.shape[-2], 8 * words)).view(np.uint64)


def sign_codes(x: np.ndarray) -> np.ndarray:
    """``sign(x)`` as ±1 in the dtype of ``x`` with ``sign(0) = +1``, as ``(N, n, d)`` slices."""
    return as_slices(np.where(x >= 0, x.dtype.type(1.0), x.dtype.type(-1.0)))


@njit(cache=True)
def _values_with_ones(v3, idx, c0, c1):
    """``[v3[idx, c0:c1, :] | 1]``: the value tile plus a ones column that yields the row sums."""
    dv = v3.shape[2]
    block = np.empty((c1 - c0, dv + 1), dtype=v3.dtype)
    for j in range(c1 - c0):
        for c in range(dv):
            block[j, c] = v3[idx, c0 + j, c]
        block[j, dv] = 1.0
    return block


@njit(cache=True, fastmath=False)
def _distance(qw, i, kw, ki, j):
    total = np.uint64(0)
    for w in range(qw.shape[2]):
        total += popcount64(qw[i[0], i[1], w] ^ kw[ki, j, w])
    return np.int64(total)


@njit(cache=True, fastmath=False)
def _visible(i, j, offset, causal, has_mask, mask3, mi):
    if causal and j > i + offset:
        return False
    return not (has_mask and mask3[mi, i, j] == 0)


@njit(cache=True, fastmath=False, parallel=True)
def _hamming_top_n_forward(qw, kw, v3, q_map, kv_map, mask3, mask_map, has_mask, causal, d, scale, top_n, out):
    slices, n = out.shape[0], out.shape[1]
    m, dv = kw.shape[1], v3.shape[2]
    offset = m - n
    # decay[t] = e^{−2σt}: the weight of a key t bits farther than the row's closest one.
    decay = np.empty(d + 1, dtype=v3.dtype)
    for t in range(d + 1):
        decay[t] = math.exp(-2.0 * scale * t)
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        br = r1 - r0
        qi, ki, mi = q_map[b], kv_map[b], mask_map[b]
        kend = key_end(r1, n, m, causal)
        limit = np.full(br, d, dtype=np.int64)
        counts = np.zeros(d + 1, dtype=np.int64)
        for r in range(br):
            counts[:] = 0
            for j in range(kend):
                if _visible(r0 + r, j, offset, causal, has_mask, mask3, mi):
                    counts[_distance(qw, (qi, r0 + r), kw, ki, j)] += 1
            kept = 0
            for h in range(d + 1):
                kept += counts[h]
                if kept >= top_n:
                    limit[r] = h
                    break
        acc = np.zeros((br, dv + 1), dtype=v3.dtype)
        nearest = np.full(br, d + 1, dtype=np.int64)
        dist = np.empty(BLOCK_COLS, dtype=np.int64)
        for c0 in range(0, kend, BLOCK_COLS):
            c1 = min(kend, c0 + BLOCK_COLS)
            p = np.zeros((br, c1 - c0), dtype=v3.dtype)
            rescale = np.ones(br, dtype=v3.dtype)
            for r in range(br):
                i = r0 + r
                tile_min = d + 1
                for j in range(c0, c1):
                    h = d + 1
                    if _visible(i, j, offset, causal, has_mask, mask3, mi):
                        h = _distance(qw, (qi, i), kw, ki, j)
                        if h > limit[r]:
                            h = d + 1
                    dist[j - c0] = h
                    tile_min = min(tile_min, h)
                if tile_min > d:
                    continue
                if tile_min < nearest[r]:
                    if nearest[r] <= d:
                        rescale[r] = decay[nearest[r] - tile_min]
                    nearest[r] = tile_min
                base = nearest[r]
                for j in range(c1 - c0):
                    if dist[j] <= d:
                        p[r, j] = decay[dist[j] - base]
            pv = np.dot(p, _values_with_ones(v3, ki, c0, c1))
            for r in range(br):
                a = rescale[r]
                for c in range(dv + 1):
                    acc[r, c] = acc[r, c] * a + pv[r, c]
        for r in range(br):
            total = acc[r, dv]
            for c in range(dv):
                out[b, r0 + r, c] = acc[r, c] / total if total > 0.0 else 0.0


@numba_checked
def hamming_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> np.ndarray:
    """Softmax attention over binarised logits ``s_ij = σ (d − 2·Ham(sign q_i, sign k_j))``.

    Args and shapes as :func:`attnlab.reference.hamming_attention`: ``q (..., H, n, d)``,
    ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``; ``causal``/``mask`` applied before top-N;
    ``top_n`` keeps the N largest visible logits per row with every tie of the N-th.
    Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    d = qa.shape[-1]
    sigma = check_hamming_scale(scale, d, dtype)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, causal = mask_slices(mask, n, m, lead, causal=causal)
    keep = 0 if top_n is None else min(check_positive_int("top_n", top_n), m)  # N >= m keeps every key
    out = poisoned((len(q_map), n, dv), dtype)
    if keep == 0:
        lse, peak, total = (poisoned((len(q_map), n), dtype) for _ in range(3))
        softmax_forward(
            sign_codes(qa),
            sign_codes(ka),
            as_slices(va),
            q_map,
            kv_map,
            mask3,
            mask_map,
            has_mask,
            causal,
            sigma,
            out,
            lse,
            peak,
            total,
        )
        return out.reshape(*lead, n, dv)
    _hamming_top_n_forward(
        pack_signs(qa),
        pack_signs(ka),
        as_slices(va),
        q_map,
        kv_map,
        mask3,
        mask_map,
        has_mask,
        causal,
        d,
        sigma,
        keep,
        out,
    )
    return out.reshape(*lead, n, dv)
