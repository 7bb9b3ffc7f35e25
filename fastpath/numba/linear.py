"""Numba fast path of normalised linear attention.

Source: Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv 2006.16236); chunked evaluation as
fla's ``naive_chunk_linear_attn``. Causal: for chunk ``c`` of ``C`` tokens,
``O_c = (Φ(Q_c) S + tril(Φ(Q_c) Φ(K_c)ᵀ) [V_c | 1]) ⊘ (… + ε)`` with the running state
``S = Σ_{t<c} Φ(K_t)ᵀ [V_t | 1]`` (the ones column carries the normaliser ``z``); every product is a
BLAS GEMM of size ``C × d``. Non-causal: ``S = Φ(K)ᵀ [V | 1]`` once, then ``Φ(Q) S``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from attnlab.fastpath.numba._common import (
    as_slices,
    attention_maps,
    fast_dtype,
    float_arrays,
    numba_checked,
    poisoned,
    precision,
)
from attnlab.reference.linear import DEFAULT_EPS, FEATURE_MAPS, apply_feature_map, check_eps, resolve_feature_map
from attnlab.validation import check_bool, check_choice, check_last_dim

CHUNK = 64

#: Feature maps evaluated inside the kernel; any other callable is applied in NumPy beforehand.
_FUSED_MAPS = {"elu1": 1, "relu": 2}


@njit(cache=True, fastmath=False)
def _feature_rows(x3, idx, r0, r1, kind):
    """``φ(x3[idx, r0:r1])`` as a C-contiguous block; kind 0: identity, 1: elu + 1, 2: relu."""
    block = np.empty((r1 - r0, x3.shape[2]), dtype=x3.dtype)
    for r in range(r1 - r0):
        for c in range(x3.shape[2]):
            x = x3[idx, r0 + r, c]
            if kind == 1:
                block[r, c] = x + 1.0 if x > 0 else np.exp(x)
            elif kind == 2:
                block[r, c] = x if x > 0 else 0.0
            else:
                block[r, c] = x
    return block


@njit(cache=True, fastmath=False)
def _values_with_ones(v3, idx, r0, r1):
    dv = v3.shape[2]
    block = np.empty((r1 - r0, dv + 1), dtype=v3.dtype)
    for r in range(r1 - r0):
        for c in range(dv):
            block[r, c] = v3[idx, r0 + r, c]
        block[r, dv] = 1.0
    return block


@njit(cache=True, fastmath=False)
def _normalise_into(out, b, r0, num, eps):
    dv = out.shape[2]
    for r in range(num.shape[0]):
        inv = 1.0 / (num[r, dv] + eps)
        for c in range(dv):
            out[b, r0 + r, c] = num[r, c] * inv


@njit(cache=True, fastmath=False, parallel=True)
def _linear_causal_chunked(q3, k3, v3, q_map, kv_map, kind, eps, chunk, out):
    slices, n = out.shape[0], out.shape[1]
    dk, dv = q3.shape[2], v3.shape[2]
    for b in prange(slices):
        qi, ki = q_map[b], kv_map[b]
        state = np.zeros((dk, dv + 1), dtype=q3.dtype)
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            fq = _feature_rows(q3, qi, r0, r1, kind)
            fk = _feature_rows(k3, ki, r0, r1, kind)
            vc = _values_with_ones(v3, ki, r0, r1)
            local = np.dot(fq, fk.T)
            for r in range(r1 - r0):
                for c in range(r + 1, r1 - r0):
                    local[r, c] = 0.0
            num = np.dot(fq, state) + np.dot(local, vc)
            _normalise_into(out, b, r0, num, eps)
            state += np.dot(fk.T, vc)


@njit(cache=True, fastmath=False, parallel=True)
def _linear_global(q3, k3, v3, q_map, kv_map, kind, eps, chunk, out):
    slices, n = out.shape[0], out.shape[1]
    m, dk, dv = k3.shape[1], q3.shape[2], v3.shape[2]
    for b in prange(slices):
        qi, ki = q_map[b], kv_map[b]
        state = np.zeros((dk, dv + 1), dtype=q3.dtype)
        for r0 in range(0, m, chunk):
            r1 = min(m, r0 + chunk)
            fk = _feature_rows(k3, ki, r0, r1, kind)
            state += np.dot(fk.T, _values_with_ones(v3, ki, r0, r1))
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            _normalise_into(out, b, r0, np.dot(_feature_rows(q3, qi, r0, r1, kind), state), eps)


@numba_checked
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

    Same call as :func:`attnlab.reference.linear_attention`: ``q (..., H, n, d_k)``,
    ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; ``causal`` needs ``n == m``. ``form``
    selects the reference's evaluation order and is only validated here (the chunked kernel computes
    the same operator). Returns ``(..., H, n, d_v)`` in the input float dtype.
    """
    check_choice("form", form, ("quadratic", "recurrent"))
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    lead, q_map, kv_map = attention_maps(qa, ka, va)
    phi = resolve_feature_map(feature_map)
    causal = check_bool("causal", causal)
    eps = check_eps(eps, feature_map)
    n, m, dv = qa.shape[-2], ka.shape[-2], va.shape[-1]
    if causal and n != m:
        raise ValueError(f"q/k: causal linear attention needs equal query and key lengths, got n={n}, m={m}")
    kind = next((code for name, code in _FUSED_MAPS.items() if phi is FEATURE_MAPS[name]), 0)
    if kind == 0:
        with precision(dtype):
            qa = apply_feature_map(phi, qa, "q", positive=eps == 0.0)
            ka = apply_feature_map(phi, ka, "k", qa.shape[-1], positive=eps == 0.0)
    out = poisoned((len(q_map), n, dv), dtype)
    kernel = _linear_causal_chunked if causal else _linear_global
    kernel(as_slices(qa), as_slices(ka), as_slices(va), q_map, kv_map, kind, float(eps), CHUNK, out)
    return out.reshape(*lead, n, dv)
