"""InfSA: the Neumann operator at size, and the paper's series against the released code's single hop."""

from __future__ import annotations

import numpy as np

from attnlab.reference.infsa import affinity, infsa_attention


def test_neumann_is_the_inverse_minus_identity_at_size() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 64, 16)) for _ in range(3))
    graph = affinity(q, k, 1 / 16, 1e-6)
    want = (np.linalg.inv(np.eye(64) - 0.9 * graph) - np.eye(64)) @ v
    np.testing.assert_allclose(infsa_attention(q, k, v, rho=0.9), want, atol=1e-12)
    assert np.linalg.norm(graph[0, 0], 2) <= 1.0


def test_the_code_single_hop_is_not_the_papers_series() -> None:
    """The released pure_infsa returns ρÂV; the paper's operator adds every further hop, ρ²Â²V + …"""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((32, 8)) for _ in range(3))
    series, hop = infsa_attention(q, k, v), infsa_attention(q, k, v, mode="pure")
    two = infsa_attention(q, k, v, mode="series", terms=2)
    assert np.max(np.abs(series - hop)) > 0.1 * np.max(np.abs(hop))
    np.testing.assert_allclose(
        two - hop, 0.95**2 * affinity(q, k, 1 / 8, 1e-6) @ affinity(q, k, 1 / 8, 1e-6) @ v, atol=1e-13
    )
