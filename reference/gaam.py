"""Gaussian Adaptive Attention (GAAM): features re-weighted by learnable Gaussians of their normalised values.

Source: Ioannides, Chadha & Elkins 2024, "Gaussian Adaptive Attention is All You Need: Robust Contextual
Representations Across Multiple Modalities" (arXiv 2401.11143); released code gioannides/Gaussian-Adaptive-Attention
(``GaussianBlock.py``: ``GaussianAdaptiveAttention``, ``MultiHeadGaussianAdaptiveAttention``). Not a query–key
mechanism: along one axis of ``x`` (``axis``), split into ``H`` contiguous head chunks (size ``L // H``, the last
chunk taking the remainder), each chunk is re-weighted by its own ``G`` Gaussians:

    μ = mean(x),  σ² = var(x) + ε   (over the chunk, unbiased variance),
    y_g = (x − (μ + δ_g)) / σ,      N_g = exp(−y_g² / (2 c_g²)) / √(2π c_g²),
    w = Π_g N_g,   w ← w / max(Σ_chunk w, ε),   out = x ⊙ w.

Entries equal to ``padding_value`` count as zeros in ``μ`` and ``σ²`` (the count is not reduced), take part in
the normalising sum, and pass through unchanged. A GAAM layer in the paper's block is used residually
(``x + GAAM(x)``); that sum is outside the operator. The code multiplies the head's Gaussians (``combine="product"``,
the default): a product of Gaussians in ``y`` is one Gaussian, so each head's weight is unimodal. The abstract's
"mixture" reading, the average ``(1/G) Σ_g N_g``, is offered as ``combine="mean"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.validation import as_float_array, check_real, overflow_checked

COMBINES = ("product", "mean")
DEFAULT_EPS = 1e-8


def head_chunks(length: int, heads: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each head along the axis: ``L // H`` entries each, the remainder to the last head."""
    size = length // heads
    return [(h * size, (h + 1) * size if h < heads - 1 else length) for h in range(heads)]


def chunk_moments(x: np.ndarray, keep: np.ndarray | None, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(μ, σ)`` of one chunk along the last axis; padded entries count as zeros."""
    values = x if keep is None else np.where(keep, x, 0.0)
    mean = values.mean(axis=-1, keepdims=True)
    var = values.var(axis=-1, ddof=1, keepdims=True) + eps
    return mean, np.sqrt(var)


def gaussian_product(
    x: np.ndarray, mean: np.ndarray, sigma: np.ndarray, offsets: np.ndarray, scales: np.ndarray, combine: str
) -> np.ndarray:
    """``Π_g N_g`` (or their mean) with ``y_g = (x − (μ + δ_g))/σ``: the offsets are in the units of ``x``."""
    parts = [
        np.exp(-(((x - (mean + delta)) / sigma) ** 2) / (2.0 * c * c)) / np.sqrt(2.0 * np.pi * c * c)
        for delta, c in zip(offsets, scales)
    ]
    if combine == "mean":
        return np.mean(parts, axis=0)
    out = parts[0]
    for part in parts[1:]:
        out = out * part
    return out


def normalise(weights: np.ndarray, eps: float) -> np.ndarray:
    """``w / max(Σ w, ε)`` along the last axis."""
    return weights / np.maximum(weights.sum(axis=-1, keepdims=True), eps)


def check_options(ndim: int, axis: Any, eps: Any, padding_value: Any, combine: Any) -> tuple[int, float]:
    """Validated ``(axis, ε)`` for an input of ``ndim`` dims; ``padding_value`` and ``combine`` checked."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an axis of x (ndim {ndim}), got {axis}")
    if (
        isinstance(eps, (bool, np.bool_))
        or not isinstance(eps, (int, float, np.number))
        or not (np.isfinite(eps) and eps > 0)
    ):
        raise ValueError(f"eps: expected a positive finite float, got {eps!r}")
    if padding_value is not None:  # a NaN or infinite padding value can never match a (finite) entry
        check_real("padding_value", padding_value, what="a finite float or None")
    if combine not in COMBINES:
        raise ValueError(f"combine: expected one of {COMBINES}, got {combine!r}")
    return int(axis), float(eps)


def check_heads(offsets_shape: tuple[int, ...], scales_shape: tuple[int, ...], length: int, axis: int) -> int:
    """The head count, after checking the parameter shapes and that every head gets >= 2 entries."""
    if offsets_shape != scales_shape:
        raise ValueError(
            f"mean_offsets/scales: expected the same (heads, gaussians) shape, got {offsets_shape} and {scales_shape}"
        )
    heads = offsets_shape[0]
    if length // heads < 2:
        raise ValueError(
            f"x: expected at least 2 entries per head along axis {axis} (an unbiased variance needs 2), "
            f"got length {length} for {heads} heads"
        )
    return heads


def _validate(x: Any, mean_offsets: Any, scales: Any, axis: Any, eps: Any, padding_value: Any, combine: Any):
    x = as_float_array("x", x)
    offsets = as_float_array("mean_offsets", mean_offsets, ndim=2)
    c = as_float_array("scales", scales, ndim=2)
    if np.any(c == 0):
        raise ValueError("scales: every c_g must be non-zero (N_g divides by c_g²)")
    axis, eps = check_options(x.ndim, axis, eps, padding_value, combine)
    check_heads(offsets.shape, c.shape, x.shape[axis], axis)
    return np.moveaxis(x, axis, -1), offsets, c, axis, eps


def gaussian_adaptive_weights(
    x: Any,
    mean_offsets: Any,
    scales: Any,
    *,
    axis: int = -1,
    eps: float = DEFAULT_EPS,
    padding_value: float | None = None,
    combine: str = "product",
) -> np.ndarray:
    """The weights ``w`` (same shape as ``x``) of :func:`gaussian_adaptive_attention`."""
    xt, offsets, c, axis, eps = _validate(x, mean_offsets, scales, axis, eps, padding_value, combine)
    keep = None if padding_value is None else xt != padding_value
    weights = np.empty_like(xt)
    for h, (start, stop) in enumerate(head_chunks(xt.shape[-1], offsets.shape[0])):
        chunk = xt[..., start:stop]
        mean, sigma = chunk_moments(chunk, None if keep is None else keep[..., start:stop], eps)
        weights[..., start:stop] = normalise(gaussian_product(chunk, mean, sigma, offsets[h], c[h], combine), eps)
    return np.moveaxis(weights, -1, axis)


@overflow_checked
def gaussian_adaptive_attention(
    x: Any,
    mean_offsets: Any,
    scales: Any,
    *,
    axis: int = -1,
    eps: float = DEFAULT_EPS,
    padding_value: float | None = None,
    combine: str = "product",
) -> np.ndarray:
    """Multi-head Gaussian adaptive attention ``out = x ⊙ w`` (padded entries pass through).

    Args:
        x: features, at least 2-d (e.g. ``(batch, tokens, features)``).
        mean_offsets: ``δ``, shape ``(heads, gaussians)``: the offsets of each head's Gaussian means.
        scales: ``c``, shape ``(heads, gaussians)``, non-zero: each Gaussian's width in units of the chunk's σ.
        axis: the axis the chunks, moments and normalisation run along.
        eps: added to the variance and the floor of the normalising sum (1e-8 as in the code); positive.
        padding_value: entries equal to it are padding (None: no padding).
        combine: ``"product"`` (the code) or ``"mean"`` (an equal-weight mixture).

    Returns:
        An array shaped like ``x``.
    """
    weights = gaussian_adaptive_weights(
        x, mean_offsets, scales, axis=axis, eps=eps, padding_value=padding_value, combine=combine
    )
    xa = as_float_array("x", x)
    out = xa * weights
    return out if padding_value is None else np.where(xa != padding_value, out, xa)
