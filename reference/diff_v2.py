"""Differential attention v2 (DIFF V2): paired query heads on one GQA attention call, sigmoid gate.

Source: Ye, Dong, Sun & Wei, "Differential Transformer V2" (Microsoft, blog post of 20 January 2026,
with code in microsoft/unilm, ``Diff-Transformer/Diff-Transformer-V2/multihead_flashdiffv2.py``);
DIFF V1 is Ye et al., "Differential Transformer", ICLR 2025 (arXiv 2410.05258).

V2 doubles the query heads instead of splitting each head in two: ``2H`` query heads of dim ``d`` run
one softmax attention over ``H_kv`` key/value heads with the GQA head map (query head ``j`` reads KV
head ``j // (2H / H_kv)``), and output head ``h`` subtracts the odd head of the pair from the even one
with a token- and head-dependent weight ``sigmoid(λ_{t,h})``. There is no per-head RMSNorm and no
``(1 − λ_init)`` factor (both of V1's are removed), and the value dim is the head dim.

When ``2H / H_kv`` is even the two heads of a pair share one KV head (the layout the authors recommend);
otherwise (e.g. ``H_kv = 2H``) the pair's two maps read *different* key and value heads — an operator
V1's ``differential_attention`` (one value tensor for both maps) cannot express, and the layout whose
subtraction the authors report as the worse design.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import as_float_array, overflow_checked


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^{−x})`` without overflow for large ``|x|``."""
    return np.asarray(expit(x))


def pair_heads(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The even (``2h``) and odd (``2h + 1``) query heads on axis −3."""
    return maps[..., 0::2, :, :], maps[..., 1::2, :, :]


def check_lam(lam: Any, out_shape: tuple[int, ...]) -> np.ndarray:
    """``lam`` as a float array broadcastable to ``(..., H, n, 1)``; ``out_shape`` is ``(..., H, n, d_v)``."""
    lam_arr = as_float_array("lam", lam)
    target = (*out_shape[:-1], 1)
    try:
        ok = lam_arr.ndim <= len(target) and np.broadcast_shapes(lam_arr.shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"lam: expected the pre-sigmoid weights of shape (..., H, n, 1) broadcastable to {target}, "
            f"got shape {lam_arr.shape}"
        )
    return lam_arr


@overflow_checked
def diff_v2_attention(
    q: Any,
    k: Any,
    v: Any,
    lam: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Differential attention V2: ``O_h = A(Q_{2h}) V − sigmoid(λ_h) ⊙ A(Q_{2h+1}) V``.

    With ``o_j = softmax(σ Q_j K_{g(j)}ᵀ + M) V_{g(j)}`` for every query head ``j`` (``g(j) = j // G``,
    ``G = 2H / H_kv``), the output head ``h`` at token ``t`` is ``o_{t,2h} − sigmoid(λ_{t,h}) · o_{t,2h+1}``.

    Args:
        q: ``(..., 2H, n, d)``: the query heads in pairs ``(2h, 2h + 1)``.
        k: ``(..., H_kv, m, d)`` with ``H_kv`` dividing ``2H``; v: ``(..., H_kv, m, d_v)``.
        lam: pre-sigmoid subtraction weights ``λ`` of shape ``(..., H, n, 1)`` (or broadcastable to it);
            in the model ``λ_t = W_λ x_t``, one per token and output head.
        scale: σ, default ``d ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., 2H, n, m)`` (a ``(n, m)`` mask serves every head); True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64. A query with no visible key returns zeros. Each combined weight row
        ``A_{2h} − sigmoid(λ) A_{2h+1}`` sums to ``1 − sigmoid(λ)``.
    """
    q = as_float_array("q", q, min_ndim=3)
    if q.shape[-3] % 2:
        raise ValueError(
            f"q: expected an even number 2H of query heads on axis -3 (pairs 2h, 2h + 1), got shape {q.shape}"
        )
    maps = softmax_attention(q, k, v, scale=scale, causal=causal, mask=mask)
    first, second = pair_heads(maps)
    gate = sigmoid(check_lam(lam, first.shape))
    return first - gate * second
