"""Jitted building blocks shared by the Numba fast paths.

Conventions: inputs are C-contiguous ``(N, rows, features)`` arrays in float32 or float64, selected
per output slice ``b`` through int64 index maps (``q_map[b]``, ``kv_map[b]``, ``mask_map[b]``).
``causal`` means bottom-right alignment: key ``j`` is visible to query ``i`` iff ``j <= i + m - n``.
Masked logits are ``-inf``; a row with no visible key ends with ``row_sum == 0`` and outputs 0.

The online-softmax state of a row is ``(μ, ℓ, acc)`` with ``μ`` the running max, ``ℓ = Σ e^{s−μ}`` and
``acc = Σ e^{s−μ} v``; a new tile with max ``μ'`` rescales it by ``α = e^{μ−μ'}`` (the online-softmax
combine of FlashAttention, Dao et al. 2022, arXiv 2205.14135, Algorithm 1).

Layout: a score tile is held *transposed*, ``Sᵀ`` of shape ``(keys, rows)``, computed by one GEMM
``K_tile · Q_blockᵀ`` on the contiguous key rows (no copy of K). Every per-row quantity (max, shift,
sum) is then an element-wise update of a length-``rows`` vector while sweeping the keys, so the loops
vectorise without fast-math (which would break ``-inf`` masking), and the second GEMM reads the same
buffer as ``P = (Sᵀ)ᵀ``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: Query rows per task and keys per tile: a float32 ``Sᵀ`` tile (256 x 128, 128 KiB) stays in L2 while
#: both GEMMs are large enough for BLAS to run near full speed.
BLOCK_ROWS = 128
BLOCK_COLS = 256

NEG_INF = -np.inf

# float32 e^x: Cody-Waite split of ln 2 and a degree-7 minimax polynomial (Cephes expf, ~1 ulp).
_LOG2E_32 = np.float32(1.4426950408889634)
_LN2_HI_32 = np.float32(0.693359375)
_LN2_LO_32 = np.float32(-2.12194440e-4)
_ROUND_32 = np.float32(12582912.0)  # 1.5 · 2^23: adding and subtracting it rounds to the nearest integer
_FLOOR_32 = np.float32(-86.0)  # below, e^x is treated as 0 (keeps 2^k normal: k >= -125)
# float64 e^x: degree-13 Taylor polynomial on |r| <= ln2/2 (relative error below 2e-16).
_LOG2E_64 = 1.4426950408889634
_LN2_HI_64 = 0.693145751953125
_LN2_LO_64 = 1.4286068203094173e-06
_ROUND_64 = 6755399441055744.0  # 1.5 · 2^52
_FLOOR_64 = -708.0


def _float_from_bits_typer(typingctx: Any, bits: Any) -> Any:
    """Reinterpret an int32 (int64) as the float32 (float64) with the same bits."""
    result: Any
    llvm_type: Any
    if bits == types.int32:
        result, llvm_type = types.float32, ir.FloatType()
    elif bits == types.int64:
        result, llvm_type = types.float64, ir.DoubleType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return result(bits), codegen


_float_from_bits: Any = intrinsic(_float_from_bits_typer)


def exp_nonpositive(x):  # pragma: no cover - replaced by the overload below inside jitted code
    """``e^x`` for ``x <= 0`` in the precision of ``x`` (``-inf``, and anything below the underflow
    floor, gives exactly 0).

    ``x = k ln2 + r`` with ``k`` rounded by the ``1.5·2^p`` trick, a polynomial in ``r`` and ``2^k``
    built from its exponent bits: straight-line arithmetic, so LLVM vectorises the element-wise loops
    that call it (a libm ``exp`` call would keep them scalar). Its only fast-math flag is ``contract``
    (fused multiply-adds: one rounding fewer, ~30% faster); ``reassoc`` would fold the rounding
    trick away, and ``nnan``/``ninf`` would break the ``-inf`` of masked logits.
    """
    raise TypeError("exp_nonpositive is only callable from jitted code")


@njit(fastmath={"contract"})
def _exp_nonpositive_32(x):
    v = x if x > _FLOOR_32 else _FLOOR_32
    k = (v * _LOG2E_32 + _ROUND_32) - _ROUND_32
    r = (v - k * _LN2_HI_32) - k * _LN2_LO_32
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    y = p * _float_from_bits(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))
    return y if x >= _FLOOR_32 else np.float32(0.0)


@njit(fastmath={"contract"})
def _exp_nonpositive_64(x):
    v = x if x > _FLOOR_64 else _FLOOR_64
    k = (v * _LOG2E_64 + _ROUND_64) - _ROUND_64
    r = (v - k * _LN2_HI_64) - k * _LN2_LO_64
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
    y = p * _float_from_bits((np.int64(k) + np.int64(1023)) << np.int64(52))
    return y if x >= _FLOOR_64 else 0.0


@overload(exp_nonpositive)
def _exp_nonpositive_overload(x):
    if x == types.float32:
        return lambda x: _exp_nonpositive_32(x)
    if isinstance(x, types.Float):
        return lambda x: _exp_nonpositive_64(x)
    return None


@njit(cache=True)
def key_end(r1, n, m, causal):
    """One past the last key any row ``< r1`` may see."""
    if not causal:
        return m
    return max(0, min(m, r1 + m - n))


@njit(cache=True)
def tile_fully_visible(r0: int, c1: int, offset: int, causal: bool, has_mask: bool) -> bool:
    """True when every key of columns ``< c1`` is visible to every row ``>= r0`` (no mask)."""
    if has_mask:
        return False
    return (not causal) or (c1 - 1 <= r0 + offset)


@njit(cache=True)
def scaled_rows(x3, idx, r0, r1, scale):
    """``scale · x3[idx, r0:r1, :]`` as a fresh C-contiguous block."""
    block = np.empty((r1 - r0, x3.shape[2]), dtype=x3.dtype)
    sigma = x3.dtype.type(scale)
    for r in range(r1 - r0):
        for c in range(x3.shape[2]):
            block[r, c] = x3[idx, r0 + r, c] * sigma
    return block


@njit(cache=True)
def hide_invisible(st, r0, c0, offset, causal, has_mask, mask3, mi):
    """Set the logits of invisible (key, row) pairs of the transposed tile ``st`` to -inf.

    ``st[c, r]`` is key ``c0 + c`` against query row ``r0 + r``.
    """
    bc, br = st.shape
    for c in range(bc):
        j = c0 + c
        if causal:
            # rows r < j − offset − r0 cannot see key j
            for r in range(min(br, max(0, j - offset - r0))):
                st[c, r] = NEG_INF
        if has_mask:
            for r in range(br):
                if mask3[mi, r0 + r, j] == 0:
                    st[c, r] = NEG_INF


@njit(cache=True)
def online_softmax_tile(st, state):
    """Turn the transposed logits ``st`` into ``pᵀ = e^{s − μ'}`` in place and advance the row state.

    ``state`` rows are ``(μ, ℓ, shift, α, tile max)``; on return ``α = e^{μ − μ'}`` (0 while the row
    has seen nothing), ``μ = μ'``, ``ℓ = α ℓ + Σ_c p`` and ``tile max`` is this tile's row max
    (``-inf`` for a row that sees none of its keys; such a row keeps its state).
    """
    bc, br = st.shape
    row_max, row_sum, shift, alpha, tile_max = state[0], state[1], state[2], state[3], state[4]
    for r in range(br):
        tile_max[r] = NEG_INF
    for c in range(bc):
        for r in range(br):
            s = st[c, r]
            tile_max[r] = s if s > tile_max[r] else tile_max[r]
    for r in range(br):
        old = row_max[r]
        new = tile_max[r] if tile_max[r] > old else old
        alpha[r] = exp_nonpositive(old - new) if old > NEG_INF else 0.0
        row_max[r] = new
        shift[r] = new if new > NEG_INF else 0.0
        row_sum[r] = row_sum[r] * alpha[r]
    for c in range(bc):
        for r in range(br):
            p = exp_nonpositive(st[c, r] - shift[r])
            st[c, r] = p
            row_sum[r] += p


@njit(cache=True)
def softmax_advance(qs, k3, ki, v3, vi, c0, c1, r0, offset, causal, has_mask, mask3, mi, st, pv, acc, state):
    """Advance one row block's online softmax over keys ``c0..c1``: two GEMMs and one exp sweep.

    ``qs`` is the scaled query block ``(rows, d_k)``; ``st`` ``(≥ c1 − c0, rows)`` and ``pv`` ``(rows, d_v)``
    are scratch; ``acc`` ``(rows, d_v)`` and ``state`` (see :func:`new_state`) are updated.
    """
    s = st[: c1 - c0]
    np.dot(k3[ki, c0:c1], qs.T, s)
    if not tile_fully_visible(r0, c1, offset, causal, has_mask):
        hide_invisible(s, r0, c0, offset, causal, has_mask, mask3, mi)
    online_softmax_tile(s, state)
    np.dot(s.T, v3[vi, c0:c1], pv)
    alpha = state[3]
    for r in range(acc.shape[0]):
        a = alpha[r]
        for c in range(acc.shape[1]):
            acc[r, c] = acc[r, c] * a + pv[r, c]


@njit(cache=True)
def new_state(rows, dtype_of):
    """Fresh online-softmax state ``(μ, ℓ, shift, α, tile max)`` as rows of one ``(5, rows)`` array."""
    state = np.zeros((5, rows), dtype=dtype_of.dtype)
    state[0, :] = NEG_INF
    return state
