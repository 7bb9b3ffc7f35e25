"""Attention as a many-to-many RNN: Aaren (Feng et al. 2024), by a parallel prefix scan.

Source: Leo Feng, Frederick Tung, Hossein Hajimirsadeghi, Mohamed Osama Ahmed, Yoshua Bengio, Greg Mori,
"Attention as an RNN", 2024, arXiv 2405.13956v2, §3 (Methodology: attention as a many-to-one RNN, its
many-to-many output by a parallel prefix scan, and Aaren with a learned, input-independent query).

One query token ``q`` (learned, per head) attends causally to the prefix of a key/value sequence:

    s_i = σ q·k_i,    o_t = Σ_{i<=t} e^{s_i} v_i / Σ_{i<=t} e^{s_i}    for every t = 0 … m − 1.

The prefix sums are a scan over the elements ``(μ_i, ℓ_i, a_i) = (s_i, 1, v_i)`` under the online-softmax
combine

    (μ_a, ℓ_a, a_a) ⊕ (μ_b, ℓ_b, a_b) = (μ, ℓ_a e^{μ_a−μ} + ℓ_b e^{μ_b−μ}, a_a e^{μ_a−μ} + a_b e^{μ_b−μ}),
    μ = max(μ_a, μ_b),

an associative operation with identity ``(−∞, 0, 0)``; ``o_t = a_t / ℓ_t`` of the inclusive prefix
``⊕_{i<=t}``. The paper leaves the logit scale open; attnlab exposes it as ``scale`` with the SDPA
default ``d_k ** -0.5`` so that Aaren is exactly prefix softmax attention with the same defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_logsumexp, masked_softmax
from attnlab.reference.softmax import _prepare_qk, merge_partial_attention
from attnlab.validation import as_float_array, check_bool, overflow_checked

FORMS = ("scan", "recurrent", "parallel")

State = tuple[np.ndarray, np.ndarray, np.ndarray]


def aaren_combine(a: State, b: State) -> State:
    """The online-softmax monoid ``a ⊕ b`` on ``(μ, ℓ, acc)`` triples (``acc`` has a trailing value axis).

    ``μ`` is a running max, ``ℓ = Σ e^{s−μ}`` and ``acc = Σ e^{s−μ} v``; ``(−∞, 0, 0)`` is the identity.
    """
    mu_a, ell_a, acc_a = a
    mu_b, ell_b, acc_b = b
    mu = np.maximum(mu_a, mu_b)
    safe = np.where(np.isfinite(mu), mu, 0.0)
    wa = np.where(np.isfinite(mu_a), np.exp(mu_a - safe), 0.0)
    wb = np.where(np.isfinite(mu_b), np.exp(mu_b - safe), 0.0)
    return mu, wa * ell_a + wb * ell_b, wa[..., None] * acc_a + wb[..., None] * acc_b


def _identity(lead: tuple[int, ...], d_v: int, dtype: np.dtype) -> State:
    return np.full(lead, -np.inf, dtype=dtype), np.zeros(lead, dtype=dtype), np.zeros((*lead, d_v), dtype=dtype)


def _scan(elements: State) -> State:
    """Inclusive prefix scan along axis -1 of ``μ``/``ℓ`` (axis -2 of ``acc``) by recursive doubling.

    Hillis & Steele's scan: after the round with offset ``2^r`` element ``t`` holds the combine of the
    ``2^{r+1}`` elements ending at ``t``; ``⌈log2 m⌉`` rounds of element-wise combines, the parallel
    algorithm of the paper's §3 (any associative-scan schedule gives the same result).
    """
    mu, ell, acc = (np.array(x) for x in elements)
    m = mu.shape[-1]
    offset = 1
    while offset < m:
        left = (mu[..., :-offset], ell[..., :-offset], acc[..., :-offset, :])
        right = (mu[..., offset:], ell[..., offset:], acc[..., offset:, :])
        new_mu, new_ell, new_acc = aaren_combine(left, right)
        mu[..., offset:], ell[..., offset:], acc[..., offset:, :] = new_mu, new_ell, new_acc
        offset *= 2
    return mu, ell, acc


def check_state(initial_state: Any, lead: tuple[int, ...], d_v: int) -> State | None:
    """A resumed call's ``(max, sum, acc)``, validated against the call's leading axes and ``d_v`` (every path)."""
    if initial_state is None:
        return None
    if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 3:
        raise TypeError("initial_state: expected a (max, sum, acc) triple from return_state=True, or None")
    try:  # the running max may be -inf (an empty prefix), so it is not checked as a finite array
        mu = np.asarray(initial_state[0], dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"initial_state[0]: expected float running maxima, got {type(initial_state[0]).__name__}"
        ) from None
    ell = as_float_array("initial_state[1]", initial_state[1], min_ndim=0)
    acc = as_float_array("initial_state[2]", initial_state[2], min_ndim=1)
    if mu.shape != lead or ell.shape != lead or acc.shape != (*lead, d_v):
        raise ValueError(
            f"initial_state: expected shapes {lead}, {lead}, {(*lead, d_v)}, got {mu.shape}, {ell.shape}, {acc.shape}"
        )
    if np.any(np.isnan(mu)) or np.any(mu == np.inf) or np.any(ell < 0):
        raise ValueError("initial_state: expected max in [-inf, inf) and a non-negative sum")
    if np.any(np.isneginf(mu) & ((ell != 0) | np.any(acc != 0, axis=-1))):
        raise ValueError("initial_state: a max of -inf (an empty prefix) needs a sum and an acc of 0")
    return mu.astype(ell.dtype), ell, acc


@overflow_checked
def aaren_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    form: str = "scan",
    initial_state: State | None = None,
    return_state: bool = False,
) -> Any:
    """Aaren: every prefix output ``o_t = Σ_{i<=t} softmax_i(σ q·k_i) v_i`` of one query token.

    Args:
        q: the query token ``(..., H, 1, d_k)`` (Aaren's learned, input-independent query).
        k: keys ``(..., H_kv, m, d_k)``; ``H_kv`` divides ``H`` (query head ``h`` reads KV head
            ``h // (H / H_kv)``).
        v: values ``(..., H_kv, m, d_v)``.
        scale: σ, default ``d_k ** -0.5``.
        form: ``"scan"`` (parallel prefix scan, the paper's many-to-many evaluation), ``"recurrent"``
            (one token at a time, O(d_v) state) or ``"parallel"`` (masked prefix softmax); they agree to
            rounding.
        initial_state: ``(μ, ℓ, acc)`` of shapes ``(..., H)``, ``(..., H)``, ``(..., H, d_v)`` from a
            previous call with ``return_state=True``: the keys of that call precede these.
        return_state: also return the final ``(μ, ℓ, acc)``, so that splitting a sequence and resuming
            equals one run.

    Returns:
        ``(..., H, m, d_v)`` float64 (and the state when ``return_state``).
    """
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    return_state = check_bool("return_state", return_state)
    qa, ka, va, sigma, _ = _prepare_qk(q, k, v, scale=scale, causal=False, mask=None)
    if qa.shape[-2] != 1:
        raise ValueError(f"q: expected one query token, shape (..., H, 1, d_k), got shape {np.shape(q)}")
    lead, m, d_v = ka.shape[:-2], ka.shape[-2], va.shape[-1]
    state = check_state(initial_state, lead, d_v)
    scores = sigma * np.einsum("...d,...md->...m", qa[..., 0, :], ka)
    if form == "parallel":
        visible = np.tril(np.ones((m, m), dtype=bool))
        logits = np.broadcast_to(scores[..., None, :], (*lead, m, m))
        out = masked_softmax(logits, visible) @ va
        lse = masked_logsumexp(logits, visible)
        if state is not None:
            mu0, ell0, acc0 = state
            with np.errstate(divide="ignore", invalid="ignore"):
                out0 = np.where(ell0[..., None] > 0, acc0 / np.where(ell0 > 0, ell0, 1.0)[..., None], 0.0)
                lse0 = np.where(ell0 > 0, mu0 + np.log(np.where(ell0 > 0, ell0, 1.0)), -np.inf)
            out, lse = merge_partial_attention(out, lse, out0[..., None, :], lse0[..., None])
        if not return_state:
            return out
        peak = scores.max(axis=-1)
        weights = np.exp(scores - peak[..., None])
        final = (peak, weights.sum(-1), np.einsum("...m,...mc->...c", weights, va))
        return out, final if state is None else aaren_combine(state, final)
    ones = np.ones_like(scores)
    if form == "scan":
        elements: State = (scores, ones, va)
        if state is not None:
            elements = (
                np.concatenate([state[0][..., None], scores], axis=-1),
                np.concatenate([state[1][..., None], ones], axis=-1),
                np.concatenate([state[2][..., None, :], va], axis=-2),
            )
        mu, ell, acc = _scan(elements)
        if state is not None:
            mu, ell, acc = mu[..., 1:], ell[..., 1:], acc[..., 1:, :]
        out = acc / ell[..., None]
        final = (mu[..., -1], ell[..., -1], acc[..., -1, :])
    else:
        carry = state if state is not None else _identity(lead, d_v, va.dtype)
        out = np.empty((*lead, m, d_v), dtype=va.dtype)
        for t in range(m):
            carry = aaren_combine(carry, (scores[..., t], ones[..., t], va[..., t, :]))
            out[..., t, :] = carry[2] / carry[1][..., None]
        final = carry
    return (out, final) if return_state else out
