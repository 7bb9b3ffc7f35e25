"""Holographic attention: complex-valued scores, relative-phase coherence decay and coherent superposition.

Source: Huang et al. 2025, "Holographic Transformers for Complex-Valued Signal Processing: Integrating
Phase Interference into Self-Attention", arXiv 2509.19331 (abstract: attention "modulates interactions by
relative phase and coherently superimposes values"; the output is ``H_i = Σ_j α_ij V_j e^{iΔφ_ij}``). The
constants below (ε = 1e-8 added to both atan2 arguments and to the cosine denominator, decay
``α_h = softplus(a_h) + 1e-6`` with ``a_h = 0`` at initialisation, scale ``1/√d_k``) are those of the
authors' code, EonHao/Holographic-Transformers@453ccbc, ``attention.py``
(``HolographicMultiheadAttention.forward``); the paper's body was not available to the lab.

Per (batch, head), with complex ``q_i, k_j ∈ C^d`` and ``v_j ∈ C^{d_v}``::

    s_ij   = Σ_t q_it conj(k_jt)
    Δφ_ij  = atan2(Im s_ij + ε, Re s_ij + ε)                        ∈ [−π, π]
    sim_ij = Re s_ij / (‖q_i‖ ‖k_j‖ + ε)     (cosine=True; else Re s_ij)
    W_ij   = σ sim_ij exp(−α_h |Δφ_ij|)
    A      = softmax_row(W + M)
    o_i    = Σ_j A_ij e^{iΔφ_ij} v_j

Inputs may be complex or real (real arrays are read as complex with zero imaginary part); the output is
complex128 (complex64 inside ``reference_precision(float32)``). A real-valued caller takes ``.real`` of
the output, or calls :func:`holographic_attention_real_view`, which returns ``[Re O | Im O]`` as one real
array. (With real ``q, k`` the phases are ``≈ 0`` or ``≈ π``, so real values give an output that is real
up to the ε shift of the phases.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    array_library,
    check_bool,
    check_last_dim,
    check_real,
    check_scale,
    compute_dtype,
    expand_kv_heads,
    overflow_checked,
    type_name,
)
from attnlab.validation import as_complex_array as checked_complex_array

#: The released code's ε (both atan2 arguments and the cosine denominator).
PHASE_EPS = 1e-8
#: ``softplus(0) + 1e-6``: the released code's decay α at initialisation (its parameter ``a`` starts at 0).
DEFAULT_ALPHA = math.log(2.0) + 1e-6


def as_complex_array(name: str, x: Any, *, min_ndim: int = 2) -> np.ndarray:
    """``x`` as complex128 (complex64 in float32 reference precision) after checking type (a NumPy array:
    tensors are rejected by name), dtype (float or complex), rank and finiteness
    (:func:`attnlab.validation.as_complex_array`)."""
    return checked_complex_array(name, x, min_ndim=min_ndim)


def complex_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``s_ij = Σ_t q_it conj(k_jt)``, ``(..., n, m)``."""
    return q @ np.conj(np.swapaxes(k, -1, -2))


def relative_phase(s: np.ndarray, eps: float) -> np.ndarray:
    """``Δφ = atan2(Im s + ε, Re s + ε)``."""
    return np.arctan2(s.imag + eps, s.real + eps)


def similarity(s: np.ndarray, q: np.ndarray, k: np.ndarray, eps: float, cosine: bool) -> np.ndarray:
    """``Re s_ij / (‖q_i‖‖k_j‖ + ε)`` (cosine) or ``Re s_ij``."""
    if not cosine:
        return s.real
    q_norm = np.sqrt(np.sum(np.abs(q) ** 2, axis=-1))
    k_norm = np.sqrt(np.sum(np.abs(k) ** 2, axis=-1))
    return s.real / (q_norm[..., :, None] * k_norm[..., None, :] + eps)


def coherent_sum(weights: np.ndarray, phase: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``o_i = Σ_j A_ij e^{iΔφ_ij} v_j``."""
    return (weights * np.exp(1j * phase)) @ v


def check_holographic_options(q: np.ndarray, alpha: Any, eps: Any, cosine: Any) -> tuple[np.ndarray, float, bool]:
    """The decay α as an array broadcasting to ``(..., H, 1, 1)``, ε and the cosine flag, validated."""
    eps_value = check_real("eps", eps, minimum=0.0, what="a finite float >= 0")
    cosine = check_bool("cosine", cosine)
    if alpha is None:
        decay = np.array(DEFAULT_ALPHA, dtype=compute_dtype())
    elif isinstance(alpha, (bool, np.bool_, str)) or array_library(alpha) is not None or callable(alpha):
        raise TypeError(f"alpha: expected a float >= 0 or a NumPy array of one per head, got {type_name(alpha)}")
    else:
        decay = np.asarray(alpha)
        if decay.dtype.kind != "f":  # integer decays are refused like every integer array, not cast
            raise TypeError(f"alpha: expected a floating dtype (float16/float32/float64), got dtype {decay.dtype}")
        decay = decay.astype(compute_dtype())
        heads = q.shape[-3] if q.ndim >= 3 else None
        if decay.ndim == 1 and heads is None:
            raise ValueError(
                f"alpha: q has no head axis (shape {q.shape}), so alpha must be a scalar, got {decay.shape}"
            )
        if decay.ndim > 1 or (decay.ndim == 1 and decay.shape[0] != heads):
            raise ValueError(
                f"alpha: expected a scalar or one value per query head, shape ({heads},), got {decay.shape}"
            )
        if not np.all(np.isfinite(decay)) or np.any(decay < 0.0):
            raise ValueError(f"alpha: expected finite decays >= 0, got {decay.tolist()}")
    return (decay[:, None, None] if decay.ndim == 1 else decay), eps_value, cosine


@overflow_checked
def holographic_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    alpha: Any = None,
    scale: float | None = None,
    eps: float = PHASE_EPS,
    cosine: bool = True,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Holographic attention ``o_i = Σ_j softmax_j(σ sim_ij e^{−α|Δφ_ij|}) e^{iΔφ_ij} v_j``.

    Args:
        q: complex queries ``(..., H, n, d)`` (the bias-free or biased complex projections of the layer).
        k: complex keys ``(..., H_kv, m, d)``; ``H_kv`` divides ``H`` (query head ``h`` reads KV head
            ``h // (H / H_kv)``; the released code has H_kv = H).
        v: complex values ``(..., H_kv, m, d_v)``.
        alpha: the coherence decay α ≥ 0, a scalar or one per query head (default ``softplus(0) + 1e-6``, the
            released code's value at initialisation; a trained layer gives ``softplus(a_h) + 1e-6``).
        scale: σ, default ``d ** -0.5``.
        eps: ε in both atan2 arguments and the cosine denominator (1e-8; 0 gives the exact phase, with
            ``Δφ = 0`` for ``s = 0``).
        cosine: similarity ``Re s / (‖q‖‖k‖ + ε)`` (True, the default) or ``Re s``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (an extension; the released code is
            non-causal).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend. Hidden keys are excluded exactly
            (the released code fills padded logits with −1e9, which gives a uniform row when all are padded).

    Returns:
        ``(..., H, n, d_v)`` complex128 (complex64 in float32 reference precision); a query with no visible
        key returns zeros.
    """
    qa = as_complex_array("q", q)
    ka = as_complex_array("k", k)
    va = as_complex_array("v", v)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, va = expand_kv_heads(qa, ka, va)
    decay, eps_value, cosine = check_holographic_options(qa, alpha, eps, cosine)
    sigma = check_scale(scale, qa.shape[-1] ** -0.5)
    if cosine and eps_value == 0.0:
        for name, x in (("q", qa), ("k", ka)):
            if np.any(np.sum(np.abs(x) ** 2, axis=-1) == 0.0):
                raise ValueError(
                    f"{name}: an all-zero vector (or one whose squared norm underflows to 0) has no cosine "
                    "similarity when eps = 0"
                )
    s = complex_scores(qa, ka)
    phase = relative_phase(s, eps_value)
    logits = sigma * similarity(s, qa, ka, eps_value, cosine) * np.exp(-decay * np.abs(phase))
    allowed = allowed_positions(qa.shape[-2], ka.shape[-2], causal=causal, mask=mask, lead=qa.shape[:-2])
    return coherent_sum(masked_softmax(logits, allowed), phase, va)


def holographic_attention_real_view(
    q: Any,
    k: Any,
    v: Any,
    *,
    alpha: Any = None,
    scale: float | None = None,
    eps: float = PHASE_EPS,
    cosine: bool = True,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """:func:`holographic_attention` as one float64 array ``[Re O | Im O]`` of shape ``(..., H, n, 2 d_v)``."""
    out = holographic_attention(q, k, v, alpha=alpha, scale=scale, eps=eps, cosine=cosine, causal=causal, mask=mask)
    return np.concatenate([out.real, out.imag], axis=-1)
