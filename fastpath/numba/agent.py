"""Numba path of agent attention: the pooled agents, then the flash-style softmax kernel twice.

Source: Han et al. 2024, "Agent Attention" (ECCV 2024, arXiv 2312.08874), §3.2; see
:mod:`attnlab.reference.agent`. Agent aggregation and broadcast are each a softmax attention
(:func:`attnlab.fastpath.numba.softmax.softmax_attention`), the agents a window mean of the queries.
Position biases are not supported here (the softmax kernel takes none); the torch path has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import attention_maps, fast_dtype, float_arrays
from attnlab.fastpath.numba.softmax import softmax_attention
from attnlab.reference.agent import DEFAULT_AGENTS, check_agents_lead, check_bias, check_grid, pool_agents
from attnlab.validation import check_last_dim, check_positive_int, numba_checked


@numba_checked
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
    """``O = softmax(σ Q Aᵀ) · softmax(σ A Kᵀ) V`` (same call as the reference, without biases)."""
    dtype = fast_dtype(q, k, v)
    qa, ka, va = float_arrays(("q", "k", "v"), (q, k, v), dtype)
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    attention_maps(qa, ka, va)  # the reference's GQA and batch checks, under the caller's names
    if agents is None:
        count = check_positive_int("num_agents", num_agents)
        a = pool_agents(qa, count, check_grid(grid, qa.shape[-2], count)).astype(dtype)
    else:
        if grid is not None or num_agents != DEFAULT_AGENTS:
            raise ValueError("agents: given explicitly, so num_agents and grid must be left unset")
        (a,) = float_arrays(("agents",), (agents,), dtype)
        check_last_dim("agents", a, qa.shape[-1], "d_k, the last axis of q")
        check_agents_lead(a.shape, qa.shape)
        a = np.broadcast_to(a, (*qa.shape[:-2], *a.shape[-2:]))
    lead, n_a, m = a.shape[:-2], a.shape[-2], ka.shape[-2]
    checked = (
        check_bias("agent_bias", agent_bias, (*lead, n_a, m)),
        check_bias("query_bias", query_bias, (*lead, qa.shape[-2], n_a)),
    )
    if any(b is not None for b in checked):
        raise ValueError("agent_bias/query_bias: the Numba path has no position biases; use the torch path")
    agent_values = softmax_attention(a, ka, va, scale=scale, mask=mask)
    return softmax_attention(qa, a, agent_values, scale=scale)
