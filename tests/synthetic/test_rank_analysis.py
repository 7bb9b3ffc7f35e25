"""Rank/spectrum utilities against closed forms on matrices with a prescribed SVD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.synthetic.analysis.rank import (
    ablate_svd_components,
    effective_rank,
    effective_rank_of_spectrum,
    energy_rank,
    energy_rank_of_spectrum,
    energy_ranks,
    normalized_nuclear_norm,
    normalized_spectrum,
    nuclear_norm,
    rank_summary,
    singular_spectrum,
    stable_rank,
    svd_component,
    truncate_to_rank,
)


def matrix_with_spectrum(sigma: list[float], m: int, n: int, seed: int) -> np.ndarray:
    """``U diag(σ) Vᵀ`` with Haar-ish random orthonormal ``U`` (m×p) and ``V`` (n×p)."""
    rng = np.random.default_rng(seed)
    p = len(sigma)
    u, _ = np.linalg.qr(rng.standard_normal((m, p)))
    v, _ = np.linalg.qr(rng.standard_normal((n, p)))
    return (u * np.asarray(sigma, dtype=np.float64)) @ v.T


def test_singular_spectrum_recovers_prescribed_values() -> None:
    sigma = [5.0, 3.0, 2.0, 0.5]
    a = matrix_with_spectrum(sigma, 7, 6, seed=0)
    got = singular_spectrum(a)
    assert got.shape == (6,)
    np.testing.assert_allclose(got[:4], sigma, rtol=1e-12)
    np.testing.assert_allclose(got[4:], 0.0, atol=1e-12)
    np.testing.assert_allclose(normalized_spectrum(a)[:4], np.asarray(sigma) / 5.0, rtol=1e-12)


def test_energy_rank_closed_form() -> None:
    # squares 9, 4, 1 (total 14): 90% = 12.6 needs two directions, 99% = 13.86 needs all three.
    sigma = [3.0, 2.0, 1.0]
    a = matrix_with_spectrum(sigma, 5, 4, seed=1)
    assert energy_rank(a, 0.9) == 2
    assert energy_rank(a, 0.99) == 3
    assert energy_ranks(a, (0.9, 0.99)) == {"0.9": 2, "0.99": 3}
    # Exactly on the threshold (9/14 of the energy in σ_1): one direction suffices despite round-off.
    assert energy_rank(a, 9.0 / 14.0) == 1
    assert energy_rank(a, 9.0 / 14.0 + 1e-6) == 2
    assert energy_rank(a, 1.0) == 3


def test_energy_rank_of_flat_spectrum_is_ceiling_of_fraction() -> None:
    # k equal singular values: energy τ needs ceil(τ k) directions.
    for k, tau, expected in [(20, 0.99, 20), (20, 0.9, 18), (10, 0.5, 5), (8, 0.26, 3)]:
        assert energy_rank_of_spectrum(np.ones(k), tau) == expected


def test_effective_rank_closed_forms() -> None:
    assert effective_rank_of_spectrum([2.0, 2.0, 2.0, 0.0]) == pytest.approx(3.0, rel=1e-12)
    assert effective_rank_of_spectrum([7.0, 0.0, 0.0]) == pytest.approx(1.0, rel=1e-12)
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, so erank = 2^1.5.
    assert effective_rank_of_spectrum([2.0, 1.0, 1.0]) == pytest.approx(2.0**1.5, rel=1e-12)
    a = matrix_with_spectrum([4.0, 4.0, 4.0, 4.0, 4.0], 9, 8, seed=2)
    assert effective_rank(a) == pytest.approx(5.0, rel=1e-9)


def test_stable_rank_and_nuclear_norms() -> None:
    sigma = [4.0, 2.0, 1.0]
    a = matrix_with_spectrum(sigma, 6, 5, seed=3)
    assert stable_rank(a) == pytest.approx((16 + 4 + 1) / 16, rel=1e-12)
    assert nuclear_norm(a) == pytest.approx(7.0, rel=1e-12)
    assert nuclear_norm(a, margin=2.0) == pytest.approx(3.5, rel=1e-12)
    assert normalized_nuclear_norm(a) == pytest.approx(7.0 / math.sqrt(21.0), rel=1e-12)
    # Rescaling the matrix rescales the raw norm but not the scale-free one (the §2.6 caveat).
    assert nuclear_norm(10 * a) == pytest.approx(70.0, rel=1e-12)
    assert normalized_nuclear_norm(10 * a) == pytest.approx(normalized_nuclear_norm(a), rel=1e-12)
    with pytest.raises(ValueError, match="margin"):
        nuclear_norm(a, margin=-1.0)


def test_zero_matrix_measures() -> None:
    z = np.zeros((3, 4))
    assert energy_rank(z) == 0
    assert effective_rank(z) == 0.0
    assert stable_rank(z) == 0.0
    assert normalized_nuclear_norm(z) == 0.0


def test_svd_ablation_and_truncation() -> None:
    sigma = [6.0, 3.0, 1.5, 0.5]
    a = matrix_with_spectrum(sigma, 8, 5, seed=4)
    ablated = ablate_svd_components(a, 0)
    np.testing.assert_allclose(singular_spectrum(ablated)[:3], sigma[1:], rtol=1e-10)
    ablated_two = ablate_svd_components(a, [1, 3])
    np.testing.assert_allclose(singular_spectrum(ablated_two)[:2], [6.0, 1.5], rtol=1e-10)
    np.testing.assert_allclose(ablate_svd_components(a, list(range(5))), 0.0, atol=1e-12)
    np.testing.assert_allclose(ablate_svd_components(a, []), a, atol=1e-12)
    # The rank-1 terms sum back to A, and removing one term equals subtracting it.
    total = sum(svd_component(a, i) for i in range(5))
    np.testing.assert_allclose(total, a, atol=1e-12)
    np.testing.assert_allclose(ablated, a - svd_component(a, 0), atol=1e-12)
    # Eckart–Young: the best rank-2 error in Frobenius norm is sqrt(σ_3² + σ_4²).
    error = np.linalg.norm(a - truncate_to_rank(a, 2))
    assert error == pytest.approx(math.hypot(1.5, 0.5), rel=1e-10)
    with pytest.raises(ValueError, match="components"):
        ablate_svd_components(a, 5)


def test_rank_summary_is_consistent() -> None:
    a = matrix_with_spectrum([3.0, 2.0, 1.0], 5, 4, seed=5)
    summary = rank_summary(a)
    assert summary["energy_rank"] == {"0.9": 2, "0.99": 3}
    assert summary["nuclear_norm_raw"] == pytest.approx(6.0, rel=1e-12)
    assert len(summary["singular_values"]) == 4


def test_accepts_torch_tensors() -> None:
    import torch  # a hard dependency: never skipped
    a = matrix_with_spectrum([2.0, 1.0], 4, 3, seed=6)
    assert energy_rank(torch.tensor(a, dtype=torch.float64, requires_grad=True), 0.99) == 2


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (np.zeros((2, 3, 4)), ValueError, "2-d"),
        (np.array([[1.0, np.nan]]), ValueError, "NaN"),
        (np.ones((2, 2), dtype=complex), TypeError, "real"),
        ("abc", TypeError, "matrix"),
        (np.zeros((0, 3)), ValueError, "non-empty"),
    ],
)
def test_bad_matrices_are_rejected(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        singular_spectrum(value)


def test_bad_energy_is_rejected() -> None:
    with pytest.raises(ValueError, match="energy"):
        energy_rank(np.eye(3), 0.0)
    with pytest.raises(ValueError, match="energy"):
        energy_rank(np.eye(3), 1.5)
    with pytest.raises(ValueError, match="singular_values"):
        energy_rank_of_spectrum([1.0, -1.0])


@given(
    sigma=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=6),
    scale=st.floats(1e-3, 1e3),
    energy=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_energy_rank_invariances(sigma: list[float], scale: float, energy: float, seed: int) -> None:
    """Energy rank depends on the spectrum only: invariant to scale and to orthogonal rotations."""
    a = matrix_with_spectrum(sorted(sigma, reverse=True), 7, 6, seed=seed)
    k = energy_rank_of_spectrum(np.asarray(sigma), energy)
    assert 1 <= k <= len(sigma)
    # Not less than the rank needed at a lower level (monotone in the energy level).
    assert energy_rank_of_spectrum(np.asarray(sigma), energy / 2) <= k
    rng = np.random.default_rng(seed + 1)
    q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    squares = np.sort(np.asarray(sigma) ** 2)[::-1]
    # Skip levels that sit within round-off of a cumulative-energy boundary.
    fractions = np.cumsum(squares) / squares.sum()
    if np.min(np.abs(fractions - energy)) > 1e-8:
        assert energy_rank(scale * (q @ a), energy) == k
        assert energy_rank(a, energy) == k
