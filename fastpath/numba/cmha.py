"""Numba fast path of ComplexFormer's CMHA: pointwise polar features, then the Numba softmax kernel.

Source: Shao et al. 2025 (arXiv 2505.10222v1); constants as in shaojintian/complexFormer@f91ac74. The
CMHA phase separates, ``s_ij = σ ψ(q_i)·ψ(k_j)`` with ``ψ(x) = [r cos φ | r sin φ]``,
``φ^q = δθ^q + p_i g + β`` and ``φ^k = δθ^k + p_j g`` (``r``, ``θ``: modulus and angle of the ``[re | im]``
halves, ``g_t = base^{−2t/d}``, query positions ``i + m − n``), so the pairwise ``n × m × d/2`` cosines of
the definition become one ``O(n·d)`` feature map (computed in float64) and the tiled online-softmax kernel of
:mod:`attnlab.fastpath.numba.softmax`. With per-head δ and GQA the keys are expanded to the query heads
first (their features depend on the query head's δ).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.cmha import MODULUS_EPS, check_cmha_angles, check_cmha_options
from attnlab.validation import check_last_dim, check_scale, expand_kv_heads, numba_checked


def polar_features(
    x: np.ndarray, positions: np.ndarray, delta: np.ndarray, beta: np.ndarray, base: float, eps: float
) -> np.ndarray:
    """``[r cos φ | r sin φ]`` with ``φ = δ·atan2(im, re) + p·g + β`` (float64, ``x``'s shape)."""
    d = x.shape[-1]
    half = d // 2
    re, im = x[..., :half], x[..., half:]
    phase = delta * np.arctan2(im, re) + positions[:, None] * base ** (-2.0 * np.arange(half) / d) + beta
    radius = np.sqrt(re * re + im * im + eps)
    return np.concatenate([radius * np.cos(phase), radius * np.sin(phase)], axis=-1)


def _per_head_rows(value: np.ndarray) -> np.ndarray:
    """``(d/2,)`` stays; ``(H, 1, 1, d/2)`` (the reference's pairwise layout) becomes ``(H, 1, d/2)``."""
    return value[:, 0] if value.ndim == 4 else value


@numba_checked
def cmha_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    delta: Any = None,
    beta: Any = None,
    base: float = 10000.0,
    scale: float | None = None,
    eps: float = MODULUS_EPS,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """CMHA ``O = softmax_row(s + M) V`` (same call as :func:`attnlab.reference.cmha.cmha_attention`).

    Shapes: ``q (..., H, n, d)`` (``d`` even), ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``; δ, β of
    shape ``(d/2,)`` or ``(H, d/2)``. Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    delta_a, beta_a, base_value, eps_value = check_cmha_options(qa, delta, beta, base, eps)
    check_cmha_angles(delta_a, beta_a, base_value, qa.shape[-1], qa.shape[-2] + ka.shape[-2])
    sigma = check_scale(scale, 1.0)
    slopes, offsets = _per_head_rows(delta_a), _per_head_rows(beta_a)
    if slopes.ndim > 1 and qa.ndim >= 3 and ka.shape[-3] != qa.shape[-3]:
        qa, ka, va = expand_kv_heads(qa, ka, va)
    n, m = qa.shape[-2], ka.shape[-2]
    x64, y64 = qa.astype(np.float64), ka.astype(np.float64)
    psi_q = polar_features(x64, np.arange(n) + (m - n), slopes, offsets, base_value, eps_value).astype(dtype)
    psi_k = polar_features(y64, np.arange(m), slopes, np.zeros_like(offsets), base_value, eps_value).astype(dtype)
    return softmax_attention(psi_q, psi_k, va, scale=sigma, causal=causal, mask=mask)
