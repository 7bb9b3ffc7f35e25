"""InfSA: the Neumann operator at size, and the paper's series against the released code's single hop."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.forms.infsa import brute_force
from attnlab.reference.infsa import MAX_TERMS, affinity, check_options, infsa_attention, neumann
from attnlab.validation import reference_precision


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


@pytest.mark.parametrize("mode", ["neumann", "series", "pure", "pooled"])
def test_every_mode_computes_in_the_reference_precision(mode: str) -> None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    options = {"mode": mode, **({"terms": 3} if mode == "series" else {})}
    with reference_precision(np.float32):
        low = infsa_attention(*(a.astype(np.float32) for a in (q, k, v)), **options)
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, infsa_attention(q, k, v, **options), atol=1e-5)


@pytest.mark.parametrize("mode", ["neumann", "series", "pure"])
def test_an_all_zero_affinity_with_eps_0_gives_zeros_without_a_float_error(mode: str) -> None:
    # k = -q with q > 0: every score q·k < 0, so ReLU leaves the zero graph, whose Frobenius norm is 0
    rng = np.random.default_rng(3)
    q = np.abs(rng.standard_normal((5, 3)))
    v = rng.standard_normal((5, 2))
    options = {"mode": mode, **({"terms": 3} if mode == "series" else {})}
    with np.errstate(all="raise"):
        out = infsa_attention(q, -q, v, eps=0.0, **options)
    np.testing.assert_array_equal(out, np.zeros((5, 2)))


def test_the_pooled_mode_adds_eps_to_both_sums() -> None:
    # a large ε makes its place in the energy and score normalisers visible at the brute force's precision
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 7, 3)) for _ in range(3))
    for eps in (0.5, 3.0):
        np.testing.assert_allclose(
            infsa_attention(q, k, v, mode="pooled", eps=eps),
            brute_force(q, k, v, mode="pooled", eps=eps),
            rtol=0,
            atol=1e-13,
        )


def test_check_options_returns_no_terms_outside_the_series_mode() -> None:
    for mode in ("neumann", "pure", "pooled"):
        assert check_options(0.5, 1e-6, mode, None) == (0.5, 1e-6, mode, 0)
    assert check_options(0.5, 1e-6, "series", 4) == (0.5, 1e-6, "series", 4)
    assert check_options(0.5, 1e-6, "series", MAX_TERMS)[3] == MAX_TERMS  # the limit itself is allowed


def test_the_neumann_solve_needs_a_square_token_graph() -> None:
    # (I − ρÂ) is n × n: a graph of n queries over one key is no token graph, and no identity fits it
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        neumann(np.full((3, 1), 0.1), np.ones((1, 2)), 0.5)


@pytest.mark.parametrize("mode", ["pure", "neumann", "series", "pooled"])
def test_eps_zero_with_no_positive_score_gives_zeros_on_every_path(mode: str) -> None:
    """With ``eps = 0`` and every score ≤ 0 (the ReLU leaves nothing) each normaliser is 0 over an all-zero
    numerator: the output is 0 on the reference and the torch path alike, never 0/0."""
    import torch

    from attnlab.fastpath.torch.infsa import infsa_attention as torch_infsa

    q = np.ones((2, 5, 4))
    k = -np.ones((2, 5, 4))  # every q·k < 0: the pooled scores and the graph are all zero
    v = np.arange(2 * 5 * 2, dtype=float).reshape(2, 5, 2)
    options = {"eps": 0.0, "mode": mode, **({"terms": 3} if mode == "series" else {})}
    want = infsa_attention(q, k, v, **options)
    np.testing.assert_array_equal(want, np.zeros((2, 5, 2)))
    got = torch_infsa(*(torch.from_numpy(a) for a in (q, k, v)), **options)
    np.testing.assert_array_equal(got.numpy(), want)
