"""LASER: attention with an exponential transformation of the values.

Source: Duvvuri & Dhillon, "LASER: Attention with Exponential Transformation", ICML 2025
(arXiv 2411.03493).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_logsumexp, masked_softmax
from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import overflow_checked


@overflow_checked
def laser_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """LASER attention ``O = log(softmax(S) · exp(V))`` with ``S = σ Q Kᵀ + M``.

    Evaluated entirely in the log domain, each row shifted by its largest visible score
    ``s_i = max_{j visible} S_ij``:
    ``O_ic = LSE_{j visible}(S_ij − s_i + V_jc) − LSE_{j visible}(S_ij − s_i)``,
    so it is finite for every finite input: the paper's global column-max shift (``V − max_j V_jc``)
    underflows to ``log 0 = −inf`` on causal rows whose visible values sit far below the column
    maximum; this form never does. The row shift keeps both log-sum-exps of size ``O(|V| + log m)``,
    so their difference carries a rounding error of order ``eps·(|V| + log m)`` rather than
    ``eps·max|S|`` (without it, ``|S| ~ 1e5`` costs about 5e-12 in float64).

    Shapes and options as :func:`attnlab.reference.softmax_attention` (GQA, ``causal`` bottom-right,
    boolean ``mask``). Returns ``(..., H, n, d_v)``; a query with no visible key returns zeros.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))  # (..., n, m)
    visible = np.broadcast_to(allowed, scores.shape)
    empty = ~np.any(visible, axis=-1)
    row_peak = np.max(np.where(visible, scores, -np.inf), axis=-1, keepdims=True)
    shifted = scores - np.where(empty[..., None], 0.0, row_peak)  # 0 at each row's top visible key
    lse_scores = masked_logsumexp(shifted, visible)  # (..., n), in [0, log m]
    joint = shifted[..., :, :, None] + va[..., None, :, :]  # (..., n, m, d_v)
    lse_joint = masked_logsumexp(joint, visible[..., None], axis=-2)
    out = lse_joint - np.where(empty, 0.0, lse_scores)[..., None]
    return np.where(empty[..., None], 0.0, out)


def laser_attention_global_shift(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """The paper's "log-weighted-sum-exp" evaluation with a *global* column shift.

    ``m_c = max_j V_jc`` over the whole sequence, ``O = log(A exp(V − m)) + m``. Exact in real
    arithmetic, but ``exp(V_jc − m_c)`` underflows to 0 when every visible value of a row is more
    than ~745 (float64) below ``m_c``, and the output becomes ``−inf``. Kept to document that
    failure; use :func:`laser_attention`.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    weights = masked_softmax(sigma * (qa @ np.swapaxes(ka, -1, -2)), allowed)
    shift = np.max(va, axis=-2, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(weights @ np.exp(va - shift)) + shift
