"""Numba backward (VJP) of normalised linear attention.

Source: Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv 2006.16236). With ``φ`` the
feature map, ``S_i = Σ_{j∈J(i)} φ(k_j) v_jᵀ`` and ``z_i = Σ_{j∈J(i)} φ(k_j)`` (``J(i) = {j ≤ i}`` if
causal, every key otherwise), the forward is ``num_i = φ(q_i)ᵀ S_i``, ``den_i = φ(q_i)·z_i + ε``,
``o_i = num_i / den_i``. Its VJP, with ``g_i = dO_i / den_i`` and ``h_i = −(dO_i·o_i) / den_i``:

    dφ(q_i) = S_i g_i + h_i z_i,
    dφ(k_j) = R_j v_j + r_j,   dv_j = R_jᵀ φ(k_j),   R_j = Σ_{i: j∈J(i)} φ(q_i) g_iᵀ,  r_j = Σ h_i φ(q_i),

then ``dq = dφ(q) ∘ φ'(q)`` (elu + 1: ``φ' = 1`` for ``x > 0``, ``e^x`` otherwise; relu: the step).
Causal: a prefix sweep for ``S, z`` and a suffix sweep for ``R, r``, ``O(n d d_v)`` per head and no
``n × m`` array; the state is accumulated in float64 whatever the input dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import as_slices, attention_maps, fast_dtype, float_arrays
from attnlab.fastpath.numba.backward._plumbing import fold_slices, upstream_gradient
from attnlab.reference.linear import DEFAULT_EPS, check_eps
from attnlab.validation import check_bool, check_choice, check_last_dim, gradients_checked

#: Feature maps with a closed-form derivative in the kernel (code passed to the kernel).
FEATURE_CODES = {"elu1": 1, "relu": 2}


@njit(cache=True)
def feature(x, kind):
    if kind == 1:
        return x + 1.0 if x > 0.0 else math.exp(x)
    return x if x > 0.0 else 0.0


@njit(cache=True)
def feature_slope(x, kind):
    if kind == 1:
        return 1.0 if x > 0.0 else math.exp(x)
    return 1.0 if x > 0.0 else 0.0


@njit(cache=True, parallel=True)
def linear_backward(q3, k3, v3, do3, q_map, kv_map, kind, eps, causal, dq, dk, dv):
    """Per output slice ``b``: ``dq[b]``, ``dk[b]``, ``dv[b]`` of normalised linear attention."""
    slices, n, d = dq.shape
    m, d_v = k3.shape[1], v3.shape[2]
    for b in prange(slices):
        qi, ki = q_map[b], kv_map[b]
        phi_q = np.empty((n, d))
        phi_k = np.empty((m, d))
        for i in range(n):
            for a in range(d):
                phi_q[i, a] = feature(np.float64(q3[qi, i, a]), kind)
        for j in range(m):
            for a in range(d):
                phi_k[j, a] = feature(np.float64(k3[ki, j, a]), kind)
        state = np.zeros((d, d_v))
        norm = np.zeros(d)
        g = np.empty((n, d_v))
        h = np.empty(n)
        if not causal:
            for j in range(m):
                for a in range(d):
                    norm[a] += phi_k[j, a]
                    for c in range(d_v):
                        state[a, c] += phi_k[j, a] * v3[ki, j, c]
        num = np.empty(d_v)
        for i in range(n):
            if causal:
                for a in range(d):
                    norm[a] += phi_k[i, a]
                    for c in range(d_v):
                        state[a, c] += phi_k[i, a] * v3[ki, i, c]
            den = eps
            for a in range(d):
                den += phi_q[i, a] * norm[a]
            num[:] = 0.0
            for a in range(d):
                for c in range(d_v):
                    num[c] += phi_q[i, a] * state[a, c]
            dot = 0.0
            for c in range(d_v):
                g[i, c] = do3[b, i, c] / den
                dot += do3[b, i, c] * num[c]
            h[i] = -dot / (den * den)
            for a in range(d):
                acc = h[i] * norm[a]
                for c in range(d_v):
                    acc += state[a, c] * g[i, c]
                dq[b, i, a] = acc * feature_slope(np.float64(q3[qi, i, a]), kind)
        back = np.zeros((d, d_v))
        back_norm = np.zeros(d)
        if not causal:
            for i in range(n):
                for a in range(d):
                    back_norm[a] += h[i] * phi_q[i, a]
                    for c in range(d_v):
                        back[a, c] += phi_q[i, a] * g[i, c]
        for j in range(m - 1, -1, -1):
            if causal:
                for a in range(d):
                    back_norm[a] += h[j] * phi_q[j, a]
                    for c in range(d_v):
                        back[a, c] += phi_q[j, a] * g[j, c]
            for a in range(d):
                acc = back_norm[a]
                for c in range(d_v):
                    acc += back[a, c] * v3[ki, j, c]
                dk[b, j, a] = acc * feature_slope(np.float64(k3[ki, j, a]), kind)
            for c in range(d_v):
                acc = 0.0
                for a in range(d):
                    acc += back[a, c] * phi_k[j, a]
                dv[b, j, c] = acc


@gradients_checked
def linear_vjp(
    grad_out: Any,
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = False,
    eps: float = DEFAULT_EPS,
    form: str = "quadratic",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.linear.linear_attention`.

    Args:
        grad_out: ``∂loss/∂O``, shape ``(..., H, n, d_v)``.
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; causal needs ``n == m``.
        feature_map: ``"elu1"`` or ``"relu"`` (a callable map has no derivative here: ``ValueError``).
        causal, eps, form: as the forward (every ``form`` is the same operator).

    Returns:
        ``(dq, dk, dv)`` shaped and typed like ``q``, ``k``, ``v``.
    """
    check_choice("form", form, ("quadratic", "recurrent"))
    if not isinstance(feature_map, str) or feature_map not in FEATURE_CODES:
        raise ValueError(f"feature_map: the VJP supports {sorted(FEATURE_CODES)}, got {feature_map!r}")
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    causal = check_bool("causal", causal)
    eps = check_eps(eps, feature_map)
    n, m, d, d_v = qa.shape[-2], ka.shape[-2], qa.shape[-1], va.shape[-1]
    if causal and n != m:
        raise ValueError(f"q/k: causal linear attention needs equal query and key lengths, got n={n}, m={m}")
    grad = upstream_gradient(grad_out, (*lead, n, d_v), dtype)
    slices = len(q_map)
    dq = np.empty((slices, n, d), dtype=dtype)
    dk = np.empty((slices, m, d), dtype=dtype)
    dv = np.empty((slices, m, d_v), dtype=dtype)
    linear_backward(
        as_slices(qa),
        as_slices(ka),
        as_slices(va),
        grad.reshape(slices, n, d_v),
        q_map,
        kv_map,
        FEATURE_CODES[feature_map],
        float(eps),
        causal,
        dq,
        dk,
        dv,
    )
    return fold_slices(dq, q_map, qa.shape), fold_slices(dk, kv_map, ka.shape), fold_slices(dv, kv_map, va.shape)
