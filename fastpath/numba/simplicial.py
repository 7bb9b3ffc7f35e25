"""Numba fast path of causal windowed 2-simplicial attention.

Source: Roy et al., "Fast and Simplex: 2-Simplicial Attention in Triton" (arXiv 2507.02754); Clift
et al. 2019. Query ``i`` sees the pairs ``(j, k)`` with ``i − w1 < j <= i`` and ``i − w2 < k <= i``:
both ranges are contiguous, so each query is one ``w1 × d`` by ``d × w2`` GEMM plus a softmax over
its ``w1·w2`` logits and a second GEMM — ``O(n·w1·w2·d)`` work and ``O(w1·w2)`` memory per task
(the kernel of :mod:`.tensor`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import numba_checked
from attnlab.fastpath.numba.tensor import prepare_pair_inputs, run_pair_attention
from attnlab.reference.tensor import check_pair_magnitudes
from attnlab.validation import check_bool, check_positive_int, check_same_length, check_scale


@numba_checked
def simplicial_attention(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> np.ndarray:
    """Causal windowed 2-simplicial attention ``o_i = Σ_{(j,k) ∈ window} softmax(σ⟨q_i, k1_j, k2'_k⟩) (v1_j ∘ v2'_k)``.

    Same call as :func:`attnlab.reference.simplicial_attention`: ``q, k1, k2 (..., n, d)``,
    ``v1, v2 (..., n, d_v)``, windows ``w1, w2 >= 1``, σ default ``1/√d``; ``kv_bias`` uses
    ``k2' = k2 + 1/d``, ``v2' = v2 + 1`` (the FBGEMM reference default). Returns ``(..., n, d_v)``
    in the input float dtype.
    """
    arrays, lead, maps = prepare_pair_inputs(q, k1, k2, v1, v2)
    w1 = check_positive_int("window1", window1)
    w2 = check_positive_int("window2", window2)
    qa = arrays[0]
    d = qa.shape[-1]
    sigma = check_scale(scale, d**-0.5)
    kv_bias = check_bool("kv_bias", kv_bias)
    check_same_length(("q", "k1", "k2"), arrays[:3])
    check_same_length(("q", "v1", "v2"), (qa, arrays[3], arrays[4]))
    n = qa.shape[-2]
    w1, w2 = min(w1, n), min(w2, n)  # a window past the sequence start sees the whole prefix
    if kv_bias:
        arrays[2] = arrays[2] + qa.dtype.type(1.0 / d)
        arrays[4] = arrays[4] + qa.dtype.type(1.0)
    check_pair_magnitudes(arrays, sigma, qa.dtype)
    return run_pair_attention(arrays, lead, maps, sigma, True, w1, w2)
