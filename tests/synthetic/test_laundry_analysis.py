"""Channel edits and measures of the Laundry List analysis, on untrained models (exact properties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.synthetic.analysis.composition import component_composition_scores, variance_explained_linearly
from attnlab.synthetic.laundry import init_model, positional, sample_prompts
from attnlab.synthetic.laundry.analysis import accuracy, head_direction_edit, write_directions
from attnlab.synthetic.laundry.intervention import (
    channel_basis,
    component_scaling_edit,
    group_mean_patch_accuracy,
    residual_at_query,
)
from attnlab.synthetic.laundry.model import run_model

torch.set_num_threads(1)

SMALL = positional(d_model=16, max_length=5, d_heads=(8, 8, 0), qk_widths=(8, 8, 2), channel_rank=3)


def test_channel_basis_is_orthonormal_and_spans_the_top_composition_directions() -> None:
    model = init_model(SMALL, 0)
    basis = channel_basis(model)
    assert basis.shape == (3, 16)
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-10)
    scores = component_composition_scores(model.ov(1, 0), model.qk(2, 0), rank=8)
    top = write_directions(model, 1, 0)[np.argsort(-scores)[:3]]
    np.testing.assert_allclose(top @ basis.T @ basis, top, atol=1e-8)  # same span


def test_group_mean_patch_with_each_prompt_its_own_group_changes_nothing() -> None:
    """Patching a prompt's channel with the mean of a group that holds only that prompt is the identity."""
    model = init_model(SMALL, 1)
    prompts = sample_prompts(SMALL, 5, 64, torch.Generator().manual_seed(0))
    own = torch.arange(64)
    resid = residual_at_query(model, prompts)
    patched = group_mean_patch_accuracy(model, prompts, own, resid, own, channel_basis(model))
    assert patched == float(accuracy(model, prompts).double().mean())


def test_group_mean_patch_on_the_whole_space_writes_the_group_mean() -> None:
    """With the full basis every prompt of a group gets the same mover input, hence the same logits."""
    model = init_model(SMALL, 2)
    prompts = sample_prompts(SMALL, 5, 64, torch.Generator().manual_seed(1))
    resid = residual_at_query(model, prompts)
    basis = np.eye(16)
    group = torch.zeros(64, dtype=torch.int64)
    mean = resid.mean(dim=0)
    expected = run_model(model, prompts, mover_input_edit=lambda x: mean.expand_as(x)).argmax(-1) == prompts.positions
    assert group_mean_patch_accuracy(model, prompts, group, resid, group, basis) == float(expected.double().mean())


def test_component_scaling_is_the_identity_at_gain_one_and_an_ablation_at_gain_zero() -> None:
    model = init_model(SMALL, 3)
    prompts = sample_prompts(SMALL, 5, 32, torch.Generator().manual_seed(2))
    direction = torch.tensor(write_directions(model, 1, 0)[0], dtype=torch.float32)
    plain = run_model(model, prompts)
    torch.testing.assert_close(run_model(model, prompts, head_edit=component_scaling_edit(1, 0, direction, 1.0)), plain)
    zero = run_model(model, prompts, head_edit=component_scaling_edit(1, 0, direction, 0.0))
    ablated = run_model(model, prompts, head_edit=head_direction_edit(1, 0, direction[None], query_only=False))
    torch.testing.assert_close(zero, ablated)
    assert not torch.allclose(zero, plain)


def test_component_scaling_equals_the_same_edit_of_the_output_weights() -> None:
    model = init_model(SMALL, 4)
    prompts = sample_prompts(SMALL, 5, 32, torch.Generator().manual_seed(3))
    direction = torch.tensor(write_directions(model, 1, 0)[1], dtype=torch.float32)
    edited = run_model(model, prompts, head_edit=component_scaling_edit(1, 0, direction, 2.5))
    w_o = model.layers[1].w_o
    assert isinstance(w_o, torch.nn.Parameter)
    with torch.no_grad():
        w_o[0] = w_o[0] @ (torch.eye(16) + 1.5 * torch.outer(direction, direction))
    torch.testing.assert_close(run_model(model, prompts), edited, atol=1e-5, rtol=1e-5)


def test_variance_explained_linearly_is_one_for_affine_data_and_near_chance_for_noise() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((4000, 8))
    values = features @ rng.standard_normal((8, 3)) + 5.0
    assert variance_explained_linearly(values, features) == pytest.approx(1.0)
    noise = rng.standard_normal((4000, 3))
    assert variance_explained_linearly(noise, features) == pytest.approx(8 / 3999, abs=0.004)
    assert variance_explained_linearly(np.ones((10, 2)), features[:10]) == 0.0
    with pytest.raises(ValueError, match="features"):
        variance_explained_linearly(noise, features[:10])
