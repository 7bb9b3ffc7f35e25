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
