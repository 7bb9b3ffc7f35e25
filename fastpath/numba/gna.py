"""Numba fast path of generalized neighborhood attention (and any windowed softmax attention).

The flash-style softmax kernel of :mod:`attnlab.fastpath.numba.softmax` restricted to windows
(Hassani et al. 2025, arXiv 2504.16922; NATTEN mask semantics, see :mod:`attnlab.reference.gna`):
each query row carries the flat key range ``[row_lo, row_hi)`` that contains its window, a row block
sweeps only the union of its rows' ranges in key tiles, and inside a tile the invisible pairs (outside
a row's range, of another dilation residue, outside the window along some grid axis, or masked) are set
to ``-inf`` before the shared online-softmax update. The two products per tile go through BLAS, as in
the dense kernel; nothing of size ``n·m`` is formed. :func:`windowed_attention` is the entry point for
windows given directly as contiguous ranges (BASED's sliding window).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays, mask_slices, poisoned
from attnlab.fastpath.numba._kernels import NEG_INF, new_state, online_softmax_tile, scaled_rows
from attnlab.reference.gna import check_window
from attnlab.validation import check_last_dim, check_scale, numba_checked

#: Query rows per task and keys per tile: windows are narrow, so both are smaller than the dense kernel's.
WINDOW_ROWS = 32
WINDOW_COLS = 64

_NO_AXES = np.zeros((0, 3), dtype=np.int64)
_NO_BOUNDS = np.zeros((0, 1, 3), dtype=np.int64)


@njit(cache=True)
def _visible(i, j, row_lo, row_hi, axes, bounds, exact):
    if j < row_lo[i] or j >= row_hi[i]:
        return False
    if exact:
        return True
    for a in range(axes.shape[0]):
        length, step, dilation = axes[a, 0], axes[a, 1], axes[a, 2]
        ci = (i // step) % length
        cj = (j // step) % length
        if cj % dilation != bounds[a, ci, 0]:
            return False
        jp = cj // dilation
        if jp < bounds[a, ci, 1] or jp > bounds[a, ci, 2]:
            return False
    return True


@njit(cache=True)
def _hide_outside(st, r0, c0, row_lo, row_hi, axes, bounds, exact, has_mask, mask3, mi):
    bc, br = st.shape
    for c in range(bc):
        j = c0 + c
        for r in range(br):
            i = r0 + r
            if not _visible(i, j, row_lo, row_hi, axes, bounds, exact) or (has_mask and mask3[mi, i, j] == 0):
                st[c, r] = NEG_INF


@njit(cache=True, parallel=True)
def windowed_forward(
    q3, k3, v3, q_map, kv_map, row_lo, row_hi, axes, bounds, exact, mask3, mask_map, has_mask, scale, out
):
    """``out[b, i] = Σ_{j visible} softmax_j(scale · q_i·k_j) v_j`` over each row's window; 0 where none."""
    slices, n = out.shape[0], out.shape[1]
    dv = v3.shape[2]
    blocks = (n + WINDOW_ROWS - 1) // WINDOW_ROWS
    for task in prange(slices * blocks):
        b = task // blocks
        r0 = (task % blocks) * WINDOW_ROWS
        r1 = min(n, r0 + WINDOW_ROWS)
        br = r1 - r0
        lo, hi = k3.shape[1], 0
        for i in range(r0, r1):
            if row_hi[i] > row_lo[i]:
                lo = min(lo, row_lo[i])
                hi = max(hi, row_hi[i])
        qs = scaled_rows(q3, q_map[b], r0, r1, scale)
        st = np.empty((WINDOW_COLS, br), dtype=v3.dtype)
        pv = np.empty((br, dv), dtype=v3.dtype)
        acc = np.zeros((br, dv), dtype=v3.dtype)
        state = new_state(br, v3)
        for c0 in range(lo, hi, WINDOW_COLS):
            c1 = min(hi, c0 + WINDOW_COLS)
            s = st[: c1 - c0]
            np.dot(k3[kv_map[b], c0:c1], qs.T, s)
            _hide_outside(s, r0, c0, row_lo, row_hi, axes, bounds, exact, has_mask, mask3, mask_map[b])
            online_softmax_tile(s, state)
            np.dot(s.T, v3[kv_map[b], c0:c1], pv)
            alpha = state[3]
            for r in range(br):
                for c in range(dv):
                    acc[r, c] = acc[r, c] * alpha[r] + pv[r, c]
        row_sum = state[1]
        for r in range(br):
            inv = 1.0 / row_sum[r] if row_sum[r] > 0.0 else 0.0
            for c in range(dv):
                out[b, r0 + r, c] = acc[r, c] * inv


def _run(
    q: Any,
    k: Any,
    v: Any,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    axes: np.ndarray,
    bounds: np.ndarray,
    exact: bool,
    *,
    scale: Any,
    mask: Any,
) -> np.ndarray:
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    mask3, mask_map, has_mask, _ = mask_slices(mask, n, m, lead, causal=False)
    out = poisoned((len(q_map), n, dv), dtype)
    windowed_forward(
        as_slices(qa),
        as_slices(ka),
        as_slices(va),
        q_map,
        kv_map,
        row_lo,
        row_hi,
        axes,
        bounds,
        exact,
        mask3,
        mask_map,
        has_mask,
        sigma,
        out,
    )
    return out.reshape(*lead, n, dv)


def windowed_attention(
    q: Any, k: Any, v: Any, row_lo: Any, row_hi: Any, *, scale: float | None = None, mask: Any = None
) -> np.ndarray:
    """Softmax attention of each query ``i`` over the contiguous keys ``row_lo[i] <= j < row_hi[i]`` (and the mask).

    ``q (..., H, n, d_k)``, ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; ``row_lo``, ``row_hi``
    int arrays of length ``n``. Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    lo = np.ascontiguousarray(row_lo, dtype=np.int64)
    hi = np.ascontiguousarray(row_hi, dtype=np.int64)
    return _run(q, k, v, lo, hi, _NO_AXES, _NO_BOUNDS, True, scale=scale, mask=mask)


def _axis_bounds(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> np.ndarray:
    """``(L, 3)``: each position's residue and inclusive window ``[lo, hi]`` in dilated coordinates."""
    i = np.arange(length)
    residue = i % dilation
    ip = i // dilation
    group = (length - residue + dilation - 1) // dilation
    if causal:
        leader = np.minimum((ip // stride) * stride + stride - 1, group - 1)
        return np.stack([residue, np.maximum(leader - kernel + 1, 0), ip], axis=-1)
    left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
    leader = np.minimum((ip // stride) * stride + stride // 2, group - 1)
    centre = np.minimum(np.maximum(leader, left), group - 1 - right)
    return np.stack([residue, centre - left, centre + right], axis=-1)


@numba_checked
def gna_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    kernel_size: Any,
    spatial_shape: Any = None,
    stride: Any = 1,
    dilation: Any = 1,
    causal: Any = False,
    scale: float | None = None,
    mask: Any = None,
) -> np.ndarray:
    """Generalized neighborhood attention (same call as :func:`attnlab.reference.gna.gna_attention`).

    Returns ``(..., H, n, d_v)`` in the input float dtype; a query with no visible key returns zeros.
    """
    q, k, v = float_arrays(("q", "k", "v"), (q, k, v), fast_dtype(q, k, v))
    n, m = q.shape[-2], k.shape[-2]
    if n != m:
        raise ValueError(f"q/k: neighborhood attention needs one token grid, got n={n} queries and m={m} keys")
    spatial, kernel, strides, dilations, causal_axes = check_window(
        spatial_shape, n, kernel_size, stride, dilation, causal
    )
    axes = np.zeros((len(spatial), 3), dtype=np.int64)
    bounds = np.zeros((len(spatial), max(spatial), 3), dtype=np.int64)
    flat = np.arange(math.prod(spatial))
    row_lo = np.zeros(flat.shape, dtype=np.int64)
    row_hi = np.ones(flat.shape, dtype=np.int64)
    step = math.prod(spatial)
    for a, length in enumerate(spatial):
        step //= length
        table = _axis_bounds(length, kernel[a], strides[a], dilations[a], causal_axes[a])
        axes[a] = (length, step, dilations[a])
        bounds[a, :length] = table
        coord = (flat // step) % length
        row_lo += (table[coord, 1] * dilations[a] + table[coord, 0]) * step
        row_hi += (table[coord, 2] * dilations[a] + table[coord, 0]) * step
    exact = len(spatial) == 1 and dilations[0] == 1
    return _run(q, k, v, row_lo, row_hi, axes, bounds, exact, scale=scale, mask=mask)
