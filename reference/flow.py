"""Flow-Attention (Flowformer): linear attention with conserved incoming and outgoing flows.

Source: Wu, Wu, Xu, Wang & Long 2022, "Flowformer: Linearizing Transformers with Conservation Flows"
(ICML 2022, arXiv 2202.06258), §3; released code thuml/Flowformer (``Flow_Attention.py``). Queries are
sinks, keys sources, ``φ = sigmoid`` the non-negative map. With ``ε >= 0`` (0 in the paper's equations,
1e-6 in the code) and ``S_k = Σ_j φ(k_j)``, ``S_q = Σ_i φ(q_i)``:

    I_i = (φ(q_i) + ε)·(S_k + ε)                        incoming flow of sink i
    O_j = (φ(k_j) + ε)·(S_q + ε)                        outgoing flow of source j
    Î_i = (φ(q_i) + ε)·(Σ_j φ(k_j)/O_j + ε)             incoming flow with the sources conserved
    Ô_j = (φ(k_j) + ε)·(Σ_i φ(q_i)/I_i + ε)             outgoing flow with the sinks conserved
    c = m · softmax_j(Ô)    (competition),   a_i = sigmoid(Î_i · n/m)    (allocation)
    o_i = a_i · Σ_j [φ(q_i)·φ(k_j) / I_i] c_j v_j

evaluated in linear time as ``a ⊙ ((φ(Q)/I) (φ(K)ᵀ (c ⊙ V)))``. Causal (``n = m``): every sum becomes a prefix
sum, ``I`` and ``O`` are normalised by the position count ``t + 1`` (``Î, Ô`` divided by it), the competition is
``c_t = (t+1) e^{Ô_t} / Σ_{j<=t} e^{Ô_j}`` and the allocation ``sigmoid(Î_t)``, as in ``Flow_Attention_Causal``.
The code also clamps ``Ô`` to ``[−1, 1]`` "for stability" (``clamp=1.0`` here; the paper has no clamp).

With competition and allocation switched off and ``ε = 0`` the operator is linear attention with the sigmoid
feature map. Two evaluations: the linear-time form and the quadratic form that materialises the flow matrices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from attnlab.validation import as_float_array, check_bool, check_last_dim, expand_kv_heads, overflow_checked

FORMS = ("linear_time", "quadratic")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^{−x})`` without overflow for either sign."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class FlowParts(NamedTuple):
    """The flow quantities of one call, each ``(..., n)`` (sinks) or ``(..., m)`` (sources)."""

    incoming: np.ndarray
    outgoing: np.ndarray
    conserved_sink: np.ndarray
    conserved_source: np.ndarray
    allocation: np.ndarray
    competition: np.ndarray


def competition_weights(source: np.ndarray, causal: bool) -> np.ndarray:
    """``m · softmax(Ô)``, or causally ``(t+1) e^{Ô_t} / Σ_{j<=t} e^{Ô_j}`` (a running log-sum-exp)."""
    m = source.shape[-1]
    if not causal:
        shifted = np.exp(source - np.max(source, axis=-1, keepdims=True))
        return m * shifted / np.sum(shifted, axis=-1, keepdims=True)
    running = np.logaddexp.accumulate(source, axis=-1)
    return np.arange(1, m + 1, dtype=source.dtype) * np.exp(source - running)


def linear_flows(fq: np.ndarray, fk: np.ndarray, eps: float, causal: bool) -> tuple[np.ndarray, ...]:
    """``(I, O, Î, Ô)`` from the feature sums (prefix sums when causal), in ``O(n d)``."""
    if causal:
        count = np.arange(1, fq.shape[-2] + 1, dtype=fq.dtype)
        sum_k, sum_q = np.cumsum(fk, axis=-2), np.cumsum(fq, axis=-2)
        incoming = np.sum((fq + eps) * (sum_k + eps), axis=-1) / count
        outgoing = np.sum((fk + eps) * (sum_q + eps), axis=-1) / count
        sink = np.sum((fq + eps) * (np.cumsum(fk / outgoing[..., None], axis=-2) + eps), axis=-1) / count
        source = np.sum((fk + eps) * (np.cumsum(fq / incoming[..., None], axis=-2) + eps), axis=-1) / count
        return incoming, outgoing, sink, source
    sum_k, sum_q = fk.sum(axis=-2, keepdims=True), fq.sum(axis=-2, keepdims=True)
    incoming = np.sum((fq + eps) * (sum_k + eps), axis=-1)
    outgoing = np.sum((fk + eps) * (sum_q + eps), axis=-1)
    sink = np.sum((fq + eps) * (np.sum(fk / outgoing[..., None], axis=-2, keepdims=True) + eps), axis=-1)
    source = np.sum((fk + eps) * (np.sum(fq / incoming[..., None], axis=-2, keepdims=True) + eps), axis=-1)
    return incoming, outgoing, sink, source


def quadratic_flows(fq: np.ndarray, fk: np.ndarray, eps: float, causal: bool) -> tuple[np.ndarray, ...]:
    """``(I, O, Î, Ô)`` as row and column sums of the ``n × m`` flow matrices (lower-triangular when causal)."""
    n, m = fq.shape[-2], fk.shape[-2]
    keep = np.tril(np.ones((n, m), dtype=fq.dtype)) if causal else np.ones((n, m), dtype=fq.dtype)  # causal: n == m
    count = np.arange(1, n + 1, dtype=fq.dtype) if causal else np.ones(n, dtype=fq.dtype)
    to_keys = keep * ((fq + eps) @ np.swapaxes(fk, -1, -2))  # (φ(q_i) + ε)·φ(k_j)
    to_queries = (keep if causal else 1.0) * ((fk + eps) @ np.swapaxes(fq, -1, -2))  # (φ(k_j) + ε)·φ(q_i), i <= j
    pad_q = eps * np.sum(fq + eps, axis=-1)  # (φ(q_i) + ε)·ε1
    pad_k = eps * np.sum(fk + eps, axis=-1)
    incoming = (to_keys.sum(-1) + pad_q) / count
    outgoing = (to_queries.sum(-1) + pad_k) / (np.arange(1, m + 1, dtype=fq.dtype) if causal else 1.0)
    sink = ((to_keys / outgoing[..., None, :]).sum(-1) + pad_q) / count
    source = ((to_queries / incoming[..., None, :]).sum(-1) + pad_k) / (
        np.arange(1, m + 1, dtype=fq.dtype) if causal else 1.0
    )
    return incoming, outgoing, sink, source


def check_flow_options(eps: Any, clamp: Any) -> tuple[float, float | None]:
    """``ε >= 0`` finite; ``clamp`` None or a positive finite float."""
    if (
        isinstance(eps, (bool, np.bool_))
        or not isinstance(eps, (int, float, np.number))
        or not (np.isfinite(eps) and eps >= 0)
    ):
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    if clamp is not None and (
        isinstance(clamp, (bool, np.bool_))
        or not isinstance(clamp, (int, float, np.number))
        or not (np.isfinite(clamp) and clamp > 0)
    ):
        raise ValueError(f"clamp: expected a positive finite float or None, got {clamp!r}")
    return float(eps), None if clamp is None else float(clamp)


def _prepare(q: Any, k: Any, v: Any, causal: Any, eps: Any, clamp: Any, *, values: bool = True):
    """Validated features and options; ``values=False``: the flows alone (no ``v``; a stand-in is used)."""
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v) if values else k[..., :1]
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    causal = check_bool("causal", causal)
    eps, clamp = check_flow_options(eps, clamp)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal flow attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    return sigmoid(q), sigmoid(k), v, causal, eps, clamp


def flow_quantities(
    fq: np.ndarray, fk: np.ndarray, eps: float, clamp: float | None, causal: bool, form: str
) -> FlowParts:
    """All flow quantities from the features ``φ(q), φ(k)`` by the chosen evaluation."""
    flows = linear_flows if form == "linear_time" else quadratic_flows
    incoming, outgoing, sink, source = flows(fq, fk, eps, causal)
    if clamp is not None:
        source = np.clip(source, -clamp, clamp)
    ratio = 1.0 if causal else fq.shape[-2] / fk.shape[-2]
    allocation = sigmoid(sink * ratio)
    return FlowParts(incoming, outgoing, sink, source, allocation, competition_weights(source, causal))


def flow_parts(
    q: Any, k: Any, *, causal: bool = False, eps: float = 0.0, clamp: float | None = None, form: str = "linear_time"
) -> FlowParts:
    """The incoming/outgoing flows, their conserved refinements, allocation and competition of a call."""
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    fq, fk, _, causal, eps, clamp = _prepare(q, k, None, causal, eps, clamp, values=False)
    return flow_quantities(fq, fk, eps, clamp, causal, form)


def linear_product(fq: np.ndarray, fk: np.ndarray, values: np.ndarray, causal: bool) -> np.ndarray:
    """``Σ_j φ(q_i)·φ(k_j) x_j`` (``j <= i`` when causal) through ``φ(K)ᵀ X`` or its prefix sums."""
    if not causal:
        return fq @ (np.swapaxes(fk, -1, -2) @ values)
    state = np.cumsum(fk[..., :, :, None] * values[..., :, None, :], axis=-3)
    return np.einsum("...td,...tdc->...tc", fq, state)


@overflow_checked
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
    """Flow-Attention ``o_i = a_i Σ_j [φ(q_i)·φ(k_j)/I_i] c_j v_j`` with ``φ = sigmoid``.

    Args:
        q: sinks ``(..., H, n, d_k)``; k: sources ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``;
            ``H_kv`` divides ``H``. No ``1/√d`` scale (the original has none).
        causal: prefix sums with the code's position normalisation (needs ``n == m``).
        eps: ``ε`` of the flow sums (0: the paper's equations; 1e-6: the released code).
        clamp: clamp ``Ô`` to ``[−clamp, clamp]`` (1.0 in the released code; None: no clamp).
        competition, allocation: the two conservation mechanisms (switch off for the ablations).
        form: ``"linear_time"`` (``O(n d²)``) or ``"quadratic"`` (explicit flow matrices); equal to rounding.

    Returns:
        ``(..., H, n, d_v)``.
    """
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    fq, fk, v, causal, eps, clamp = _prepare(q, k, v, causal, eps, clamp)
    competition = check_bool("competition", competition)
    allocation = check_bool("allocation", allocation)
    parts = flow_quantities(fq, fk, eps, clamp, causal, form)
    values = v * parts.competition[..., None] if competition else v
    if form == "linear_time":
        spread = linear_product(fq, fk, values, causal)
    else:
        weights = fq @ np.swapaxes(fk, -1, -2)
        spread = (np.tril(weights) if causal else weights) @ values
    count = np.arange(1, fq.shape[-2] + 1, dtype=fq.dtype) if causal else 1.0
    out = spread / (parts.incoming * count)[..., None]
    return out * parts.allocation[..., None] if allocation else out
