"""Numba fast paths of tensor (Kronecker) attention and its polynomial-method approximation.

Sources: Alman & Song, "How to Capture Higher-order Correlations? Generalizing Matrix Softmax
Attention to Kronecker Computation", ICLR 2024 (arXiv 2310.04064).

Exact form: one task per query ``i``; the pair logits are a single GEMM
``S_i = (K1 ⊙ σq_i) K2ᵀ`` over the visible key ranges (``O(m1·m2)`` memory, never the ``n·m1·m2``
logits), softmax over the whole matrix, and ``o_i = Σ_j v1_j ∘ (P_i V2)_j`` — a second GEMM. The
key ranges are contiguous (``[lo1, hi1) × [lo2, hi2)``), which also serves causal and windowed
2-simplicial attention (:mod:`.simplicial`).

Polynomial method: ``exp`` is replaced by its degree-``g`` Taylor polynomial, which factors through
``r = C(d+g, g)`` monomial features, so ``T̃ = U[(W1ᵀ[V1 1]) ∘ (W2ᵀ[V2 1])]`` costs
``O((n + m1 + m2)·r·d_v)``: linear in the sequence length. Monomials are built one multiply each
from their parent monomial (graded order of :func:`attnlab.reference.tensor_poly.taylor_multi_indices`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, batch_map, fast_dtype, float_arrays, numba_checked, poisoned
from attnlab.fastpath.numba._kernels import NEG_INF
from attnlab.reference.tensor import check_pair_magnitudes
from attnlab.reference.tensor_poly import _check_degree, taylor_coefficients, taylor_multi_indices
from attnlab.validation import (
    broadcast_batch,
    check_bool,
    check_last_dim,
    check_same_length,
    check_scale,
)

_NAMES = ("q", "k1", "k2", "v1", "v2")


@njit(cache=True, fastmath=False)
def _rows(x3, idx, r0, r1):
    block = np.empty((r1 - r0, x3.shape[2]), dtype=x3.dtype)
    for r in range(r1 - r0):
        for c in range(x3.shape[2]):
            block[r, c] = x3[idx, r0 + r, c]
    return block


@njit(cache=True, fastmath=False, parallel=True)
def pair_attention_forward(q3, k13, k23, v13, v23, maps, scale, causal, window1, window2, out):
    """``o_i = Σ_{(j,k) visible} softmax(σ Σ_l q_il k1_jl k2_kl) (v1_j ∘ v2_k)``.

    Visible pairs: all (``causal`` False), else ``j ∈ (i − window1, i]`` and ``k ∈ (i − window2, i]``
    (window ``n`` or more: plain causal). ``maps[a, b]`` is the slice of input ``a`` for batch ``b``.
    """
    slices, n, dv = out.shape
    m1, m2, d = k13.shape[1], k23.shape[1], q3.shape[2]
    for task in prange(slices * n):
        b = task // n
        i = task % n
        qi, k1i, k2i, v1i, v2i = maps[0, b], maps[1, b], maps[2, b], maps[3, b], maps[4, b]
        lo1, hi1, lo2, hi2 = 0, m1, 0, m2
        if causal:
            lo1, hi1 = max(0, i - window1 + 1), i + 1
            lo2, hi2 = max(0, i - window2 + 1), i + 1
        keys1 = np.empty((hi1 - lo1, d), dtype=q3.dtype)
        for j in range(hi1 - lo1):
            for c in range(d):
                keys1[j, c] = k13[k1i, lo1 + j, c] * (q3[qi, i, c] * scale)
        logits = np.dot(keys1, _rows(k23, k2i, lo2, hi2).T)
        peak = NEG_INF
        for j in range(logits.shape[0]):
            for k in range(logits.shape[1]):
                peak = max(peak, logits[j, k])
        total = 0.0
        for j in range(logits.shape[0]):
            for k in range(logits.shape[1]):
                p = math.exp(logits[j, k] - peak)
                logits[j, k] = p
                total += p
        mixed = np.dot(logits, _rows(v23, v2i, lo2, hi2))  # (P V2)_j
        inv = 1.0 / total
        for c in range(dv):
            acc = 0.0
            for j in range(hi1 - lo1):
                acc += v13[v1i, lo1 + j, c] * mixed[j, c]
            out[b, i, c] = acc * inv


def prepare_pair_inputs(
    q: Any, k1: Any, k2: Any, v1: Any, v2: Any
) -> tuple[list[np.ndarray], tuple[int, ...], np.ndarray]:
    """Validate the five arrays as the reference does; return them, the batch shape and the index maps."""
    dtype = fast_dtype(q, k1, k2, v1, v2)
    arrays = float_arrays(_NAMES, (q, k1, k2, v1, v2), dtype)
    qa, k1a, k2a, v1a, v2a = arrays
    d = qa.shape[-1]
    check_last_dim("k1", k1a, d, "d, the last axis of q")
    check_last_dim("k2", k2a, d, "d, the last axis of q")
    check_last_dim("v2", v2a, v1a.shape[-1], "d_v, the last axis of v1")
    check_same_length(("k1", "v1"), (k1a, v1a))
    check_same_length(("k2", "v2"), (k2a, v2a))
    lead = broadcast_batch(_NAMES, arrays)
    maps = np.stack([batch_map(a.shape[:-2], lead) for a in arrays])
    return arrays, lead, maps


def run_pair_attention(
    arrays: list[np.ndarray], lead: tuple[int, ...], maps: np.ndarray, sigma: float, causal: bool, w1: int, w2: int
) -> np.ndarray:
    qa, v1a = arrays[0], arrays[3]
    n, dv = qa.shape[-2], v1a.shape[-1]
    out = poisoned((maps.shape[1], n, dv), qa.dtype)
    q3, k13, k23, v13, v23 = (as_slices(a) for a in arrays)
    pair_attention_forward(q3, k13, k23, v13, v23, maps, sigma, causal, w1, w2, out)
    return out.reshape(*lead, n, dv)


@numba_checked
def tensor_attention(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
) -> np.ndarray:
    """Tensor attention ``Att = D⁻¹ exp(σ Q (K₁⊘K₂)ᵀ) (V₁⊘V₂)`` over all key pairs.

    Same call as :func:`attnlab.reference.tensor_attention`: ``q (..., n, d)``, ``k1, v1 (..., m1, ·)``,
    ``k2, v2 (..., m2, ·)``; σ defaults to ``1/d``; ``causal`` keeps pairs with ``j, k <= i`` (needs
    ``n == m1 == m2``). Returns ``(..., n, d_v)`` in the input float dtype.
    """
    arrays, lead, maps = prepare_pair_inputs(q, k1, k2, v1, v2)
    qa, k1a, k2a = arrays[:3]
    sigma = check_scale(scale, 1.0 / qa.shape[-1])
    causal = check_bool("causal", causal)
    n, m1, m2 = qa.shape[-2], k1a.shape[-2], k2a.shape[-2]
    if causal and not (n == m1 == m2):
        raise ValueError(f"q/k1/k2: causal tensor attention needs n == m1 == m2, got {n}, {m1}, {m2}")
    check_pair_magnitudes(arrays, sigma, qa.dtype)
    return run_pair_attention(arrays, lead, maps, sigma, causal, n, n)


# ---------------------------------------------------------------------------------------------
# polynomial method


def _monomial_plan(d: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Parent index and last variable of each multi-index (graded order): ``x^α = x^{parent} · x_last``."""
    alphas = taylor_multi_indices(d, degree)
    position = {tuple(a): idx for idx, a in enumerate(alphas.tolist())}
    parents = np.zeros(len(alphas), dtype=np.int64)
    last = np.zeros(len(alphas), dtype=np.int64)
    for idx, alpha in enumerate(alphas.tolist()):
        nonzero = [var for var, power in enumerate(alpha) if power]
        if nonzero:
            last[idx] = nonzero[-1]
            parent = list(alpha)
            parent[last[idx]] -= 1
            parents[idx] = position[tuple(parent)]
    return parents, last


@njit(cache=True, fastmath=False)
def _monomials(x3, idx, r0, r1, parents, last, coeffs):
    """``coeffs_α · x^α`` for rows ``r0..r1`` of slice ``idx``: ``(r1 − r0, r)``."""
    rank = parents.shape[0]
    feats = np.empty((r1 - r0, rank), dtype=x3.dtype)
    for r in range(r1 - r0):
        feats[r, 0] = 1.0
        for a in range(1, rank):
            feats[r, a] = feats[r, parents[a]] * x3[idx, r0 + r, last[a]]
    for r in range(r1 - r0):
        for a in range(rank):
            feats[r, a] *= coeffs[a]
    return feats


@njit(cache=True, fastmath=False)
def _key_summary(k3, v3, ki, vi, parents, last, ones, chunk):
    """``Wᵀ [V | 1]`` (``r × (d_v + 1)``), streaming the keys in chunks."""
    m, dv = k3.shape[1], v3.shape[2]
    summary = np.zeros((parents.shape[0], dv + 1), dtype=k3.dtype)
    for r0 in range(0, m, chunk):
        r1 = min(m, r0 + chunk)
        values = np.empty((r1 - r0, dv + 1), dtype=v3.dtype)
        for r in range(r1 - r0):
            for c in range(dv):
                values[r, c] = v3[vi, r0 + r, c]
            values[r, dv] = 1.0
        summary += np.dot(_monomials(k3, ki, r0, r1, parents, last, ones).T, values)
    return summary


@njit(cache=True, fastmath=False, parallel=True)
def _poly_forward(q3, k13, k23, v13, v23, maps, parents, last, coeffs, chunk, out, normaliser):
    slices, n, dv = out.shape
    ones = np.ones(coeffs.shape[0], dtype=coeffs.dtype)
    for b in prange(slices):
        joint = _key_summary(k13, v13, maps[1, b], maps[3, b], parents, last, ones, chunk)
        joint *= _key_summary(k23, v23, maps[2, b], maps[4, b], parents, last, ones, chunk)
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            stacked = np.dot(_monomials(q3, maps[0, b], r0, r1, parents, last, coeffs), joint)
            for r in range(r1 - r0):
                den = stacked[r, dv]
                normaliser[b, r0 + r] = den
                for c in range(dv):
                    out[b, r0 + r, c] = stacked[r, c] / den


@numba_checked
def tensor_attention_poly(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    degree: int,
    scale: float | None = None,
) -> np.ndarray:
    """Polynomial-method tensor attention ``T̃ = D̃⁻¹ Ã (V₁⊘V₂)``, ``Ã = P_g(σ Q(K₁⊘K₂)ᵀ)``.

    Same call as :func:`attnlab.reference.tensor_poly.tensor_attention_poly`: ``q (..., n, d)``,
    ``k1, v1 (..., m1, ·)``, ``k2, v2 (..., m2, ·)``, Taylor ``degree >= 0``, σ default ``1/d``.
    Time ``O((n + m1 + m2)·C(d+g, g)·d_v)``. Raises ``ValueError`` when a normaliser ``D̃_ii`` is not
    positive, as the reference does.
    """
    arrays, lead, maps = prepare_pair_inputs(q, k1, k2, v1, v2)
    qa = arrays[0]
    g = _check_degree(degree)
    d, n, dv = qa.shape[-1], qa.shape[-2], arrays[3].shape[-1]
    sigma = check_scale(scale, 1.0 / d)
    parents, last = _monomial_plan(d, g)
    coeffs = taylor_coefficients(taylor_multi_indices(d, g), sigma).astype(qa.dtype)
    out = poisoned((maps.shape[1], n, dv), qa.dtype)
    normaliser = poisoned((maps.shape[1], n), qa.dtype)
    q3, k13, k23, v13, v23 = (as_slices(a) for a in arrays)
    _poly_forward(q3, k13, k23, v13, v23, maps, parents, last, coeffs, 256, out, normaliser)
    if not np.all(normaliser > 0.0):
        raise ValueError(
            f"degree: the degree-{g} Taylor approximation gives a non-positive normaliser "
            "D̃ = Ã·1 for some query; the logits are outside the range where P_g approximates exp "
            "(use an even degree or a higher one)"
        )
    return out.reshape(*lead, n, dv)
