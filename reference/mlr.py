"""Multi-Level Low-Rank (MLR) attention on the sequence axis: a locality bias from nested block-diagonal
low-rank levels.

Source: Kuang, Amsel, Lotfi, Qiu, Potapczynski & Wilson 2025, "Customizing the Inductive Biases of Softmax
Attention using Structured Matrices", ICML 2025, arXiv 2509.07963 (abstract: MLR scoring encodes a
distance-dependent compute bias, nearby tokens interacting through more levels). The operator follows
the authors' code, YilunKuang/structured-attention@4895ad5, ``src/model.py`` (``AttentionMLR``); the
paper's body was not available to the lab.

Per (batch, head), the head dim ``d = r_1 + … + r_L`` is split into level chunks ``q^{(l)}, k^{(l)} ∈ R^{r_l}``
and level ``l`` tiles the positions into contiguous blocks of ``b_l`` (default ``⌈T / 2^{l−1}⌉``,
``T = max(n, m)``: level 1 is global, each level halves the blocks)::

    S_ij = Σ_l [⌊p_i / b_l⌋ = ⌊p'_j / b_l⌋] · c_l · q^{(l)}_i · k^{(l)}_j,     c_l = 1/r_l (or σ if given)
    S    ← S / L                      (normalize="levels")
    S_ij ← S_ij / #{l covering (i, j)}  (normalize="coverage")
    O    = softmax_row(S + M) V        (link="identity": O = (S ⊙ visible) V)

Positions are aligned bottom-right, as attnlab's causal mask, and counted from the first position present:
query ``i`` at ``p_i = i + T − n``, key ``j`` at ``p'_j = j + T − m`` (the released code supports only the
square training shape ``n = m = T``, where ``p_i = i``, ``p'_j = j`` and the default blocks divide ``T``; here
the last block of a level may be shorter). With one level (``L = 1``, ``b_1 = m``)
this is softmax attention with scale ``1/d``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.btt import check_link
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)

NORMALIZATIONS = ("none", "levels", "coverage")


def _positive_ints(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name}: expected a non-empty sequence of positive ints, got {values!r}")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


def check_levels(d: int, span: int, ranks: Any, block_sizes: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validated ranks (summing to ``d``) and block sizes (default ``⌈T / 2^{l−1}⌉`` for ``span = T``)."""
    rank_tuple = _positive_ints("ranks", ranks)
    if sum(rank_tuple) != d:
        raise ValueError(
            f"ranks: expected level ranks summing to the head dim d = {d}, got {rank_tuple} (sum {sum(rank_tuple)})"
        )
    if block_sizes is None:
        return rank_tuple, default_block_sizes(span, len(rank_tuple))
    sizes = _positive_ints("block_sizes", block_sizes)
    if len(sizes) != len(rank_tuple):
        raise ValueError(f"block_sizes: expected one block size per level ({len(rank_tuple)}), got {sizes}")
    return rank_tuple, sizes


def default_block_sizes(span: int, levels: int) -> tuple[int, ...]:
    """``b_l = ⌈T / 2^{l−1}⌉`` for a span of ``T`` positions: level 1 is global, each further level halves."""
    return tuple(max(1, -(-span // 2**level)) for level in range(levels))


def positions(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``n`` queries and ``m`` keys, bottom-right aligned and counted from the first of either:
    query ``i`` at ``i + T − n``, key ``j`` at ``j + T − m``, ``T = max(n, m)``."""
    span = max(n, m)
    return np.arange(n) + (span - n), np.arange(m) + (span - m)


def same_block(n: int, m: int, size: int) -> np.ndarray:
    """``(n, m)`` booleans: query ``i`` and key ``j`` lie in the same block of ``size`` positions."""
    rows, cols = positions(n, m)
    return (rows[:, None] // size) == (cols[None, :] // size)


def coverage(n: int, m: int, sizes: tuple[int, ...]) -> np.ndarray:
    """``(n, m)``: the number of levels whose blocks contain both query ``i`` and key ``j``."""
    return np.sum([same_block(n, m, size) for size in sizes], axis=0).astype(np.float64)


def level_scales(ranks: tuple[int, ...], scale: float | None) -> tuple[float, ...]:
    """``c_l = 1/r_l`` (the released code's μP-style scaling) or one given σ for every level."""
    return tuple(1.0 / r if scale is None else scale for r in ranks)


def mlr_scores(
    q: np.ndarray, k: np.ndarray, ranks: tuple[int, ...], sizes: tuple[int, ...], scale: float | None, normalize: str
) -> np.ndarray:
    """The MLR logits ``S`` of shape ``(..., n, m)`` (before the causal mask and the mask)."""
    n, m = q.shape[-2], k.shape[-2]
    bounds = np.cumsum((0, *ranks))
    scores = np.zeros((*q.shape[:-1], m), dtype=q.dtype)
    for lo, hi, size, c in zip(bounds[:-1], bounds[1:], sizes, level_scales(ranks, scale)):
        scores = scores + np.where(
            same_block(n, m, size), c * (q[..., lo:hi] @ np.swapaxes(k[..., lo:hi], -1, -2)), 0.0
        )
    if normalize == "levels":
        return scores / len(ranks)
    if normalize == "coverage":
        return scores / np.maximum(coverage(n, m, sizes), 1.0).astype(q.dtype)
    return scores


@overflow_checked
def mlr_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    ranks: Sequence[int],
    block_sizes: Sequence[int] | None = None,
    scale: float | None = None,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Sequence-axis MLR attention ``O = softmax_row(Σ_l B_l ⊙ c_l Q^{(l)} K^{(l)ᵀ} + M) V``.

    Args:
        q: ``(..., H, n, d)``; k: ``(..., H_kv, m, d)``; v: ``(..., H_kv, m, d_v)``; ``H_kv`` divides ``H``.
        ranks: level ranks ``r_1 … r_L`` (positive, summing to ``d``; the code's ``mlr_rank_list``).
        block_sizes: block size of each level (default ``⌈max(n, m) / 2^{l−1}⌉``; the code's ``mlr_block_size_list``).
        scale: None for the code's per-level ``1/r_l``, or one σ for every level.
        normalize: ``none``, ``levels`` (divide by L, the code's ``mlr_divide_by_num_levels``) or ``coverage``
            (divide each entry by the number of levels covering it, ``mlr_block_divide_by_num_levels``).
        link: ``softmax`` or ``identity`` (masked logits used directly).
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; a query with no visible key returns zeros.
    """
    qa = as_float_array("q", q)
    ka = as_float_array("k", k)
    va = as_float_array("v", v)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, va = expand_kv_heads(qa, ka, va)
    rank_tuple, sizes = check_levels(qa.shape[-1], max(qa.shape[-2], ka.shape[-2]), ranks, block_sizes)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {NORMALIZATIONS}, got {normalize!r}")
    sigma = None if scale is None else check_scale(scale, 1.0)
    kind = check_link(link)
    scores = mlr_scores(qa, ka, rank_tuple, sizes, sigma, normalize)
    allowed = allowed_positions(qa.shape[-2], ka.shape[-2], causal=causal, mask=mask, lead=qa.shape[:-2])
    weights = masked_softmax(scores, allowed) if kind == "softmax" else np.where(allowed, scores, 0.0)
    return weights @ va
