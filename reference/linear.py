"""Normalised kernelised ("linear") attention.

Source: Katharopoulos et al. 2020, "Transformers are RNNs: Fast Autoregressive Transformers with
Linear Attention" (arXiv 2006.16236). Three equivalent evaluations are provided and tested against
each other: the quadratic (parallel) form, the recurrent prefix-sum form and the chunked form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.validation import (
    InputOverflow,
    as_float_array,
    check_bool,
    check_choice,
    check_last_dim,
    check_positive_int,
    check_real,
    checked_call,
    expand_kv_heads,
    overflow_checked,
)

FeatureMap = Callable[[np.ndarray], np.ndarray]

DEFAULT_EPS = 1e-6


def elu_plus_one(x: np.ndarray) -> np.ndarray:
    """``φ(x) = elu(x) + 1``: ``x + 1`` for ``x > 0`` and ``exp(x)`` otherwise (strictly positive)."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def relu_feature(x: np.ndarray) -> np.ndarray:
    """``φ(x) = max(x, 0)``; not strictly positive, so a row can have a zero normaliser."""
    return np.maximum(x, 0.0)


FEATURE_MAPS: dict[str, FeatureMap] = {"elu1": elu_plus_one, "relu": relu_feature}


def check_chunked_is_causal(form: str, causal: bool) -> None:
    """The chunked evaluation is a causal prefix scan: a non-causal call names another form (every path of
    the linear-attention families that offer the chunked form)."""
    if not causal and form == "chunked":
        raise ValueError("form: the 'chunked' evaluation is causal; a non-causal call uses 'quadratic' or 'recurrent'")


def resolve_feature_map(feature_map: Any) -> FeatureMap:
    if callable(feature_map):
        return feature_map
    if isinstance(feature_map, str) and feature_map in FEATURE_MAPS:
        return FEATURE_MAPS[feature_map]
    raise ValueError(f"feature_map: expected one of {sorted(FEATURE_MAPS)} or a callable, got {feature_map!r}")


def check_eps(eps: Any, feature_map: Any) -> float:
    """``eps >= 0``, and ``eps > 0`` with ``relu``: relu features vanish, and a query whose normaliser
    ``φ(q)·Σφ(k)`` is 0 would divide 0 by 0 (``elu1`` is strictly positive; a callable's features are
    checked to be positive when ``eps = 0``, see :func:`apply_feature_map`)."""
    value = check_real("eps", eps, minimum=0.0, what="a non-negative finite float")
    if value == 0.0 and isinstance(feature_map, str) and feature_map == "relu":
        raise ValueError(
            "eps: expected eps > 0 with feature_map='relu': relu features vanish, and a query whose normaliser "
            "φ(q)·Σφ(k) is 0 would divide 0 by 0 (eps = 0 suits the strictly positive 'elu1')"
        )
    return value


def apply_feature_map(
    phi: FeatureMap, x: np.ndarray, name: str, d_phi: int | None = None, *, positive: bool
) -> np.ndarray:
    """``φ(x)`` checked like an array argument: finite floats of shape ``(..., rows of x, d_φ)``, and
    strictly positive where ``positive`` (``eps = 0``: a zero normaliser would divide 0 by 0)."""
    if phi in FEATURE_MAPS.values():
        return phi(x)
    label = f"feature_map({name})"
    features = as_float_array(label, checked_call(label, phi, x), layout=f"(..., {x.shape[-2]}, d_φ)")
    if features.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"{label}: expected shape {(*x.shape[:-1], 'd_φ')} (the rows of {name}), got {features.shape}")
    if d_phi is not None and features.shape[-1] != d_phi:
        raise ValueError(f"{label}: expected last axis of size {d_phi} (d_φ of feature_map(q)), got {features.shape}")
    if positive and not np.all(features > 0):
        # the checked operator's wrapper names the arguments of the call
        raise InputOverflow((), features.dtype, "a zero feature with eps = 0: a zero normaliser divides 0 by 0")
    return features


def _prepare(q: Any, k: Any, v: Any, feature_map: Any, causal: Any, eps: Any):
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    phi = resolve_feature_map(feature_map)
    causal = check_bool("causal", causal)
    eps = check_eps(eps, feature_map)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    fq = apply_feature_map(phi, q, "q", positive=eps == 0.0)
    return fq, apply_feature_map(phi, k, "k", fq.shape[-1], positive=eps == 0.0), v, causal, eps


def _initial_state(initial_state: Any, lead: tuple[int, ...], d_phi: int, d_v: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
        raise TypeError(f"initial_state: expected a pair (S, z), got {type(initial_state).__name__}")
    state = as_float_array("initial_state[0]", initial_state[0], layout="(..., d_φ, d_v)")
    norm = as_float_array("initial_state[1]", initial_state[1], min_ndim=1, layout="(..., d_φ)", nonempty=1)
    if state.shape[-2:] != (d_phi, d_v) or norm.shape[-1] != d_phi:
        raise ValueError(
            f"initial_state: expected S (..., {d_phi}, {d_v}) and z (..., {d_phi}), got {state.shape} and {norm.shape}"
        )
    try:
        state = np.array(np.broadcast_to(state, (*lead, d_phi, d_v)))
        norm = np.array(np.broadcast_to(norm, (*lead, d_phi)))
    except ValueError:
        raise ValueError(
            f"initial_state: leading dims must broadcast to {lead}, got {state.shape} and {norm.shape}"
        ) from None
    return state, norm


@overflow_checked
def linear_attention_quadratic(
    q: Any, k: Any, v: Any, *, feature_map: Any = "elu1", causal: bool = False, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Parallel form ``A = φ(Q) φ(K)ᵀ`` (lower-triangular if causal), ``O = A V ⊘ (A 1 + ε)``."""
    fq, fk, v, causal, eps = _prepare(q, k, v, feature_map, causal, eps)
    a = fq @ np.swapaxes(fk, -1, -2)
    if causal:
        a = np.tril(a)
    return (a @ v) / (a.sum(axis=-1, keepdims=True) + eps)


@overflow_checked
def linear_attention_recurrent(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = True,
    eps: float = DEFAULT_EPS,
    initial_state: tuple[np.ndarray, np.ndarray] | None = None,
    return_state: bool = False,
) -> Any:
    """Recurrent form: ``S_t = S_{t-1} + φ(k_t) v_tᵀ``, ``z_t = z_{t-1} + φ(k_t)``,
    ``o_t = S_tᵀ φ(q_t) / (φ(q_t)ᵀ z_t + ε)``.

    Non-causal calls use the final state for every query. ``initial_state = (S, z)`` with shapes
    ``(..., d_φ, d_v)`` and ``(..., d_φ)`` continues a previous call; ``return_state=True`` returns
    ``(O, (S, z))`` so that split-then-resume equals one run.
    """
    fq, fk, v, causal, eps = _prepare(q, k, v, feature_map, causal, eps)
    lead = fq.shape[:-2]
    d_phi, d_v = fk.shape[-1], v.shape[-1]
    return_state = check_bool("return_state", return_state)
    if initial_state is None:
        state = np.zeros((*lead, d_phi, d_v), dtype=fq.dtype)
        norm = np.zeros((*lead, d_phi), dtype=fq.dtype)
    else:
        state, norm = _initial_state(initial_state, lead, d_phi, d_v)
    out = np.empty((*lead, fq.shape[-2], d_v), dtype=fq.dtype)
    if causal:
        for t in range(fq.shape[-2]):
            state = state + fk[..., t, :, None] * v[..., t, None, :]
            norm = norm + fk[..., t, :]
            num = np.einsum("...p,...pc->...c", fq[..., t, :], state)
            den = np.einsum("...p,...p->...", fq[..., t, :], norm)[..., None] + eps
            out[..., t, :] = num / den
    else:
        state = state + np.swapaxes(fk, -1, -2) @ v
        norm = norm + fk.sum(axis=-2)
        out[...] = (fq @ state) / ((fq @ norm[..., None]) + eps)
    if return_state:
        return out, (state, norm)
    return out


@overflow_checked
def linear_attention_chunked(
    q: Any, k: Any, v: Any, *, feature_map: Any = "elu1", chunk_size: int = 64, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Causal chunked form (fla ``naive_chunk``): for chunk ``c``,
    ``O_c = (Q_c S_{<c} + tril(Q_c K_cᵀ) V_c) ⊘ (Q_c z_{<c} + tril(Q_c K_cᵀ) 1 + ε)``.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    fq, fk, v, _, eps = _prepare(q, k, v, feature_map, True, eps)
    lead = fq.shape[:-2]
    n = fq.shape[-2]
    state = np.zeros((*lead, fk.shape[-1], v.shape[-1]), dtype=fq.dtype)
    norm = np.zeros((*lead, fk.shape[-1]), dtype=fq.dtype)
    out = np.empty((*lead, n, v.shape[-1]), dtype=fq.dtype)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        qc, kc, vc = fq[..., start:stop, :], fk[..., start:stop, :], v[..., start:stop, :]
        local = np.tril(qc @ np.swapaxes(kc, -1, -2))
        num = qc @ state + local @ vc
        den = qc @ norm[..., None] + local.sum(axis=-1, keepdims=True) + eps
        out[..., start:stop, :] = num / den
        state = state + np.swapaxes(kc, -1, -2) @ vc
        norm = norm + kc.sum(axis=-2)
    return out


_FORMS = {
    "quadratic": linear_attention_quadratic,
    "recurrent": linear_attention_recurrent,
}


@overflow_checked
def linear_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = False,
    eps: float = DEFAULT_EPS,
    form: str = "quadratic",
) -> np.ndarray:
    """Normalised linear attention ``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``.
        feature_map: ``"elu1"`` (φ = elu + 1, the paper's), ``"relu"`` or a callable.
        causal: sum over ``j <= i`` only (requires ``n == m``).
        eps: added to the normaliser (1e-6, as fast-transformers).
        form: ``"quadratic"`` (parallel) or ``"recurrent"`` (prefix sums); they agree to rounding.

    Returns:
        ``(..., H, n, d_v)``. No ``1/√d`` scale (the original has none).
    """
    form = check_choice("form", form, sorted(_FORMS))
    return _FORMS[form](q, k, v, feature_map=feature_map, causal=causal, eps=eps)
