"""Bilinear Multi-Level Low-Rank (MLR) attention on the feature axis: a high-rank, block-diagonal-sum
scoring matrix for high-dimensional inputs.

Source: Kuang, Amsel, Lotfi, Qiu, Potapczynski & Wilson 2025, "Customizing the Inductive Biases of Softmax
Attention using Structured Matrices", ICML 2025, arXiv 2509.07963 (abstract: MLR scoring matrices of high
rank at low cost). The operator follows the authors' code, YilunKuang/structured-attention@4895ad5,
``src/model.py`` (``BilinearMLRAttention``, ``BilinearMLRProjection``); the paper's body was not available to
the lab.

Level ``l = 1 … L`` splits the ``D`` input features into ``p_l = 2^{l−1}`` contiguous chunks of ``D/p_l`` and
projects chunk ``p`` of a token with its own ``W^{(l,p)} ∈ R^{D/p_l × H r_l}``; head ``h``'s level feature is the
concatenation over chunks, ``q^{(l)}_h(x) ∈ R^{r_l p_l}``. With ``LN`` a layer norm without affine parameters
(eps 1e-5)::

    s^h_ij = Σ_l c_l · LN(q^{(l)}_h(x_i)) · LN(k^{(l)}_h(y_j)),     c_l = 1/√(r_l p_l)   (× 8/√(r_l p_l) under μP)
    s ← s / L   (normalize="levels")
    O = softmax_row(S + M) V   (link="identity": O = (S ⊙ visible) V)

Without the layer norm this is ``x_iᵀ W_h y_j`` with ``W_h = Σ_l c_l blockdiag_p(W_Q^{(l,p)}_h W_K^{(l,p)ᵀ}_h)``,
of rank at most ``Σ_l r_l p_l``. The code rescales each level's weights on every call,
``W ← W / max(1, RMS(W) / √(min(d_in, d_out)/d_in²))`` (``d_in = D/p_l``, ``d_out = H r_l``).

Weights are packed in one array per side, ``(D, H·R)`` with ``R = Σ_l r_l``: level ``l`` owns the columns
``[H·R_{l−1}, H·R_l)``, which reshape to the code's ``(p_l, D/p_l, H r_l)`` (row ``p·D/p_l + t`` is row ``t`` of
chunk ``p``; column ``h·r_l + ρ``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.btt import check_link, layer_norm, rms_cap
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    broadcast_batch,
    check_bool,
    check_positive_int,
    overflow_checked,
)

NORMALIZATIONS = ("none", "levels")


def check_ranks(ranks: Any, dim: int) -> tuple[int, ...]:
    """Positive level ranks ``r_1 … r_L`` with ``2^{L−1}`` dividing the feature width ``D``."""
    if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Sequence) or not ranks:
        raise TypeError(f"ranks: expected a non-empty sequence of positive ints, got {ranks!r}")
    values = tuple(check_positive_int(f"ranks[{i}]", r) for i, r in enumerate(ranks))
    if dim % 2 ** (len(values) - 1):
        raise ValueError(
            f"ranks: {len(values)} levels split D into up to {2 ** (len(values) - 1)} chunks, "
            f"which must divide D = {dim}"
        )
    return values


def level_columns(ranks: tuple[int, ...], heads: int) -> list[tuple[int, int]]:
    """Column range ``[H·R_{l−1}, H·R_l)`` of each level in the packed weights."""
    bounds = np.cumsum((0, *ranks)) * heads
    return [(int(lo), int(hi)) for lo, hi in pairwise(bounds)]


def level_weights(weight: np.ndarray, ranks: tuple[int, ...], heads: int, level: int) -> np.ndarray:
    """Level ``l``'s weights in the code's layout ``(p_l, D/p_l, H r_l)``."""
    lo, hi = level_columns(ranks, heads)[level]
    chunks = 2**level
    return weight[:, lo:hi].reshape(chunks, weight.shape[0] // chunks, hi - lo)


def level_features(x: np.ndarray, weight: np.ndarray, heads: int, rank: int) -> np.ndarray:
    """``q^{(l)}_h(x)`` for every head: ``(..., n, D)`` and ``(p, D/p, H r)`` → ``(..., H, n, r·p)`` (r-major)."""
    chunks, width = weight.shape[0], weight.shape[1]
    parts = x.reshape(*x.shape[:-1], chunks, width)
    projected = np.einsum("...npw,pwz->...npz", parts, weight).reshape(*x.shape[:-1], chunks, heads, rank)
    features = np.moveaxis(projected, (-3, -2, -1), (-1, -3, -2))  # (..., n, H, r, p)
    features = features.reshape(*x.shape[:-1], heads, rank * chunks)
    return np.moveaxis(features, -2, -3)


def level_scale(rank: int, chunks: int, mup: bool) -> float:
    """``c_l = 1/√(r_l p_l)``, times ``8/√(r_l p_l)`` under μP."""
    width = rank * chunks
    return width**-0.5 * (8.0 * width**-0.5 if mup else 1.0)


def check_bilinear_mlr_shapes(
    x: tuple[int, ...], y: tuple[int, ...], v: tuple[int, ...], w_q: tuple[int, ...], w_k: tuple[int, ...], ranks: Any
) -> tuple[int, ...]:
    """The shapes of a call (every path): per-head ``v``, shared tokens ``x``/``y`` of one width ``D``, as many
    keys as values, packed weights ``(D, H·Σr)``; returns the validated ranks."""
    x, y, v = tuple(x), tuple(y), tuple(v)
    if len(v) < 3:
        raise ValueError(f"v: expected per-head values (..., H, m, d_v) with a head axis, got shape {v}")
    dim, heads = x[-1], v[-3]
    if y[-1] != dim:
        raise ValueError(f"y: expected last axis of size {dim} (D, the last axis of x), got shape {y}")
    if y[-2] != v[-2]:
        raise ValueError(f"y/v: expected the same number of keys on axis -2, got y{y} and v{v}")
    for name, tokens in (("x", x), ("y", y)):
        if len(tokens) >= 3 and tokens[-3] != 1:
            raise ValueError(
                f"{name}: tokens are shared by the heads (each head projects them with its own level weights); "
                f"expected size 1 on axis -3, as in (B, 1, n, D); got {tokens}"
            )
    rank_tuple = check_ranks(ranks, dim)
    expected = (dim, heads * sum(rank_tuple))
    for name, w in (("w_q", tuple(w_q)), ("w_k", tuple(w_k))):
        if w != expected:
            raise ValueError(
                f"{name}: expected packed weights (D, H·Σr) = {expected} for H = {heads} (the heads of v), got {w}"
            )
    return rank_tuple


def check_bilinear_mlr_inputs(
    x: Any, y: Any, v: Any, w_q: Any, w_k: Any, ranks: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """Validated arrays (``x``, ``y`` without their head axis), ranks and the output's leading dims ``(..., H)``."""
    xa, ya, va = as_float_array("x", x), as_float_array("y", y), as_float_array("v", v)
    wq, wk = (as_float_array(name, w, ndim=2, layout="(D, H·Σr)") for name, w in (("w_q", w_q), ("w_k", w_k)))
    rank_tuple = check_bilinear_mlr_shapes(xa.shape, ya.shape, va.shape, wq.shape, wk.shape, ranks)
    lead = broadcast_batch(("v", "x", "y"), (va, xa, ya))

    def shared(tokens: np.ndarray) -> np.ndarray:
        return tokens[..., 0, :, :] if tokens.ndim >= 3 else tokens

    return shared(xa), shared(ya), va, wq, wk, rank_tuple, lead


def bilinear_mlr_scores(
    x: np.ndarray,
    y: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    ranks: tuple[int, ...],
    heads: int,
    *,
    mup: bool,
    use_ln: bool,
    normalize_weights: bool,
    normalize: str,
) -> np.ndarray:
    """The logits ``s^h_ij`` of shape ``(..., H, n, m)``."""
    dim = x.shape[-1]
    total: np.ndarray | float = 0.0
    for level, rank in enumerate(ranks):
        chunks = 2**level
        wq_l, wk_l = level_weights(w_q, ranks, heads, level), level_weights(w_k, ranks, heads, level)
        if normalize_weights:
            wq_l = rms_cap(wq_l, fan_in=dim // chunks, fan_out=heads * rank)
            wk_l = rms_cap(wk_l, fan_in=dim // chunks, fan_out=heads * rank)
        fq, fk = level_features(x, wq_l, heads, rank), level_features(y, wk_l, heads, rank)
        if use_ln:
            fq, fk = layer_norm(fq), layer_norm(fk)
        total = total + level_scale(rank, chunks, mup) * (fq @ np.swapaxes(fk, -1, -2))
    scores = np.asarray(total)
    return scores / len(ranks) if normalize == "levels" else scores


@overflow_checked
def bilinear_mlr_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    ranks: Sequence[int],
    mup: bool = False,
    layer_norm_features: bool = True,
    normalize_weights: bool = True,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Bilinear MLR attention ``O = link(Σ_l c_l LN(q^{(l)}_h(x_i))·LN(k^{(l)}_h(y_j)) + M) V``.

    Args:
        x: query tokens ``(..., 1, n, D)`` (shared by the heads).
        y: key tokens ``(..., 1, m, D)`` (shared by the heads; ``y = x`` for self-attention).
        v: per-head values ``(..., H, m, d_v)``.
        w_q, w_k: packed level weights ``(D, H·Σ r_l)`` (see the module docstring).
        ranks: per-head level ranks ``r_1 … r_L``; ``2^{L−1}`` must divide ``D``.
        mup: the code's μP logit scaling (``c_l = 8/(r_l p_l)`` instead of ``1/√(r_l p_l)``).
        layer_norm_features: layer-normalise each level's query and key features (the code's ``do_qk_ln``).
        normalize_weights: apply the code's per-call RMS cap to each level's weights.
        normalize: ``none`` or ``levels`` (divide by L, ``mlr_divide_by_num_levels``).
        link: ``softmax`` or ``identity``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., H, n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; a query with no visible key returns zeros.
    """
    xa, ya, va, wq, wk, rank_tuple, lead = check_bilinear_mlr_inputs(x, y, v, w_q, w_k, ranks)
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize: expected one of {NORMALIZATIONS} (the code has no coverage variant here), got {normalize!r}"
        )
    kind = check_link(link)
    scores = bilinear_mlr_scores(
        xa,
        ya,
        wq,
        wk,
        rank_tuple,
        va.shape[-3],
        mup=check_bool("mup", mup),
        use_ln=check_bool("layer_norm_features", layer_norm_features),
        normalize_weights=check_bool("normalize_weights", normalize_weights),
        normalize=normalize,
    )
    scores = np.broadcast_to(scores, (*lead, *scores.shape[-2:]))
    allowed = allowed_positions(xa.shape[-2], ya.shape[-2], causal=causal, mask=mask, lead=lead)
    weights = masked_softmax(scores, allowed) if kind == "softmax" else np.where(allowed, scores, 0.0)
    return weights @ np.broadcast_to(va, (*lead, *va.shape[-2:]))
