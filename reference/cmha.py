"""ComplexFormer's Complex Multi-Head Attention (CMHA): polar form of query/key halves, per-head adaptive
rotation of the angle differences, plus a relative-position rotation.

Source: Shao et al. 2025, "ComplexFormer: Disruptively Advancing Transformer Inference Ability via
Head-Specific Complex Vector Attention", arXiv 2505.10222v1 (the abstract's per-head Euler transform and
adaptive differential rotation ``exp[i(Adapt(AS_mn,i) + Δ(P_mn),i)]``; v2 of 27 May 2025 withdraws the
paper). The constants (the ``1e-9`` inside the modulus, the frequencies ``10000^{-2i/d}``, no ``1/√d``
scale) are those of shaojintian/complexFormer@f91ac74, ``attention/complex_attention.py``
(``ComplexMultiHeadAttentionV2``).

Per head, with ``h = d/2`` and the real head vectors split in halves ``q = [re | im]``::

    r_t = sqrt(re_t² + im_t² + ε),   θ_t = atan2(im_t, re_t)                       (t < h)
    AS_ij,t = θ^q_i,t − θ^k_j,t,     Adapt = δ_t · AS + β_t                        (δ, β ∈ R^h per head)
    ΔP_ij,t = (p_i − p_j) g_t,       g_t = base^{−2t/d}
    s_ij = σ Σ_t r^q_i,t r^k_j,t cos(Adapt_ij,t + ΔP_ij,t)                         (σ = 1 by default)
    O = softmax_row(s + M) V

Positions: key ``j`` sits at ``p_j = j``; query ``i`` at ``p_i = i + m − n`` (the alignment of attnlab's
bottom-right causal mask; for self-attention ``p_i = i``). With ``δ = 1, β = 0, ε = 0`` this is RoPE
attention with the half-split ("NeoX") pairing ``(t, t + h)`` and scale σ. The phase separates,
``s_ij = σ ψ(q_i)·ψ(k_j)`` with ``ψ(q)_t = r_t cos φ_t``, ``ψ(q)_{t+h} = r_t sin φ_t``,
``φ^q = δθ^q + p g + β`` and ``φ^k = δθ^k + p g``: any softmax kernel runs CMHA after that pointwise map.
Real inputs, real output (no complex arrays are involved).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_scale,
    expand_kv_heads,
    max_abs,
    overflow_checked,
)

#: The released code's constant inside the modulus ``sqrt(re² + im² + ε)``.
MODULUS_EPS = 1e-9


def euler(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Modulus ``sqrt(re² + im² + ε)`` and angle ``atan2(im, re)`` of the halves ``x = [re | im]``."""
    half = x.shape[-1] // 2
    re, im = x[..., :half], x[..., half:]
    return np.sqrt(re * re + im * im + eps), np.arctan2(im, re)


def frequencies(d: int, base: float) -> np.ndarray:
    """``g_t = base^{−2t/d}`` for ``t = 0 … d/2 − 1``."""
    return base ** (-2.0 * np.arange(d // 2) / d)


def query_positions(n: int, m: int) -> np.ndarray:
    """Positions of the ``n`` queries against ``m`` keys at ``0 … m − 1``: ``i + m − n`` (bottom-right)."""
    return np.arange(n) + (m - n)


def adaptive_angle(angle_diff: np.ndarray, delta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``Adapt = δ · AS + β`` (per head, per frequency)."""
    return delta * angle_diff + beta


def _head_parameter(name: str, value: Any, default: float, q: np.ndarray) -> np.ndarray:
    """``δ`` or ``β`` as an array broadcasting to ``(..., H, 1, 1, d/2)`` against the pairwise angles."""
    half = q.shape[-1] // 2
    if value is None:
        return np.full(half, default, dtype=q.dtype)
    arr = as_float_array(name, value, min_ndim=1)
    heads = q.shape[-3] if q.ndim >= 3 else None
    if arr.shape == (half,):
        return arr
    if heads is not None and arr.shape == (heads, half):
        return arr[:, None, None, :]
    expected = f"({half},) shared by every head" + (f" or ({heads}, {half}), one row per query head" if heads else "")
    raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")


def check_cmha_options(
    q: np.ndarray, delta: Any, beta: Any, base: Any, eps: Any
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Validated ``δ``, ``β`` (as broadcastable arrays), frequency base and modulus ε."""
    if q.shape[-1] % 2:
        raise ValueError(f"q: expected an even head dim d (halves re | im), got shape {q.shape}")
    base_value = check_scale(base, 10000.0, name="base")
    if eps is None or isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.number)):
        raise TypeError(f"eps: expected a float >= 0, got {type(eps).__name__}")
    eps_value = float(eps)
    if not np.isfinite(eps_value) or eps_value < 0.0:
        raise ValueError(f"eps: expected a finite float >= 0, got {eps!r}")
    return (
        _head_parameter("delta", delta, 1.0, q),
        _head_parameter("beta", beta, 0.0, q),
        base_value,
        eps_value,
    )


#: Largest phase the operator evaluates: beyond it a float64 angle keeps fewer than 32 fractional bits, and
#: the pairwise (reference) and separable (fast path) evaluations of the same phase part ways.
ANGLE_LIMIT = 2.0**20


def check_cmha_angles(delta: Any, beta: Any, base: float, d: int, span: int) -> None:
    """Reject δ, β and base whose phases ``δ(θ_q − θ_k) + β + (p_i − p_j) g`` can exceed :data:`ANGLE_LIMIT`
    (``span``: the largest position offset ``p_i − p_j``, at most ``n + m``)."""
    log_frequency = max(0.0, -(d - 2) / d * math.log(base)) if d > 2 else 0.0  # log max_t g_t
    offset = max_abs(beta) + 2.0 * math.pi * max_abs(delta)
    largest = offset + span * math.exp(min(log_frequency, 700.0))
    if not largest < ANGLE_LIMIT:
        raise ValueError(
            f"delta/beta/base: expected phases below 2^20 rad (a larger angle loses its fractional digits), "
            f"got phases up to {largest:.3g} (|beta| + 2π|delta| + (n + m)·base^(-(d-2)/d))"
        )


def cmha_scores(
    q: np.ndarray, k: np.ndarray, delta: np.ndarray, beta: np.ndarray, base: float, eps: float, scale: float
) -> np.ndarray:
    """``s_ij = σ Σ_t r^q r^k cos(δ(θ^q_i − θ^k_j) + β + (p_i − p_j) g)``, pair by pair, ``(..., n, m)``."""
    rq, tq = euler(q, eps)
    rk, tk = euler(k, eps)
    n, m = q.shape[-2], k.shape[-2]
    angle = adaptive_angle(tq[..., :, None, :] - tk[..., None, :, :], delta, beta)
    offsets = query_positions(n, m)[:, None] - np.arange(m)[None, :]
    relative = (offsets[..., None] * frequencies(q.shape[-1], base)).astype(q.dtype)
    return scale * np.sum(rq[..., :, None, :] * rk[..., None, :, :] * np.cos(angle + relative), axis=-1)


@overflow_checked
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
    """Complex multi-head attention ``O = softmax_row(s + M) V`` with the CMHA scores above.

    Args:
        q: ``(..., H, n, d)`` with ``d`` even (``[re | im]`` halves).
        k: ``(..., H_kv, m, d)``; ``H_kv`` divides ``H`` (query head ``h`` reads KV head ``h // (H / H_kv)``).
        v: ``(..., H_kv, m, d_v)``.
        delta: the adaptive rotation's slopes δ, ``(d/2,)`` shared or ``(H, d/2)`` per query head; default 1.
        beta: the adaptive rotation's offsets β, same shapes; default 0. (The released code initialises
            ``δ ~ N(0, 2/d)`` and ``β = 0`` and learns both.)
        base: frequency base of ``g_t = base^{−2t/d}`` (10000).
        scale: σ, default 1 (the released code applies no ``1/√d``).
        eps: the constant under the modulus square root (``1e-9`` in the released code; 0 gives the exact
            polar form).
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
    delta_a, beta_a, base_value, eps_value = check_cmha_options(qa, delta, beta, base, eps)
    check_cmha_angles(delta_a, beta_a, base_value, qa.shape[-1], qa.shape[-2] + ka.shape[-2])
    sigma = check_scale(scale, 1.0)
    scores = cmha_scores(qa, ka, delta_a, beta_a, base_value, eps_value, sigma)
    allowed = allowed_positions(qa.shape[-2], ka.shape[-2], causal=causal, mask=mask, lead=qa.shape[:-2])
    return masked_softmax(scores, allowed) @ va
