"""MLA and the factorized interaction operator: structural facts beyond the registry invariants."""

from __future__ import annotations

import numpy as np

from attnlab.reference import MLAWeights, factorized_interaction, mla_attention
from attnlab.reference.mla import rope_interleaved


def test_mla_absorbed_equals_naive_with_query_lora_and_causal() -> None:
    weights = MLAWeights.random(3, d_model=24, n_heads=3, d_latent=10, d_q_latent=12, d_nope=6, d_rope=4, d_v=5)
    x = np.random.default_rng(10).standard_normal((2, 11, 24))
    np.testing.assert_allclose(
        mla_attention(x, weights, impl="absorb", causal=True), mla_attention(x, weights, causal=True), atol=1e-12
    )


def test_rope_scores_depend_only_on_the_offset() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((1, 8)), rng.standard_normal((1, 8))

    def score(i: int, j: int) -> float:
        qi = rope_interleaved(x, np.array([float(i)]))
        kj = rope_interleaved(y, np.array([float(j)]))
        return float((qi @ kj.T)[0, 0])

    assert abs(score(3, 1) - score(10, 8)) < 1e-12
    assert abs(score(3, 1) - score(3, 2)) > 1e-6


def test_interaction_with_identity_coefficients_is_per_token_map() -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3))
    u = rng.standard_normal((2, 3, 3))
    alpha = np.stack([np.eye(4), 2 * np.eye(4)])
    np.testing.assert_allclose(factorized_interaction(x, alpha, u), x @ (u[0] + 2 * u[1]).T, atol=1e-13)
