"""Agent attention: the code's 2-d pooling, the two-hop identity at ViT size, and what it is not."""

from __future__ import annotations

import numpy as np
import torch

from attnlab.reference.agent import agent_attention, pool_agents
from attnlab.reference.softmax import softmax_attention


def test_grid_pooling_is_adaptive_avg_pool2d_of_the_query_grid() -> None:
    """The released code pools the 14×14 patch queries with AdaptiveAvgPool2d to 7×7 agents, row-major."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 196, 8))
    grid = torch.from_numpy(q).reshape(2, 14, 14, 8).permute(0, 3, 1, 2)
    want = torch.nn.functional.adaptive_avg_pool2d(grid, (7, 7)).reshape(2, 8, 49).permute(0, 2, 1).numpy()
    np.testing.assert_allclose(pool_agents(q, 49, (14, 14)), want, atol=1e-14)
    uneven = torch.nn.functional.adaptive_avg_pool2d(grid[..., :13, :11], (3, 3)).reshape(2, 8, 9).permute(0, 2, 1)
    np.testing.assert_allclose(
        pool_agents(q.reshape(2, 14, 14, 8)[:, :13, :11].reshape(2, 143, 8), 9, (13, 11)), uneven.numpy(), atol=1e-14
    )


def test_two_hop_identity_at_vit_size() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 3, 196, 32)) for _ in range(3))
    agents = pool_agents(q, 49, (14, 14))
    want = softmax_attention(q, agents, softmax_attention(agents, k, v))
    np.testing.assert_allclose(agent_attention(q, k, v, num_agents=49, grid=(14, 14)), want, atol=1e-12)


def test_agents_equal_to_the_keys_give_two_softmax_hops_over_the_keys() -> None:
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((5, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    want = softmax_attention(q, k, softmax_attention(k, k, v))
    np.testing.assert_allclose(agent_attention(q, k, v, agents=k), want, atol=1e-13)


def test_pooled_agents_break_query_permutation_equivariance() -> None:
    """Pooling mixes neighbouring queries, so permuting queries does not just permute the outputs."""
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((12, 4)), rng.standard_normal((7, 4)), rng.standard_normal((7, 3))
    perm = rng.permutation(12)
    moved = agent_attention(q[perm], k, v, num_agents=4)
    assert np.max(np.abs(moved - agent_attention(q, k, v, num_agents=4)[perm])) > 1e-3


def test_a_single_row_grid_pools_as_adaptive_avg_pool2d() -> None:
    """A 1 × w grid is a valid layout: the p row windows all cover the one row, as AdaptiveAvgPool2d does."""
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((2, 8, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    image = torch.from_numpy(q).reshape(2, 1, 8, 4).permute(0, 3, 1, 2)
    agents = torch.nn.functional.adaptive_avg_pool2d(image, (2, 2)).reshape(2, 4, 4).permute(0, 2, 1).numpy()
    want = softmax_attention(q, agents, softmax_attention(agents, k, v))
    np.testing.assert_allclose(agent_attention(q, k, v, num_agents=4, grid=(1, 8)), want, atol=1e-13)


def test_per_head_options_on_three_dim_inputs_match_head_by_head_calls() -> None:
    """Unbatched ``(H, n, d)`` inputs: a per-head mask and agent bias, agents and a query bias shared by the heads."""
    rng = np.random.default_rng(5)
    heads, n, m, n_a, d = 2, 5, 6, 3, 4
    q, k, v = rng.standard_normal((heads, n, d)), rng.standard_normal((heads, m, d)), rng.standard_normal((heads, m, 3))
    agents = rng.standard_normal((n_a, d))
    mask = rng.random((heads, n_a, m)) < 0.6
    mask[1, 0] = False  # an agent that sees no key carries 0
    agent_bias = rng.standard_normal((heads, n_a, m))
    query_bias = rng.standard_normal((n, n_a))
    got = agent_attention(q, k, v, agents=agents, mask=mask, agent_bias=agent_bias, query_bias=query_bias)
    for h in range(heads):
        alone = agent_attention(
            q[h], k[h], v[h], agents=agents, mask=mask[h], agent_bias=agent_bias[h], query_bias=query_bias
        )
        np.testing.assert_allclose(got[h], alone, atol=1e-14)
        weights = np.where(mask[h], np.exp(agents @ k[h].T / 2 + agent_bias[h]), 0.0)  # σ = d ** -0.5 = 1/2
        agent_values = (weights @ v[h]) / np.where(weights.any(-1, keepdims=True), weights.sum(-1, keepdims=True), 1.0)
        logits = np.exp(q[h] @ agents.T / 2 + query_bias)
        want = (logits / logits.sum(-1, keepdims=True)) @ agent_values
        np.testing.assert_allclose(alone, want, atol=1e-12)
