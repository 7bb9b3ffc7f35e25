"""Structured scoring matrices (BTT, MLR): rank at low cost, and MLR's distance-dependent compute (family
``structured``).

Kuang et al. 2025, "Customizing the Inductive Biases of Softmax Attention using Structured Matrices"
(arXiv 2509.07963, ICML 2025). Only the abstract was read: it proposes "scoring functions based on
computationally efficient structured matrices with high ranks, including Block Tensor-Train (BTT) and
Multi-Level Low Rank (MLR) matrices", and MLR-based attention with "a distance-dependent compute bias for
neighboring tokens". The claims below are the lab's precise readings of those two statements, checked on
the lab's float64 references: the scoring matrix ``W_h`` is read off an operator call with ``x = y = I``,
``V = I`` and the identity link (the output is then ``σ W_h``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.btt import btt_attention, factor_pair
from attnlab.reference.mlr import default_block_sizes, same_block
from attnlab.reference.mlr_bilinear import bilinear_mlr_attention
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

FAMILY = "structured"
SOURCE = Source(
    paper("kuang2025customizing"),
    "abstract",
    quote=(
        "new scoring functions based on computationally efficient structured matrices with high ranks, including "
        "Block Tensor-Train (BTT) and Multi-Level Low Rank (MLR) matrices"
    ),
    abstract_level=True,
)
PLAIN = {"link": "identity", "normalize_weights": False, "scale": 1.0}


def _identity_tokens(dim: int, heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eye = np.eye(dim)
    return eye[None, None], eye[None, None], np.broadcast_to(eye, (1, heads, dim, dim))


def btt_full_rank(
    *,
    operator: Callable[..., np.ndarray] = btt_attention,
    dims: tuple[int, ...] = (6, 12, 16, 64),
    heads: int = 2,
    seed: int = 3,
) -> CheckResult:
    """Random rank-1 BTT cores give ``rank W_h = D`` with ``D·(a + b)`` parameters per head (a standard head of
    dim ``r`` has rank ``<= r`` with ``2·D·r``)."""
    rng = np.random.default_rng(seed)
    rows, ok = [], True
    for dim in dims:
        a, b = factor_pair(dim)
        w_q, w_k = rng.standard_normal((heads * b, a, a)), rng.standard_normal((a, b, heads * b))
        x, y, v = _identity_tokens(dim, heads)
        dense = operator(x, y, v, w_q, w_k, layer_norm_keys=False, **PLAIN)[0]
        ranks = [int(np.linalg.matrix_rank(dense[h])) for h in range(heads)]
        ok &= all(r == dim for r in ranks)
        rows.append(f"D={dim}: rank {min(ranks)} with {dim * (a + b)} params/head")
    return CheckResult("holds" if ok else "falsified", "; ".join(rows) + " (rank D expected)", {"dims": list(dims)})


def mlr_rank_budget(
    *,
    operator: Callable[..., np.ndarray] = bilinear_mlr_attention,
    cases: tuple[tuple[int, tuple[int, ...]], ...] = ((16, (2, 2, 2)), (64, (8, 4, 2, 1)), (24, (3, 2))),
    heads: int = 2,
    seed: int = 4,
) -> CheckResult:
    """Random level weights give ``rank W_h = Σ_l r_l p_l`` (``<= D``) with the parameters of a head of dim
    ``Σ_l r_l`` (``2·D·Σ_l r_l``), whose rank is at most ``Σ_l r_l``."""
    rng = np.random.default_rng(seed)
    rows, ok = [], True
    for dim, ranks in cases:
        width = heads * sum(ranks)
        w_q, w_k = rng.standard_normal((dim, width)), rng.standard_normal((dim, width))
        x, y, v = _identity_tokens(dim, heads)
        dense = operator(
            x,
            y,
            v,
            w_q,
            w_k,
            ranks=ranks,
            layer_norm_features=False,
            **{k: val for k, val in PLAIN.items() if k != "scale"},
        )[0]
        budget = min(dim, sum(r * 2**level for level, r in enumerate(ranks)))
        measured = [int(np.linalg.matrix_rank(dense[h])) for h in range(heads)]
        ok &= all(r == budget for r in measured)
        rows.append(f"D={dim}, r={ranks}: rank {min(measured)} = Σ r_l p_l = {budget} vs {sum(ranks)} for a plain head")
    return CheckResult("holds" if ok else "falsified", "; ".join(rows), {"cases": [list(c[1]) for c in cases]})


def mlr_distance_bias(
    *,
    block: Callable[[int, int, int], np.ndarray] = same_block,
    lengths: tuple[int, ...] = (16, 64, 100),
    ranks: tuple[int, ...] = (16, 16, 16, 16),
) -> CheckResult:
    """The rank allotted to a pair, ``Σ_l r_l [i, j in one level-l block]``, averaged over pairs at distance
    ``δ = |i − j|``, is non-increasing in ``δ``, from ``Σ r_l`` at ``δ = 0`` down to ``r_1``."""
    ok, rows = True, []
    for span in lengths:
        allotted = np.zeros((span, span))
        for r, size in zip(ranks, default_block_sizes(span, len(ranks))):
            allotted += r * block(span, span, size)
        means = np.array([np.mean(np.diagonal(allotted, offset=delta)) for delta in range(span)])
        monotone = bool(np.all(np.diff(means) <= 1e-12))
        ends = bool(means[0] == sum(ranks) and means[-1] == ranks[0])
        ok &= monotone and ends
        rows.append(
            f"T={span}: mean allotted rank {means[0]:.0f} at δ=0 → {means[-1]:.0f} at δ=T−1, non-increasing: {monotone}"
        )
    return CheckResult("holds" if ok else "falsified", "; ".join(rows), {"lengths": list(lengths)})


def _btt_collapsed(x: Any, y: Any, v: Any, w_q: Any, w_k: Any, **kwargs: Any) -> np.ndarray:
    heads = np.shape(v)[-3]
    c, d, _ = np.shape(w_k)
    blocks = np.asarray(w_k).reshape(c, d, heads, -1, 1)
    return btt_attention(x, y, v, w_q, np.broadcast_to(blocks[:, :, :, :1], blocks.shape).reshape(c, d, -1), **kwargs)


def _mlr_last_level_zeroed(x: Any, y: Any, v: Any, w_q: Any, w_k: Any, *, ranks: Any, **kwargs: Any) -> np.ndarray:
    heads = np.shape(v)[-3]
    w_q = np.array(w_q)
    w_q[:, heads * sum(ranks[:-1]) :] = 0.0
    return bilinear_mlr_attention(x, y, v, w_q, w_k, ranks=ranks, **kwargs)


def _strided_blocks(n: int, m: int, size: int) -> np.ndarray:
    """Blocks of every ``T/size``-th position (interleaved) instead of contiguous runs."""
    stride = -(-max(n, m) // size)
    return (np.arange(n)[:, None] % stride) == (np.arange(m)[None, :] % stride)


register(
    Claim(
        id="structured.btt.full_rank",
        family=FAMILY,
        statement=(
            r"\operatorname{rank} W_h = D\ \text{for random BTT cores of rank } s = "
            r"1,\ D(a + b)\ \text{parameters}"
        ),
        kind="reading",
        source=SOURCE,
        verdict="holds",
        reads='the abstract\'s "structured matrices with high ranks, including Block Tensor-Train (BTT)"',
        quick=btt_full_rank,
        mutants=(
            Mutant(
                "b_index_collapsed",
                "every b' of W_K reads the b' = 0 slice (rank <= c·s)",
                {"operator": _btt_collapsed},
            ),
        ),
        assumptions=(
            "reading of "
            '"structured matrices with high ranks, including Block Tensor-Train (BTT)", '
            "read as generic full rank at BTT rank 1",
            "D = a·b with b the smallest divisor above √D, as the released code",
            "N(0, 1) cores",
        ),
    )
)

register(
    Claim(
        id="structured.mlr.rank_budget",
        family=FAMILY,
        statement=(
            r"\operatorname{rank} W_h = \min\big(D, \sum_l r_l 2^{l-1}\big)\ "
            r"\text{with}\ 2D\sum_l r_l\ \text{parameters}"
        ),
        kind="reading",
        source=SOURCE,
        verdict="holds",
        reads='the abstract\'s "structured matrices with high ranks, including ... Multi-Level Low Rank (MLR)"',
        quick=mlr_rank_budget,
        mutants=(
            Mutant(
                "last_level_zeroed", "the finest level's query weights are zero", {"operator": _mlr_last_level_zeroed}
            ),
        ),
        assumptions=(
            "reading of "
            '"structured matrices with high ranks, including ... Multi-Level Low Rank (MLR)", '
            "read for the feature-axis MLR scoring matrix",
            "no layer norm (the bilinear form is then x_iᵀ W_h y_j)",
            "N(0, 1) level weights",
        ),
    )
)

register(
    Claim(
        id="structured.mlr.distance_bias",
        family=FAMILY,
        statement=(
            r"\bar R(\delta) = \operatorname{mean}_{|i-j|=\delta} \sum_l r_l [\lfloor i/b_l\rfloor = "
            r"\lfloor j/b_l\rfloor]\ \text{non-increasing in}\ \delta"
        ),
        kind="reading",
        source=SOURCE,
        verdict="holds",
        reads='the abstract\'s "distance-dependent compute bias for neighboring tokens"',
        quick=mlr_distance_bias,
        mutants=(
            Mutant(
                "strided_blocks", "interleaved (strided) blocks instead of contiguous ones", {"block": _strided_blocks}
            ),
        ),
        assumptions=(
            "reading of "
            'the abstract\'s "distance-dependent compute bias for neighboring tokens" of (contiguous) MLR attention',
            "default halving blocks b_l = ⌈T/2^(l−1)⌉",
            "self-attention, n = m = T",
        ),
    )
)
