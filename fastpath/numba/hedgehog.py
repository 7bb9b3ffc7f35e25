"""Numba fast path of Hedgehog (Zhang et al. 2024, arXiv 2402.04347; see :mod:`attnlab.reference.hedgehog`).

The projected features in NumPy (in the input dtype; the paper's ``e^{±y}`` shifted by ``μ_q`` per
query token and ``μ_k`` per slice, which cancel), then the chunked linear-attention kernel of
:mod:`attnlab.fastpath.numba.linear` with the identity map and ε = 0. The ε of the operator is put back
exactly afterwards: ``o = o₀ · d / (d + ε e^{−μ_q − μ_k})`` with ``d`` the shifted denominators, a
prefix sum of the key features (``O(n · 2d')``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import fast_dtype, float_arrays
from attnlab.fastpath.numba.linear import linear_attention
from attnlab.reference.hedgehog import (
    DEFAULT_EPS,
    check_feature_sizes,
    check_paper_exponents,
    hedgehog_fast_path_options,
    hedgehog_features,
    hedgehog_project,
)
from attnlab.validation import check_last_dim, expand_kv_heads, max_abs, numba_checked, reference_precision


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@numba_checked
def hedgehog_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    weight: Any = None,
    bias: Any = None,
    key_weight: Any = None,
    key_bias: Any = None,
    variant: str = "paper",
    causal: bool = False,
    eps: float = DEFAULT_EPS,
    form: str = "quadratic",
    chunk_size: int = 64,
    initial_state: Any = None,
    return_state: bool = False,
) -> np.ndarray:
    """Hedgehog linear attention (same call as the reference, without recurrent state); input float dtype out."""
    causal, eps = hedgehog_fast_path_options(
        "Numba",
        variant=variant,
        form=form,
        causal=causal,
        eps=eps,
        chunk_size=chunk_size,
        initial_state=initial_state,
        return_state=return_state,
    )
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    with reference_precision(dtype):
        qa, ka, va = expand_kv_heads(qa, ka, va)
        yq = hedgehog_project("", qa, weight, bias)
        tied = key_weight is None and key_bias is None
        yk = hedgehog_project("", ka, weight, bias) if tied else hedgehog_project("key_", ka, key_weight, key_bias)
    lead = np.broadcast_shapes(yq.shape[:-2], yk.shape[:-2], va.shape[:-2])
    yq, yk, va = (np.broadcast_to(x, (*lead, *x.shape[-2:])) for x in (yq, yk, va))
    if causal and yq.shape[-2] != yk.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={yq.shape[-2]}, m={yk.shape[-2]}"
        )
    if variant == "paper":
        check_paper_exponents(max_abs(yq), max_abs(yk))
    shift_q = np.abs(yq).max(-1, keepdims=True) if variant == "paper" else np.zeros((*yq.shape[:-1], 1), dtype)
    shift_k = np.abs(yk).max(axis=(-1, -2), keepdims=True) if variant == "paper" else np.zeros((*lead, 1, 1), dtype)
    check_feature_sizes(yq.shape[-1], yk.shape[-1])
    fq = hedgehog_features(yq, variant=variant, shift=shift_q).astype(dtype, copy=False)
    fk = hedgehog_features(yk, variant=variant, shift=shift_k).astype(dtype, copy=False)
    out = linear_attention(fq, fk, va, feature_map=_identity, causal=causal, eps=0.0)
    keys = np.cumsum(fk, axis=-2) if causal else np.broadcast_to(fk.sum(-2, keepdims=True), fq.shape)
    den = np.einsum("...nf,...nf->...n", fq, keys)[..., None]
    eps_rows = eps * np.exp(-shift_q - shift_k)
    return (out * (den / (den + eps_rows))).astype(dtype, copy=False)
