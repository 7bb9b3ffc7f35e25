"""Agent attention: a few agent tokens aggregate the keys and values, then broadcast them to the queries.

Source: Han, Ye, Han, Xia, Pan, Wan, Song & Huang 2024, "Agent Attention: On the Integration of Softmax and
Linear Attention" (ECCV 2024, arXiv 2312.08874), §3.2; released code LeapLabTHU/Agent-Attention
(``agent_deit.py::AgentAttention``). With agent tokens ``A ∈ R^{n_a × d_k}``:

    V_A = softmax_row(σ A Kᵀ + B_1) V          (agent aggregation)
    O   = softmax_row(σ Q Aᵀ + B_2) V_A        (agent broadcast)

so ``O = φ_q(Q) φ_k(K)ᵀ V`` with ``φ_q(Q) = softmax(σ Q Aᵀ)`` and ``φ_k(K)ᵀ = softmax(σ A Kᵀ)``: a
generalised linear attention of cost ``O(n · n_a · d)``. The agents are the queries average-pooled to
``n_a`` tokens: in the code, ``AdaptiveAvgPool2d`` over the patch grid to ``p × p`` (``n_a = p²``,
default 49); for a 1-d sequence this reference pools adaptively along the tokens (the same segment rule,
``floor(t·n/n_a) … ceil((t+1)·n/n_a) − 1``). Agents may also be passed explicitly.

The code's position biases ``B_1, B_2`` (interpolated tables plus row/column terms) enter here as the
additive arrays they produce; its depthwise convolution on ``V`` added to the output and the class-token
handling are layers around the attention operator and are not part of it. There is no causal form: the
pooled agents mix every query.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)

DEFAULT_AGENTS = 49


def segments(length: int, parts: int) -> list[tuple[int, int]]:
    """Adaptive-pooling windows: part ``t`` covers ``floor(t·L/P) … ceil((t+1)·L/P) − 1``."""
    return [((t * length) // parts, -((-(t + 1) * length) // parts)) for t in range(parts)]


def pool_agents(q: np.ndarray, num_agents: int, grid: tuple[int, int] | None = None) -> np.ndarray:
    """Agent tokens: ``q (..., n, d)`` average-pooled to ``(..., num_agents, d)``.

    Without ``grid`` the pooling runs along the tokens. With ``grid = (h, w)`` (``h·w = n``, tokens in
    row-major order) it runs over the 2-d layout to ``p × p`` windows, ``num_agents = p²``, agents in
    row-major order, as ``AdaptiveAvgPool2d`` in the released code.
    """
    if grid is None:
        return np.stack([q[..., a:b, :].mean(axis=-2) for a, b in segments(q.shape[-2], num_agents)], axis=-2)
    h, w = grid
    p = math.isqrt(num_agents)
    image = q.reshape(*q.shape[:-2], h, w, q.shape[-1])
    rows = segments(h, p)
    cols = segments(w, p)
    return np.stack([image[..., r0:r1, c0:c1, :].mean(axis=(-3, -2)) for r0, r1 in rows for c0, c1 in cols], axis=-2)


def aggregate(
    agents: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, bias: Any, allowed: np.ndarray
) -> np.ndarray:
    """``V_A = softmax(σ A Kᵀ + B_1) V`` over the keys each agent may see."""
    logits = sigma * (agents @ np.swapaxes(k, -1, -2))
    if bias is not None:
        logits = logits + bias
    return masked_softmax(logits, allowed) @ v


def broadcast(q: np.ndarray, agents: np.ndarray, agent_values: np.ndarray, sigma: float, bias: Any) -> np.ndarray:
    """``O = softmax(σ Q Aᵀ + B_2) V_A``."""
    logits = sigma * (q @ np.swapaxes(agents, -1, -2))
    if bias is not None:
        logits = logits + bias
    return masked_softmax(logits, np.ones(logits.shape[-2:], dtype=bool)) @ agent_values


def check_grid(grid: Any, n: int, num_agents: int) -> tuple[int, int] | None:
    if grid is None:
        return None
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g > 0 for g in grid)
    ):
        raise TypeError(f"grid: expected a pair of positive ints (h, w), got {grid!r}")
    h, w = int(grid[0]), int(grid[1])
    if h * w != n:
        raise ValueError(f"grid: expected h·w equal to the {n} query tokens, got {h}×{w} = {h * w}")
    if math.isqrt(num_agents) ** 2 != num_agents:
        raise ValueError(f"num_agents: a 2-d grid pools to p×p agents, expected a perfect square, got {num_agents}")
    return h, w


def check_bias(name: str, bias: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A float bias broadcastable to ``shape``, or None."""
    if bias is None:
        return None
    arr = as_float_array(name, bias)
    try:
        fits = arr.ndim <= len(shape) and np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: expected an additive bias broadcastable to {shape}, got shape {arr.shape}")
    return arr


def check_agents_lead(agents_shape: tuple[int, ...], q_shape: tuple[int, ...]) -> None:
    """Explicit ``agents (..., n_a, d)`` may broadcast to the leading dims of ``q`` but not enlarge them."""
    try:
        lead = np.broadcast_shapes(tuple(agents_shape[:-2]), tuple(q_shape[:-2]))
    except ValueError:
        lead = None
    if lead != tuple(q_shape[:-2]):
        raise ValueError(
            f"agents: expected leading dims broadcastable to those of q {tuple(q_shape[:-2])}, "
            f"got shape {tuple(agents_shape)}"
        )


@overflow_checked
def agent_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    agents: Any = None,
    num_agents: int = DEFAULT_AGENTS,
    grid: tuple[int, int] | None = None,
    scale: float | None = None,
    mask: Any = None,
    agent_bias: Any = None,
    query_bias: Any = None,
) -> np.ndarray:
    """Agent attention ``O = softmax(σ Q Aᵀ + B_2) · softmax(σ A Kᵀ + B_1) V``.

    Args:
        q: queries ``(..., H, n, d_k)``; k: keys ``(..., H_kv, m, d_k)``; v: values ``(..., H_kv, m, d_v)``;
            ``H_kv`` divides ``H`` (query head ``h`` reads KV head ``h // (H / H_kv)``).
        agents: explicit agent tokens ``(..., n_a, d_k)`` (broadcast against ``q``); when None they are the
            queries average-pooled to ``num_agents`` tokens.
        num_agents: ``n_a`` for the pooled agents (49 in the paper's DeiT models).
        grid: ``(h, w)`` with ``h·w = n``: pool over the 2-d token layout to ``p × p`` (``num_agents = p²``).
        scale: σ of both softmaxes, default ``d_k ** -0.5``.
        mask: boolean, broadcastable to ``(..., n_a, m)``: the keys each agent aggregates (True = attend;
            a ``(1, m)`` row masks padded keys for every agent). An agent with no visible key carries 0.
        agent_bias: additive ``B_1`` broadcastable to ``(..., n_a, m)``.
        query_bias: additive ``B_2`` broadcastable to ``(..., n, n_a)``.

    Returns:
        ``(..., H, n, d_v)`` float64.
    """
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    n, m = q.shape[-2], k.shape[-2]
    if agents is None:
        count = check_positive_int("num_agents", num_agents)
        layout = check_grid(grid, n, count)
        tokens = pool_agents(q, count, layout)
    else:
        if grid is not None or num_agents != DEFAULT_AGENTS:
            raise ValueError("agents: given explicitly, so num_agents and grid must be left unset")
        tokens = as_float_array("agents", agents)
        check_last_dim("agents", tokens, q.shape[-1], "d_k, the last axis of q")
        check_agents_lead(tokens.shape, q.shape)
        tokens = np.broadcast_to(tokens, (*q.shape[:-2], *tokens.shape[-2:]))
    n_a, lead = tokens.shape[-2], q.shape[:-2]
    b1 = check_bias("agent_bias", agent_bias, (*lead, n_a, m))
    b2 = check_bias("query_bias", query_bias, (*lead, n, n_a))
    allowed = allowed_positions(n_a, m, causal=False, mask=mask, lead=lead)
    agent_values = aggregate(tokens, k, v, sigma, b1, allowed)
    return broadcast(q, tokens, agent_values, sigma, b2)
