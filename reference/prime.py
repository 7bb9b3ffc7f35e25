"""Prime attention, attention with dynamic relational priming (Lee & Clark 2025): a reading.

Source: Hunjae Lee, Corey Clark, "Dynamic Relational Priming Improves Transformer in Multivariate Time
Series", 2025, arXiv 2509.12196 (abstract): each token is "tailored dynamically (or per interaction)
through learnable modulations" for every token pair, at the asymptotic cost of standard attention.

The abstract does not give the equations; attnlab implements this reading (``status="reading"``): the
key and value of token ``j`` are modulated per pair ``(i, j)`` by filters ``F, G``,

    k_{j|i} = F_ij ⊙ k_j,   v_{j|i} = G_ij ⊙ v_j,
    s_ij = σ q_i·k_{j|i} = σ Σ_c q_ic F_ijc k_jc,   o_i = Σ_j softmax_j(s_i + M_i)_j (G_ij ⊙ v_j),

i.e. ``S = σ einsum('id,ijd,jd->ij', Q, F, K)`` and ``O = einsum('ij,ijd,jd->id', A, G, V)``. With
``F = G = 1`` (the neutral filters) it is softmax attention exactly. How the paper parameterises or
sparsifies the filters is not known here; they are inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import as_float_array, check_magnitude, max_abs, overflow_checked


def _filter(name: str, given: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """``given`` broadcast to ``shape = (*lead, n, m, d)`` (None: the neutral all-ones filter)."""
    if given is None:
        return None
    arr = as_float_array(name, given, min_ndim=3, layout="(..., n, m, d)")
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{name}: expected an array broadcastable to {shape} (..., n, m, d), got shape {arr.shape}"
        ) from None


def check_prime_magnitudes(maxima: tuple[float, ...], d: int, m: int, sigma: float, dtype: Any) -> None:
    """Reject inputs whose filtered logits ``σ Σ_c q_c F_c k_c`` or outputs ``Σ_j P_j G_j v_j`` can overflow
    (``einsum`` sets no floating-point flag); ``maxima`` are ``max |·|`` of q, k, v, F, G (1 for no filter).
    Shared by the reference and the torch path."""
    q, k, v, f, g = maxima
    check_magnitude(sigma * d * q * f * k, dtype, "a logit σ Σ q F k")
    check_magnitude(m * g * v, dtype, "an output Σ_j P_j G_j v_j")


@overflow_checked
def prime_attention(
    q: Any,
    k: Any,
    v: Any,
    key_filter: Any = None,
    value_filter: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Prime attention ``o_i = Σ_j softmax_j(σ Σ_c q_ic F_ijc k_jc) G_ij ⊙ v_j`` (a reading; see the module).

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)`` (query head ``h``
            reads KV head ``h // (H / H_kv)``).
        key_filter: ``F``, broadcastable to ``(..., H, n, m, d_k)``; None: all ones.
        value_filter: ``G``, broadcastable to ``(..., H, n, m, d_v)``; None: all ones.
        scale: σ, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; a query with no visible key returns zeros.
    """
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    lead, n, m = qa.shape[:-2], qa.shape[-2], ka.shape[-2]
    f = _filter("key_filter", key_filter, (*lead, n, m, qa.shape[-1]))
    g = _filter("value_filter", value_filter, (*lead, n, m, va.shape[-1]))
    filters = tuple(1.0 if x is None else max_abs(x) for x in (f, g))
    check_prime_magnitudes((max_abs(qa), max_abs(ka), max_abs(va), *filters), qa.shape[-1], m, sigma, qa.dtype)
    if f is None:
        scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    else:
        scores = sigma * np.einsum("...id,...ijd,...jd->...ij", qa, f, ka)
    weights = masked_softmax(scores, allowed)
    if g is None:
        return weights @ va
    return np.einsum("...ij,...ijd,...jd->...id", weights, g, va)
