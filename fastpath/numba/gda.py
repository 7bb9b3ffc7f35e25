"""Numba fast path of Grouped Differential Attention: two flash-style softmax calls, value width ``2 d_v``.

Source: Lim et al., "Grouped Differential Attention", 2025 (arXiv 2510.06949), head layout of vLLM's
grouped differential attention backend. The signal heads attend over ``K1`` and the noise heads over
``K2`` with :func:`attnlab.fastpath.numba.softmax.softmax_attention` (GQA by index maps, value
``[V1 ‖ V2]``); each noise output is computed once and reused by its group's ``r`` signal heads. Same
call as :func:`attnlab.reference.gda.gda_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.gda import RMS_EPS, check_float, check_layout, share_noise, split_kv_pairs, split_query_heads
from attnlab.validation import allowed_positions, as_float_array, check_bool, numba_checked


@dataclass(frozen=True)
class Layout:
    """A validated GDA call in one float dtype: the branch inputs and the options."""

    signal_q: np.ndarray
    noise_q: np.ndarray
    k1: np.ndarray
    k2: np.ndarray
    values: np.ndarray
    signal_mask: np.ndarray | None
    noise_mask: np.ndarray | None
    causal: bool
    ratio: int
    lam: float
    factor: float
    norm: bool
    weight: np.ndarray
    eps: float
    scale: float | None
    dtype: np.dtype


def prepare(
    q: Any,
    k: Any,
    v: Any,
    *,
    ratio: Any,
    lam: Any,
    lam_init: Any,
    norm: Any,
    norm_weight: Any,
    eps: Any,
    scale: Any,
    causal: Any,
    mask: Any,
) -> Layout:
    """Validate a call (the reference's checks and messages) and split it into the two branches."""
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    for name, arr in (("q", qa), ("k", ka), ("v", va)):
        if arr.ndim < 3:
            raise ValueError(f"{name}: expected at least 3 dims laid out (..., heads, n, d), got shape {arr.shape}")
    r, _, _ = check_layout(qa, ka, ratio)
    if ka.shape[:-1] != va.shape[:-1]:
        raise ValueError(f"k/v: expected the same leading dims and length (..., m, *), got k{ka.shape} and v{va.shape}")
    lam_value = check_float("lam", lam)
    factor = 1.0 if lam_init is None else 1.0 - check_float("lam_init", lam_init)
    apply_norm = check_bool("norm", norm)
    eps_value = check_float("eps", eps, minimum=0.0)
    d_out = 2 * va.shape[-1]
    if norm_weight is None:
        weight = np.ones(d_out, dtype=dtype)
    else:
        with precision(dtype):
            weight = as_float_array("norm_weight", norm_weight, min_ndim=1, ndim=1)
    if weight.shape != (d_out,):
        raise ValueError(f"norm_weight: expected shape ({d_out},) (2 d_v, the output width), got {weight.shape}")
    causal = check_bool("causal", causal)
    signal_mask = noise_mask = None
    if mask is not None:
        allowed = allowed_positions(qa.shape[-2], ka.shape[-2], causal=False, mask=mask, lead=qa.shape[:-2])
        signal_mask = noise_mask = allowed
        if allowed.ndim >= 3 and allowed.shape[-3] == qa.shape[-3] > 1:
            signal_mask, noise_mask = split_query_heads(allowed, r)
    signal_q, noise_q = split_query_heads(qa, r)
    k1, k2 = split_kv_pairs(ka)
    v1, v2 = split_kv_pairs(va)
    values = np.concatenate([v1, v2], axis=-1)
    return Layout(
        signal_q,
        noise_q,
        k1,
        k2,
        values,
        signal_mask,
        noise_mask,
        causal,
        r,
        lam_value,
        factor,
        apply_norm,
        weight,
        eps_value,
        scale,
        dtype,
    )


def branches(c: Layout) -> tuple[np.ndarray, np.ndarray]:
    """``(O1, O2)``: the signal heads' and the noise heads' attention outputs of width ``2 d_v``."""
    signal = softmax_attention(c.signal_q, c.k1, c.values, scale=c.scale, causal=c.causal, mask=c.signal_mask)
    noise = softmax_attention(c.noise_q, c.k2, c.values, scale=c.scale, causal=c.causal, mask=c.noise_mask)
    return signal, noise


def inverse_rms(z: np.ndarray, eps: float) -> np.ndarray:
    """``1 / sqrt(mean(z²) + ε)`` per row, 0 where that mean is 0 (a row with no visible key)."""
    mean_square = np.mean(z * z, axis=-1, keepdims=True) + eps
    positive = mean_square > 0.0
    return np.where(positive, 1.0 / np.sqrt(np.where(positive, mean_square, 1.0)), 0.0).astype(z.dtype, copy=False)


@numba_checked
def gda_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    ratio: int,
    lam: float,
    lam_init: float | None = None,
    norm: bool = True,
    norm_weight: Any = None,
    eps: float = RMS_EPS,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Grouped differential attention ``O_i = (1 − λ_init) subln(O1_i − λ O2_{⌊i/r⌋})``.

    Args and shapes as :func:`attnlab.reference.gda.gda_attention`. Returns ``(..., H₁, n, 2 d_v)`` in the
    input float dtype (float32 stays float32).
    """
    c = prepare(
        q,
        k,
        v,
        ratio=ratio,
        lam=lam,
        lam_init=lam_init,
        norm=norm,
        norm_weight=norm_weight,
        eps=eps,
        scale=scale,
        causal=causal,
        mask=mask,
    )
    signal, noise = branches(c)
    z = signal - c.dtype.type(c.lam) * share_noise(noise, c.ratio)
    if c.norm:
        z = z * inverse_rms(z, c.eps) * c.weight
    return np.ascontiguousarray(c.dtype.type(c.factor) * z, dtype=c.dtype)
