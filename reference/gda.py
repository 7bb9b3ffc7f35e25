"""Grouped Differential Attention (GDA): unbalanced signal and noise heads, noise heads shared by groups.

Source: Lim et al. (Motif Technologies), "Grouped Differential Attention", 2025 (arXiv 2510.06949); the
head layout is that of the grouped differential attention backend in vLLM (``GROUPED_DIFF_ATTN``,
``vllm/v1/attention/backends/grouped_diff_attn.py``). Differential attention itself is Ye et al.,
"Differential Transformer", ICLR 2025 (arXiv 2410.05258).

Layout. The ``H`` query heads form ``H₂`` groups of ``r + 1`` consecutive heads ``[Q1 × r, Q2]``: ``r``
signal heads and one noise head (``H₁ = r H₂`` signal heads in all). The ``H_kv`` key/value heads are
interleaved pairs: even heads give ``(K1, V1)``, odd heads ``(K2, V2)``. Signal heads attend over ``K1``,
noise heads over ``K2`` (each with the GQA head map over its ``H_kv / 2`` heads), and both read the
value ``[V1 ‖ V2]`` of width ``2 d_v``. Each noise head's output is reused by the ``r`` signal heads of
its group, and ``O_i = O1_i − λ O2_{⌊i/r⌋}``, then the headwise RMSNorm (learnable gain of width
``2 d_v``) and the factor ``(1 − λ_init)`` of DIFF V1. With ``r = 1`` the layout is DIFF V1's
(query heads ``2h``/``2h + 1``, value heads of width ``2 d_v``), except under GQA: DIFF V1's released
code lets both heads of a pair read one key head, GDA always keeps ``K1`` and ``K2`` apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_bool,
    check_positive_int,
    compute_dtype,
    overflow_checked,
)

#: RMSNorm ε of DIFF V1's headwise normalisation (``RMSNorm(2 d, eps=1e-5)``).
RMS_EPS = 1e-5


def lambda_init(depth: int) -> float:
    """DIFF V1's ``λ_init = 0.8 − 0.6 e^{−0.3·depth}`` for the layer with index ``depth`` (from 0)."""
    return float(0.8 - 0.6 * np.exp(-0.3 * depth))


def reparameterised_lambda(lam_q1: Any, lam_k1: Any, lam_q2: Any, lam_k2: Any, lam_init: float) -> float:
    """DIFF V1's per-layer scalar ``λ = e^{λ_q1·λ_k1} − e^{λ_q2·λ_k2} + λ_init`` from four learned vectors."""
    names = ("lam_q1", "lam_k1", "lam_q2", "lam_k2")
    q1, k1, q2, k2 = (as_float_array(n, a, min_ndim=1) for n, a in zip(names, (lam_q1, lam_k1, lam_q2, lam_k2)))
    return float(np.exp(np.sum(q1 * k1)) - np.exp(np.sum(q2 * k2)) + lam_init)


def split_query_heads(q: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Signal heads ``(..., r H₂, n, d)`` and noise heads ``(..., H₂, n, d)`` of groups ``[Q1 × r, Q2]``."""
    groups = q.shape[-3] // (ratio + 1)
    grouped = q.reshape(*q.shape[:-3], groups, ratio + 1, *q.shape[-2:])
    signal = grouped[..., :ratio, :, :].reshape(*q.shape[:-3], groups * ratio, *q.shape[-2:])
    return signal, grouped[..., ratio, :, :]


def split_kv_pairs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The even and odd heads of interleaved KV pairs on axis −3."""
    return x[..., 0::2, :, :], x[..., 1::2, :, :]


def share_noise(noise: np.ndarray, ratio: int) -> np.ndarray:
    """Noise head ``g`` repeated for the ``r`` signal heads ``g r … g r + r − 1`` of its group."""
    return np.repeat(noise, ratio, axis=-3)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """``x · w / sqrt(mean(x²) + ε)`` over the last axis; an all-zero row (no visible key) stays zero."""
    mean_square = np.mean(x * x, axis=-1, keepdims=True) + eps
    return np.where(mean_square > 0.0, x / np.sqrt(np.where(mean_square > 0.0, mean_square, 1.0)), 0.0) * weight


def check_float(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name}: expected a finite float, got {value!r}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name}: expected a float >= {minimum}, got {value!r}")
    return out


def check_layout(q: np.ndarray, k: np.ndarray, ratio: Any) -> tuple[int, int, int]:
    """``(r, H₂, H_kv / 2)`` after checking that the head counts fit the GDA layout."""
    r = check_positive_int("ratio", ratio)
    heads, kv_heads = q.shape[-3], k.shape[-3]
    if heads == 0 or heads % (r + 1):
        raise ValueError(
            f"q: expected H query heads in groups of ratio + 1 = {r + 1} ([signal x {r}, noise]), "
            f"got {heads} heads in shape {tuple(q.shape)}"
        )
    noise_heads = heads // (r + 1)
    if kv_heads < 2 or kv_heads % 2 or noise_heads % (kv_heads // 2):
        raise ValueError(
            f"k: expected an even number H_kv of KV heads (interleaved (K1, K2) pairs) with H_kv / 2 dividing the "
            f"{noise_heads} noise heads, got {kv_heads} heads in shape {k.shape}"
        )
    return r, noise_heads, kv_heads // 2


@overflow_checked
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
    """Grouped differential attention ``O_i = subln(O1_i − λ O2_{⌊i/r⌋}) (1 − λ_init)``.

    ``O1_i = softmax(σ Q1_i K1ᵀ + M) [V1 ‖ V2]`` for signal head ``i`` and
    ``O2_g = softmax(σ Q2_g K2ᵀ + M) [V1 ‖ V2]`` for noise head ``g`` (module docstring: the layout).

    Args:
        q: ``(..., H, n, d)``, ``H = (r + 1) H₂`` query heads in groups ``[signal × r, noise]``.
        k: ``(..., H_kv, m, d)``, ``H_kv`` even with ``H_kv / 2`` dividing ``H₂``; v: ``(..., H_kv, m, d_v)``.
        ratio: ``r = H₁ / H₂``, signal heads per noise head (``r = 1``: DIFF V1's balanced heads).
        lam: λ, DIFF V1's per-layer scalar (see :func:`reparameterised_lambda`).
        lam_init: the output factor ``(1 − λ_init)`` (see :func:`lambda_init`); None: no factor.
        norm: apply the headwise RMSNorm over the ``2 d_v`` output features (the paper's operator);
            False returns the bare difference ``O1 − λ O2``.
        norm_weight: RMSNorm gain of shape ``(2 d_v,)``; None: ones.
        eps: RMSNorm ε (>= 0).
        scale: σ, default ``d ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., H, n, m)`` over the query heads (a ``(n, m)`` mask serves
            every head); True = attend. A noise head's pattern serves the signal heads of its group.

    Returns:
        ``(..., H₁, n, 2 d_v)`` float64 (vLLM reshapes it to ``2 H₁`` heads of width ``d_v``). A query with
        no visible key returns zeros.
    """
    q = as_float_array("q", q, min_ndim=3)
    k = as_float_array("k", k, min_ndim=3)
    v = as_float_array("v", v, min_ndim=3)
    r, _, _ = check_layout(q, k, ratio)
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k/v: expected the same leading dims and length (..., m, *), got k{k.shape} and v{v.shape}")
    lam_value = check_float("lam", lam)
    factor = 1.0 if lam_init is None else 1.0 - check_float("lam_init", lam_init)
    apply_norm = check_bool("norm", norm)
    eps_value = check_float("eps", eps, minimum=0.0)
    d_out = 2 * v.shape[-1]
    weight = (
        np.ones(d_out, dtype=compute_dtype())
        if norm_weight is None
        else as_float_array("norm_weight", norm_weight, min_ndim=1, ndim=1)
    )
    if weight.shape != (d_out,):
        raise ValueError(f"norm_weight: expected shape ({d_out},) (2 d_v, the output width), got {weight.shape}")
    allowed = allowed_positions(q.shape[-2], k.shape[-2], causal=causal, mask=mask, lead=q.shape[:-2])
    signal_q, noise_q = split_query_heads(q, r)
    signal_mask, noise_mask = allowed, allowed
    if allowed.ndim >= 3 and allowed.shape[-3] == q.shape[-3] > 1:  # one pattern per query head
        signal_mask, noise_mask = split_query_heads(allowed, r)
    k1, k2 = split_kv_pairs(k)
    v1, v2 = split_kv_pairs(v)
    values = np.concatenate([v1, v2], axis=-1)
    signal = softmax_attention(signal_q, k1, values, scale=scale, mask=signal_mask)
    noise = softmax_attention(noise_q, k2, values, scale=scale, mask=noise_mask)
    out = signal - lam_value * share_noise(noise, r)
    if apply_norm:
        out = rms_norm(out, weight, eps_value)
    return factor * out
