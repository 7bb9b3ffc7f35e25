"""Numba path of Flow-Attention: the flows in NumPy (``O((n + m) d)``), the product through the chunked linear
attention kernel.

Source: Wu et al. 2022, "Flowformer" (ICML 2022, arXiv 2202.06258), §3; see :mod:`attnlab.reference.flow`.
The output is ``a_i Σ_j φ(q_i)·φ(k_j) c_j v_j / (I_i·t_i)``; the kernel of
:func:`attnlab.fastpath.numba.linear.linear_attention` with the identity feature map and ``ε = 0`` on
``(φ(Q), φ(K), c ⊙ V)`` returns the same sum divided by ``φ(q_i)·Σ_{j visible} φ(k_j)``, which is rescaled here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays, precision
from attnlab.fastpath.numba.linear import linear_attention
from attnlab.reference.flow import FORMS, check_flow_options, flow_quantities, sigmoid
from attnlab.validation import check_bool, check_last_dim, expand_kv_heads, numba_checked


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@numba_checked
def flow_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    eps: float = 0.0,
    clamp: float | None = None,
    competition: bool = True,
    allocation: bool = True,
    form: str = "linear_time",
) -> np.ndarray:
    """Flow-Attention (same call as the reference), in the input float dtype."""
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    causal = check_bool("causal", causal)
    eps, clamp = check_flow_options(eps, clamp)
    competition = check_bool("competition", competition)
    allocation = check_bool("allocation", allocation)
    if causal and qa.shape[-2] != ka.shape[-2]:
        raise ValueError(
            f"q/k: causal flow attention needs equal query and key lengths, got n={qa.shape[-2]}, m={ka.shape[-2]}"
        )
    with precision(dtype):
        qe, ke, ve = expand_kv_heads(qa, ka, va)
        fq, fk = sigmoid(qe).astype(dtype), sigmoid(ke).astype(dtype)
        parts = flow_quantities(fq, fk, eps, clamp, causal, "linear_time")
        values = (ve * parts.competition[..., None]).astype(dtype) if competition else ve
        spread = linear_attention(fq, fk, values, feature_map=_identity, causal=causal, eps=0.0)
        key_sums = np.cumsum(fk, axis=-2) if causal else fk.sum(axis=-2, keepdims=True)
        count = np.arange(1, fq.shape[-2] + 1, dtype=dtype) if causal else 1.0
        rescale = np.sum(fq * key_sums, axis=-1) / (parts.incoming * count)
        out = spread * rescale[..., None]
        if allocation:
            out = out * parts.allocation[..., None]
    return np.asarray(out, dtype=dtype)
