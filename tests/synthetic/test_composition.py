"""Composition scores against constructed matrices (planted shared subspace vs random directions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.synthetic.analysis.composition import (
    component_composition_scores,
    composition_right,
    composition_score,
    direction_composition_scores,
    orthonormal_basis,
    project_onto,
    project_out,
    random_direction_baseline,
    random_matrix_baseline,
    svd_components,
    variance_explained_by_groups,
)

D_MODEL = 48


def _random_orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T


def test_composition_score_matches_definition_and_bounds() -> None:
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((2, D_MODEL, D_MODEL))
    expected = np.linalg.norm(left @ right) / (np.linalg.norm(left) * np.linalg.norm(right))
    assert composition_score(left, right) == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= composition_score(left, right) <= 1.0
    # batched over leading axes, and zero (not NaN) for a zero factor
    batch = composition_score(np.stack([left, np.zeros_like(left)]), right)
    assert batch.shape == (2,)
    assert batch[1] == 0.0


def test_composition_score_is_one_for_aligned_rank_one_and_zero_for_orthogonal() -> None:
    rng = np.random.default_rng(1)
    u, v, w = _random_orthonormal(rng, D_MODEL, 3)
    writer = np.outer(u, v)  # writes along v
    reader = np.outer(v, w)  # reads v
    assert composition_score(writer, reader) == pytest.approx(1.0, abs=1e-12)
    assert composition_score(writer, np.outer(w, u)) == pytest.approx(0.0, abs=1e-12)


def test_composition_right_selects_qk_transpose_and_ov() -> None:
    rng = np.random.default_rng(2)
    qk, ov = rng.standard_normal((2, 5, 5))
    np.testing.assert_array_equal(composition_right("q", qk, ov), qk)
    np.testing.assert_array_equal(composition_right("k", qk, ov), qk.T)
    np.testing.assert_array_equal(composition_right("v", qk, ov), ov)
    with pytest.raises(ValueError, match="kind"):
        composition_right("x", qk, ov)


def test_per_component_score_equals_score_of_the_rank_one_matrix() -> None:
    rng = np.random.default_rng(3)
    left = rng.standard_normal((D_MODEL, 8)) @ rng.standard_normal((8, D_MODEL))
    right = rng.standard_normal((D_MODEL, D_MODEL))
    parts = svd_components(left)
    assert parts.singular_values.shape == (8,)  # numerical rank detected
    np.testing.assert_allclose(sum(parts.component(i) for i in range(8)), left, atol=1e-10)
    scores = component_composition_scores(left, right)
    direct = [composition_score(parts.component(i), right) for i in range(8)]
    np.testing.assert_allclose(scores, direct, rtol=1e-10)


def test_planted_shared_subspace_scores_high_and_random_components_at_baseline() -> None:
    """A head writing a 2-D subspace that the later head's query reads: those two components stand out."""
    rng = np.random.default_rng(4)
    basis = _random_orthonormal(rng, D_MODEL, 12)
    channel, rest, keys = basis[:2], basis[2:8], basis[8:]
    # earlier OV: writes the channel strongly and 6 unrelated directions
    reads = _random_orthonormal(rng, D_MODEL, 8)
    left = (reads[:2].T * np.array([1.0, 0.9])) @ channel + (reads[2:].T * np.linspace(3, 2, 6)) @ rest
    # later QK reads the channel, plus a random full-rank part
    right = 5.0 * channel.T @ keys[:2] + 0.1 * rng.standard_normal((D_MODEL, D_MODEL))
    scores = component_composition_scores(left, right)
    baseline = random_direction_baseline(right, samples=4000, seed=5)
    assert baseline.mean == pytest.approx(1 / np.sqrt(D_MODEL), rel=0.1)
    top_two = set(np.argsort(scores)[-2:].tolist())
    assert top_two == {6, 7}  # the channel components have the smallest singular values
    assert scores[6:].min() > 3 * baseline.mean
    assert scores[:6].max() < baseline.mean  # components orthogonal to the channel score below chance


def test_random_components_score_at_the_baseline_on_average() -> None:
    """The write directions of a full-rank OV form an orthonormal basis, so sum_i CS_i^2 = 1 exactly."""
    rng = np.random.default_rng(9)
    right = rng.standard_normal((D_MODEL, 6)) @ rng.standard_normal((6, D_MODEL))
    left = rng.standard_normal((D_MODEL, D_MODEL))
    scores = component_composition_scores(left, right, rank=D_MODEL)
    assert np.sum(scores**2) == pytest.approx(1.0, rel=1e-10)
    baseline = random_direction_baseline(right, samples=4000, seed=10)
    assert np.mean(scores) == pytest.approx(baseline.mean, rel=0.2)


@given(d=st.integers(8, 64), seed=st.integers(0, 2**16))
def test_random_direction_mean_square_is_one_over_d(d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    right = rng.standard_normal((d, d)) * rng.uniform(0.1, 3.0, size=d)
    scores = direction_composition_scores(rng.standard_normal((6000, d)), right)
    assert np.mean(scores**2) == pytest.approx(1 / d, rel=0.12)


def test_random_matrix_baseline_is_seeded_and_below_structured_scores() -> None:
    rng = np.random.default_rng(6)
    right = rng.standard_normal((D_MODEL, D_MODEL))
    first = random_matrix_baseline(right, rank=4, samples=200, seed=7)
    assert first == random_matrix_baseline(right, rank=4, samples=200, seed=7)
    u, _, _ = np.linalg.svd(right)
    aligned = np.outer(rng.standard_normal(D_MODEL), u[:, 0])  # writes what right reads most
    assert composition_score(aligned, right) > first.mean + 5 * first.std


def test_projection_ablation_removes_exactly_the_component() -> None:
    rng = np.random.default_rng(8)
    left = rng.standard_normal((D_MODEL, D_MODEL))
    parts = svd_components(left, rank=D_MODEL)
    x = rng.standard_normal((5, D_MODEL))
    ablated = project_out(x @ left, parts.write[3:4])
    np.testing.assert_allclose(ablated, x @ (left - parts.component(3)), atol=1e-10)
    basis = orthonormal_basis(rng.standard_normal((3, D_MODEL)))
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(project_out(x, basis) + project_onto(x, basis), x, atol=1e-12)
    torch_result = project_out(torch.tensor(x), torch.tensor(basis)).numpy()
    np.testing.assert_allclose(torch_result, project_out(x, basis), atol=1e-12)


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(ValueError, match="right"):
        composition_score(np.eye(3), np.eye(4))
    with pytest.raises(TypeError, match="left"):
        composition_score(np.ones(3), np.eye(3))
    with pytest.raises(ValueError, match="directions"):
        orthonormal_basis(np.ones((2, 4)))
    with pytest.raises(ValueError, match="rank"):
        random_matrix_baseline(np.eye(4), rank=5)


def test_variance_explained_by_groups_separates_signal_from_chance() -> None:
    rng = np.random.default_rng(11)
    groups = rng.integers(0, 8, size=4000)
    means = rng.standard_normal((8, 3)) * 2.0
    noise = rng.standard_normal((4000, 3))
    # no within-group spread: the groups explain everything
    assert variance_explained_by_groups(means[groups], groups) == pytest.approx(1.0, abs=1e-12)
    # between-group variance 4 per axis (minus sampling), within 1: eta^2 near 4/5
    values = means[groups] + noise
    eta = variance_explained_by_groups(values, groups)
    between = np.var(means[groups], axis=0).sum()
    assert eta == pytest.approx(between / (between + 3.0), abs=0.03)
    # labels unrelated to the values: at the chance level (G - 1) / (m - 1)
    shuffled = rng.permutation(groups)
    chance = 7 / 3999
    assert variance_explained_by_groups(values, shuffled) < 5 * chance
    with pytest.raises(ValueError, match="groups"):
        variance_explained_by_groups(values, groups[:10])
