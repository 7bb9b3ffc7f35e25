"""Numba backward (VJP) of tensor (Kronecker) attention over key pairs.

Source: Alman & Song, "How to Capture Higher-order Correlations? Generalizing Matrix Softmax
Attention to Kronecker Computation", ICLR 2024 (arXiv 2310.04064). Forward, per query ``i`` over the
visible pairs ``(j, k)``: ``S_ijk = σ Σ_l q_il k1_jl k2_kl``, ``P_i = softmax(S_i)`` over the whole
``(j, k)`` matrix, ``o_i = Σ_jk P_ijk (v1_j ∘ v2_k)``. With ``dO_i = ∂loss/∂o_i``, ``D_i = dO_i·o_i``:

    dS_ijk = P_ijk (dO_i·(v1_j ∘ v2_k) − D_i),
    dV1_j += dO_i ∘ (P_i V2)_j,                 dV2_k += (P_iᵀ (V1 ∘ dO_i))_k,
    dQ_i  = σ Σ_j k1_j ∘ (dS_i K2)_j,           dK1_j += σ q_i ∘ (dS_i K2)_j,
    dK2_k += (dS_iᵀ (K1 ∘ σ q_i))_k.

The backward recomputes ``S_i`` and ``P_i`` per query (``O(m1·m2)`` memory, never the ``n·m1·m2``
logit cube), so each query costs six ``(j, k)``-block GEMMs. The key ranges are contiguous, which also
serves causal tensor attention and windowed 2-simplicial attention (:mod:`.simplicial`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import njit

from attnlab.fastpath.numba._common import as_slices
from attnlab.fastpath.numba._kernels import NEG_INF
from attnlab.fastpath.numba.backward._plumbing import fold_slices, upstream_gradient
from attnlab.fastpath.numba.tensor import prepare_pair_inputs
from attnlab.reference.tensor import check_pair_magnitudes
from attnlab.validation import check_bool, check_scale, gradients_checked


@njit(cache=True)
def _block(x3, idx, r0, r1):
    """Rows ``r0..r1`` of slice ``idx`` as a fresh C-contiguous ``(r1 − r0, c)`` array (GEMM operand)."""
    return np.ascontiguousarray(x3[idx, r0:r1])


@njit(cache=True)
def query_backward(q3, k13, k23, v13, v23, do3, maps, b, i, lo1, hi1, lo2, hi2, scale, dq, dk1, dk2, dv1, dv2):
    """Add query ``i``'s share of the gradients of output slice ``b``, its visible pairs being
    ``[lo1, hi1) × [lo2, hi2)``: recompute ``S_i``, ``P_i`` (``w1 × w2``) and apply the equations above."""
    qi, k1i, k2i, v1i, v2i = maps[0, b], maps[1, b], maps[2, b], maps[3, b], maps[4, b]
    d, dv = q3.shape[2], v13.shape[2]
    w1 = hi1 - lo1
    scaled_q = q3[qi, i] * q3.dtype.type(scale)
    k1w = _block(k13, k1i, lo1, hi1)
    k2w = _block(k23, k2i, lo2, hi2)
    v1w = _block(v13, v1i, lo1, hi1)
    v2w = _block(v23, v2i, lo2, hi2)
    grad = do3[b, i]
    keys1 = k1w * scaled_q  # (w1, d): K1 ∘ σ q_i
    probs = np.dot(keys1, k2w.T)  # S_i, then P_i in place
    peak = NEG_INF
    for j in range(probs.shape[0]):
        for k in range(probs.shape[1]):
            peak = max(peak, probs[j, k])
    total = 0.0
    for j in range(probs.shape[0]):
        for k in range(probs.shape[1]):
            p = math.exp(probs[j, k] - peak)
            probs[j, k] = p
            total += p
    probs *= probs.dtype.type(1.0 / total)
    mixed = np.dot(probs, v2w)  # (P_i V2)_j, (w1, dv)
    values1 = v1w * grad  # V1 ∘ dO_i
    delta = 0.0  # D_i = dO_i · o_i with o_i = Σ_j v1_j ∘ (P_i V2)_j
    for j in range(w1):
        for c in range(dv):
            delta += values1[j, c] * mixed[j, c]
    score_grad = np.dot(values1, v2w.T)  # dO_i·(v1_j ∘ v2_k), then dS_i in place
    row_delta = score_grad.dtype.type(delta)
    for j in range(score_grad.shape[0]):
        for k in range(score_grad.shape[1]):
            score_grad[j, k] = probs[j, k] * (score_grad[j, k] - row_delta)
    dv1[b, lo1:hi1] += mixed * grad
    dv2[b, lo2:hi2] += np.dot(probs.T, values1)
    through_k2 = np.dot(score_grad, k2w)  # (dS_i K2)_j, (w1, d)
    dk1[b, lo1:hi1] += through_k2 * scaled_q
    dk2[b, lo2:hi2] += np.dot(score_grad.T, keys1)
    for c in range(d):
        acc = 0.0
        for j in range(w1):
            acc += k1w[j, c] * through_k2[j, c]
        dq[b, i, c] = acc * scale


@njit(cache=True, nogil=True)
def pair_attention_backward(
    q3, k13, k23, v13, v23, do3, maps, scale, causal, window1, window2, first, stop, dq, dk1, dk2, dv1, dv2
):
    """Output slices ``first..stop``: the gradients of
    ``o_i = Σ_{(j,k) visible} softmax(σ⟨q_i, k1_j, k2_k⟩) (v1_j ∘ v2_k)`` w.r.t. the five inputs.

    Visible pairs as :func:`attnlab.fastpath.numba.tensor.pair_attention_forward`. ``dk1``, ``dk2``,
    ``dv1``, ``dv2`` are zero-initialised by the caller; ``dq`` is written row by row. Serial and
    GIL-free: callers run disjoint slice ranges on threads (a ``parallel=True`` kernel would double
    the cold compile time for no gain at this granularity).
    """
    n = dq.shape[1]
    m1, m2 = k13.shape[1], k23.shape[1]
    for b in range(first, stop):
        for i in range(n):
            lo1, hi1, lo2, hi2 = 0, m1, 0, m2
            if causal:
                lo1, hi1 = max(0, i - window1 + 1), i + 1
                lo2, hi2 = max(0, i - window2 + 1), i + 1
            query_backward(q3, k13, k23, v13, v23, do3, maps, b, i, lo1, hi1, lo2, hi2, scale, dq, dk1, dk2, dv1, dv2)


def pair_attention_grads(
    grad: np.ndarray,
    arrays: list[np.ndarray],
    maps: np.ndarray,
    *,
    scale: float,
    causal: bool,
    window1: int,
    window2: int,
) -> tuple[np.ndarray, ...]:
    """Gradients ``(dq, dk1, dk2, dv1, dv2)`` of the pair-attention kernel for validated arrays of one dtype.

    ``grad`` has the output shape ``(*lead, n, d_v)``; each gradient is shaped like its array (copies
    of a broadcast input sum into it).
    """
    qa, k1a, k2a, v1a = arrays[:4]
    dtype = qa.dtype
    # The rows of dS_i sum to zero, so dK1/dK2 are sums that cancel; at large logits (a near one-hot
    # P_i) float32 accumulation left 14x the oracle's float32 error in dK2. Float32 inputs are therefore
    # differentiated in float64 and the gradients rounded once at the end.
    work = np.dtype(np.float64)
    arrays = [a.astype(work) for a in arrays]
    grad = grad.astype(work)
    slices = maps.shape[1]
    n, d, dv = qa.shape[-2], qa.shape[-1], v1a.shape[-1]
    m1, m2 = k1a.shape[-2], k2a.shape[-2]
    dq = np.empty((slices, n, d), dtype=work)
    dk1 = np.zeros((slices, m1, d), dtype=work)
    dk2 = np.zeros((slices, m2, d), dtype=work)
    dv1 = np.zeros((slices, m1, dv), dtype=work)
    dv2 = np.zeros((slices, m2, dv), dtype=work)
    do3 = np.ascontiguousarray(grad.reshape(-1, n, dv))
    inputs = tuple(as_slices(a) for a in arrays)
    outputs = (dq, dk1, dk2, dv1, dv2)

    def run(first: int, stop: int) -> None:
        pair_attention_backward(  # type: ignore[call-arg]
            *inputs, do3, maps, float(scale), bool(causal), int(window1), int(window2), first, stop, *outputs
        )

    workers = max(1, min(numba.get_num_threads(), slices))
    bounds = np.linspace(0, slices, workers + 1).astype(np.int64)
    if workers == 1:
        run(0, slices)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, bounds[:-1].tolist(), bounds[1:].tolist()))
    per_output = (dq, dk1, dk2, dv1, dv2)
    return tuple(fold_slices(g, maps[a], arrays[a].shape).astype(dtype) for a, g in enumerate(per_output))


@gradients_checked
def tensor_vjp(
    grad_out: Any,
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vector-Jacobian product of :func:`attnlab.fastpath.numba.tensor.tensor_attention`.

    Args:
        grad_out: ``∂loss/∂O`` of shape ``(..., n, d_v)`` (the output's shape).
        q: ``(..., n, d)``; k1, v1: ``(..., m1, d)``, ``(..., m1, d_v)``; k2, v2: ``(..., m2, d)``,
            ``(..., m2, d_v)`` (leading dims broadcast).
        scale, causal: as the forward (σ default ``1/d``; ``causal`` keeps ``j, k <= i`` and needs
            ``n == m1 == m2``).

    Returns:
        ``(dq, dk1, dk2, dv1, dv2)`` shaped and typed like the inputs (float32 stays float32).
    """
    arrays, lead, maps = prepare_pair_inputs(q, k1, k2, v1, v2)
    qa, k1a, k2a, v1a = arrays[:4]
    sigma = check_scale(scale, 1.0 / qa.shape[-1])
    causal = check_bool("causal", causal)
    n, m1, m2 = qa.shape[-2], k1a.shape[-2], k2a.shape[-2]
    if causal and not (n == m1 == m2):
        raise ValueError(f"q/k1/k2: causal tensor attention needs n == m1 == m2, got {n}, {m1}, {m2}")
    check_pair_magnitudes(arrays, sigma, qa.dtype)
    grad = upstream_gradient(grad_out, (*lead, n, v1a.shape[-1]), qa.dtype)
    dq, dk1, dk2, dv1, dv2 = pair_attention_grads(grad, arrays, maps, scale=sigma, causal=causal, window1=n, window2=n)
    return dq, dk1, dk2, dv1, dv2
