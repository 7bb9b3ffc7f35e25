"""Generalized Neighborhood Attention (GNA; Hassani et al. 2025): sliding-window, strided and blocked attention.

Source: Ali Hassani et al., "Generalized Neighborhood Attention: Multi-dimensional Sparse Attention at
the Speed of Light", 2025, arXiv 2504.16922 (abstract and method: GNA adds a stride to neighborhood attention; stride 1
is neighborhood attention, stride = kernel is blocked attention); mask semantics as in the NATTEN
project's Flex-attention mask (SHI-Labs/NATTEN, ``backends/flex.py``), which the paper's kernels
implement.

Tokens lie on a grid ``spatial_shape = (L_1, …, L_D)`` (row-major; ``n = Π L_a``). Key ``j`` is visible
to query ``i`` iff it is visible along every axis. Along one axis of length ``L`` with kernel ``k``,
stride ``s`` and dilation ``δ``, positions are grouped by residue ``r = i mod δ`` (only keys of the same
residue are visible); inside a group ``i' = ⌊i/δ⌋`` and the group has ``L' = ⌈(L − r)/δ⌉`` positions.

* Non-causal: the stride-group leader ``ℓ = min(⌊i'/s⌋ s + ⌊s/2⌋, L' − 1)`` (right of centre for even
  ``s``) is clamped to a window centre ``c = clamp(ℓ, ⌊k/2⌋, L' − 1 − (⌊k/2⌋ + (k mod 2) − 1))``; visible
  iff ``−⌊k/2⌋ <= j' − c <= ⌊k/2⌋ + (k mod 2) − 1``. Every query sees exactly ``k`` keys per axis, and
  the queries of one stride group share them.
* Causal: ``ℓ = min(⌊i'/s⌋ s + s − 1, L' − 1)``; visible iff ``j' <= i'`` and ``ℓ − j' < k``.

Special cases: ``s = δ = 1`` is neighborhood attention; ``s = k`` dividing ``L`` is blocked attention;
``k = L`` is full attention; causal with ``s = 1`` is the sliding window ``i − k < j <= i``. Softmax
attention (scale ``σ``, default ``d_k^{-1/2}``) then runs on the visible keys, ANDed with an optional
boolean ``mask``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import overflow_checked


def _per_axis(name: str, value: Any, axes: int, *, flags: bool = False) -> tuple[Any, ...]:
    """``value`` (one, or one per axis) as a tuple of ints, or of bools with ``flags``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes
    if len(values) != axes:
        raise ValueError(f"{name}: expected one value or one per axis of spatial_shape ({axes}), got {len(values)}")
    for v in values:
        if flags:
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name}: expected True/False (or one per axis), got {v!r}")
        elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected a positive int (or one per axis), got {v!r}")
    return tuple(bool(v) if flags else int(v) for v in values)


def check_window(
    spatial_shape: Any, n: int, kernel_size: Any, stride: Any, dilation: Any, causal: Any
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]:
    """Validated ``(spatial_shape, kernel_size, stride, dilation, causal)``, one entry per axis."""
    if spatial_shape is None:
        spatial = (n,)
    else:
        if isinstance(spatial_shape, (int, np.integer)):
            spatial_shape = (spatial_shape,)
        if not isinstance(spatial_shape, (tuple, list)) or not spatial_shape:
            raise TypeError(f"spatial_shape: expected a tuple of positive ints, got {spatial_shape!r}")
        spatial = _per_axis("spatial_shape", tuple(spatial_shape), len(spatial_shape))
        if any(x < 1 for x in spatial) or math.prod(spatial) != n:
            raise ValueError(
                f"spatial_shape: expected positive sizes whose product is the token count {n}, got {spatial}"
            )
    axes = len(spatial)
    kernel = _per_axis("kernel_size", kernel_size, axes)
    strides = _per_axis("stride", stride, axes)
    dilations = _per_axis("dilation", dilation, axes)
    causal_axes = _per_axis("causal", causal, axes, flags=True)
    for a, (length, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations)):
        if k < 1 or d < 1 or k * d > length:
            raise ValueError(
                f"kernel_size: expected 1 <= kernel_size * dilation <= {length} on axis {a}, "
                f"got kernel {k}, dilation {d}"
            )
        if not 1 <= s <= k:
            raise ValueError(f"stride: expected 1 <= stride <= kernel_size ({k}) on axis {a}, got {s}")
    return spatial, kernel, strides, dilations, causal_axes


def axis_visibility(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> np.ndarray:
    """``(L, L)`` booleans: along one axis, position ``j`` is visible to position ``i``."""
    i = np.arange(length)[:, None]
    j = np.arange(length)[None, :]
    residue = i % dilation
    same = residue == j % dilation
    ip, jp = i // dilation, j // dilation
    group = (length - residue + dilation - 1) // dilation
    if causal:
        leader = np.minimum((ip // stride) * stride + stride - 1, group - 1)
        return same & (jp <= ip) & (leader - jp < kernel)
    left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
    leader = (ip // stride) * stride + stride // 2
    centre = np.minimum(np.maximum(leader, left), group - 1 - right)
    return same & (jp - centre >= -left) & (jp - centre <= right)


def gna_visibility(
    spatial_shape: Sequence[int],
    *,
    kernel_size: Any,
    stride: Any = 1,
    dilation: Any = 1,
    causal: Any = False,
) -> np.ndarray:
    """``(n, n)`` booleans over row-major grid tokens: the AND of :func:`axis_visibility` over the axes."""
    n = math.prod(spatial_shape)
    spatial, kernel, strides, dilations, causal_axes = check_window(
        spatial_shape, n, kernel_size, stride, dilation, causal
    )
    coords = np.stack(np.unravel_index(np.arange(n), spatial), axis=-1)
    visible = np.ones((n, n), dtype=bool)
    for a, length in enumerate(spatial):
        table = axis_visibility(length, kernel[a], strides[a], dilations[a], causal_axes[a])
        visible &= table[coords[:, a][:, None], coords[:, a][None, :]]
    return visible


@overflow_checked
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
    """Generalized neighborhood attention: softmax attention over each query's GNA window.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, n, d_k)``; v: ``(..., H_kv, n, d_v)``: one token grid
            (query head ``h`` reads KV head ``h // (H / H_kv)``).
        kernel_size: window size per axis (an int for every axis, or a tuple).
        spatial_shape: the grid ``(L_1, …, L_D)``, row-major, ``Π L_a = n`` (default ``(n,)``).
        stride: 1 <= stride <= kernel_size per axis (1: neighborhood attention; kernel_size: blocked).
        dilation: per axis, with ``kernel_size · dilation <= L``.
        causal: per axis (or one flag for all): keys at or before the query along that axis only.
        scale: σ, default ``d_k ** -0.5``.
        mask: boolean, broadcastable to ``(..., n, n)``; ANDed with the window. True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; a query with no visible key returns zeros.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=False, mask=mask)
    n, m = qa.shape[-2], ka.shape[-2]
    if n != m:
        raise ValueError(f"q/k: neighborhood attention needs one token grid, got n={n} queries and m={m} keys")
    spatial, kernel, strides, dilations, causal_axes = check_window(
        spatial_shape, n, kernel_size, stride, dilation, causal
    )
    window = gna_visibility(spatial, kernel_size=kernel, stride=strides, dilation=dilations, causal=causal_axes)
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    return masked_softmax(scores, allowed & window) @ va
