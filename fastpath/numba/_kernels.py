"""Jitted building blocks shared by the Numba fast paths.

Conventions: inputs are C-contiguous ``(N, rows, features)`` arrays in float32 or float64, selected
per output slice ``b`` through int64 index maps (``q_map[b]``, ``kv_map[b]``, ``mask_map[b]``).
``causal`` means bottom-right alignment: key ``j`` is visible to query ``i`` iff ``j <= i + m - n``.
Masked logits are ``-inf``; a row with no visible key ends with ``row_sum == 0`` and outputs 0
(operators.md §0.7).

The online-softmax state of a row is ``(μ, ℓ, acc)`` with ``μ`` the running max, ``ℓ = Σ e^{s−μ}`` and
``acc = Σ e^{s−μ} v``; a new tile with max ``μ'`` rescales it by ``α = e^{μ−μ'}`` (the combine monoid of
operators.md §0.6). Row sums come out of the same GEMM as ``P V`` through a ones column appended to
the value tile, so the exponential loop has no serial reduction in it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: Query rows per task and keys per tile: tiles of P (64 x 256) and the Q block stay in L2 while
#: the GEMMs are still large enough for BLAS to run at full speed.
BLOCK_ROWS = 64
BLOCK_COLS = 256

NEG_INF = -np.inf

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125
_LN2_LO = 1.4286068203094173e-06
#: 2^-k for k = 0..1100: exact powers of two replace the exponent bit-twiddling numba cannot vectorise.
_POW2_NEG = np.ldexp(1.0, -np.arange(1101))


@njit(cache=True, fastmath=False, inline="always")
def exp_nonpositive(x):
    """``e^x`` for ``x <= 0`` (``-inf`` gives 0): ``x = k ln2 + r``, a degree-13 Taylor polynomial on
    ``|r| <= ln2/2`` (relative error below 2e-16) times ``2^-k`` from a table.

    Unlike a libm call this is straight-line arithmetic plus a gather, so LLVM vectorises the
    element-wise loops of the kernels without fast-math.
    """
    if x < -745.0:
        return 0.0
    k = math.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _POW2_NEG[int(-k)]


@njit(cache=True, fastmath=False)
def tile_fully_visible(r0: int, c1: int, offset: int, causal: bool, has_mask: bool) -> bool:
    """True when every key of columns ``< c1`` is visible to every row ``>= r0`` (no mask)."""
    if has_mask:
        return False
    return (not causal) or (c1 - 1 <= r0 + offset)


@njit(cache=True, fastmath=False)
def apply_visibility(s, r0, c0, offset, causal, has_mask, mask3, mi):
    """Set the logits of invisible (row, key) pairs of tile ``s`` (rows ``r0..``, keys ``c0..``) to -inf."""
    br, bc = s.shape
    for r in range(br):
        limit = r0 + r + offset
        for c in range(bc):
            j = c0 + c
            if (causal and j > limit) or (has_mask and mask3[mi, r0 + r, j] == 0):
                s[r, c] = NEG_INF


@njit(cache=True, fastmath=False)
def online_softmax_tile(s, row_max, alpha):
    """Turn logits ``s`` into ``p = e^{s − μ'}`` in place, update ``row_max`` to ``μ'``, set ``alpha``.

    Rows whose tile is all -inf keep their state (``alpha = 1``, ``p = 0``).
    """
    br, bc = s.shape
    for r in range(br):
        tile_max = NEG_INF
        for c in range(bc):
            if s[r, c] > tile_max:
                tile_max = s[r, c]
        old = row_max[r]
        if tile_max == NEG_INF:
            alpha[r] = 1.0
            for c in range(bc):
                s[r, c] = 0.0
            continue
        new = max(old, tile_max)
        alpha[r] = 0.0 if old == NEG_INF else math.exp(old - new)
        row_max[r] = new
        for c in range(bc):
            s[r, c] = exp_nonpositive(s[r, c] - new)


@njit(cache=True, fastmath=False)
def load_scaled_rows(x3, idx, r0, r1, scale):
    """``scale · x3[idx, r0:r1, :]`` as a fresh C-contiguous block."""
    block = np.empty((r1 - r0, x3.shape[2]), dtype=x3.dtype)
    for r in range(r1 - r0):
        for c in range(x3.shape[2]):
            block[r, c] = x3[idx, r0 + r, c] * scale
    return block


@njit(cache=True, fastmath=False)
def load_transposed(x3, idx, c0, c1):
    """``x3[idx, c0:c1, :]ᵀ`` as a C-contiguous ``(features, c1 − c0)`` block."""
    block = np.empty((x3.shape[2], c1 - c0), dtype=x3.dtype)
    for j in range(c1 - c0):
        for c in range(x3.shape[2]):
            block[c, j] = x3[idx, c0 + j, c]
    return block


@njit(cache=True, fastmath=False)
def load_values_with_ones(v3, idx, c0, c1):
    """``[v3[idx, c0:c1, :] | 1]``: the value tile plus a ones column that yields the row sums."""
    dv = v3.shape[2]
    block = np.empty((c1 - c0, dv + 1), dtype=v3.dtype)
    for j in range(c1 - c0):
        for c in range(dv):
            block[j, c] = v3[idx, c0 + j, c]
        block[j, dv] = 1.0
    return block


@njit(cache=True, fastmath=False)
def key_end(r1, n, m, causal):
    """One past the last key any row ``< r1`` may see."""
    if not causal:
        return m
    return max(0, min(m, r1 + m - n))


@njit(cache=True, fastmath=False)
def softmax_block(q3, k3, v3, qi, ki, mi, r0, r1, mask3, has_mask, causal, scale):
    """Online softmax of query rows ``r0..r1`` over every visible key.

    Returns ``(acc, row_max)`` with ``acc[:, :dv]`` the unnormalised output and ``acc[:, dv]`` the
    row sum ``ℓ`` (both relative to ``row_max``).
    """
    n, m, dv = q3.shape[1], k3.shape[1], v3.shape[2]
    br = r1 - r0
    offset = m - n
    acc = np.zeros((br, dv + 1), dtype=v3.dtype)
    row_max = np.full(br, NEG_INF, dtype=q3.dtype)
    alpha = np.empty(br, dtype=q3.dtype)
    kend = key_end(r1, n, m, causal)
    if kend == 0:
        return acc, row_max
    qb = load_scaled_rows(q3, qi, r0, r1, scale)
    for c0 in range(0, kend, BLOCK_COLS):
        c1 = min(kend, c0 + BLOCK_COLS)
        s = np.dot(qb, load_transposed(k3, ki, c0, c1))
        if not tile_fully_visible(r0, c1, offset, causal, has_mask):
            apply_visibility(s, r0, c0, offset, causal, has_mask, mask3, mi)
        online_softmax_tile(s, row_max, alpha)
        pv = np.dot(s, load_values_with_ones(v3, ki, c0, c1))
        for r in range(br):
            a = alpha[r]
            for c in range(dv + 1):
                acc[r, c] = acc[r, c] * a + pv[r, c]
    return acc, row_max


@njit(cache=True, fastmath=False, parallel=True)
def softmax_forward(q3, k3, v3, q_map, kv_map, mask3, mask_map, has_mask, causal, scale, out, lse):
    """Flash-style softmax attention: ``out[b] = softmax(scale · q kᵀ + M) v`` and its row lse.

    Parallel over (batch slice, row block); memory per task ``O(BLOCK_ROWS · BLOCK_COLS)``.
    """
    slices, n = out.shape[0], out.shape[1]
    dv = v3.shape[2]
    blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * BLOCK_ROWS
        r1 = min(n, r0 + BLOCK_ROWS)
        acc, row_max = softmax_block(
            q3, k3, v3, q_map[b], kv_map[b], mask_map[b], r0, r1, mask3, has_mask, causal, scale
        )
        for r in range(r1 - r0):
            total = acc[r, dv]
            if total > 0.0:
                inv = 1.0 / total
                for c in range(dv):
                    out[b, r0 + r, c] = acc[r, c] * inv
                lse[b, r0 + r] = row_max[r] + math.log(total)
            else:
                for c in range(dv):
                    out[b, r0 + r, c] = 0.0
                lse[b, r0 + r] = NEG_INF
