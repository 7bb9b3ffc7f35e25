"""Edits of the inhibition channel at the query position of the longest lists.

The *channel* is the span of the ``channel_rank`` SVD write directions of the inhibition head(s)
with the highest Q-composition with the mover (chosen from the weights alone, before any edit is
measured). Every edit is compared with the same edit on a random subspace of the same dimension.

* ``position_patch`` (an oracle, since it uses the true answer position): the channel coordinates of
  the residual entering the mover at ``QRY`` are set to their mean over calibration prompts whose
  missing item sits at the same list position. This is our reading of the representation edit of
  Merullo, Eickhoff & Pavlick (2024, arXiv:2406.09519v4), whose abstract reports a 3-D subspace that
  "can be traversed to positionally index items in lists": the patch moves the channel to the point
  that indexes the answer's position;
* ``item_patch`` (oracle, vocabulary items only): the same with prompts that share the missing item;
* ``centred_gain_g`` (no oracle; *channel scaling*): the channel's deviation from its calibration
  mean is multiplied by ``g``;
* ``ov_component_scaling_g`` (no oracle; a weight edit): the inhibition head's top-composition rank-1
  OV component ``s u v^T`` is multiplied by ``g``, i.e. ``W_O <- W_O (I + (g - 1) v v^T)``, at every
  position; its control scales each other component of the head in turn (mean effect).

``channel_content`` says what a subspace encodes at the query: the share of the variance of its
coordinates explained by the missing *position* (eta squared over the ``n`` positions) and by the
missing *item* (eta squared over item ids for vocabulary items; the least-squares R squared on the
item vector for gaussian items), each beside its chance level.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnlab.synthetic.analysis.composition import (
    component_composition_scores,
    orthonormal_basis,
    project_onto,
    variance_explained_by_groups,
    variance_explained_linearly,
)
from attnlab.synthetic.laundry.analysis import inhibition_layer, mean_accuracy, write_directions
from attnlab.synthetic.laundry.config import LaundryConfig
from attnlab.synthetic.laundry.data import Prompts, Stream, calibration_set, numpy_stream
from attnlab.synthetic.laundry.model import HeadEdit, LaundryModel, run_model

INTERVENTION_GAINS = (1.5, 2.0, 3.0)


def residual_at_query(model: LaundryModel, prompts: Prompts) -> torch.Tensor:
    """``(m, d_model)`` the residual entering the mover at the query position."""
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        run_model(model, prompts, cache=cache)
    return cache[f"resid{model.n_layers - 1}"][:, -1]


def top_directions(model: LaundryModel, scores: dict[int, np.ndarray], rank: int) -> np.ndarray:
    """Orthonormal basis of the ``rank`` inhibition-head write directions with the highest ``scores``."""
    layer = inhibition_layer(model)
    candidates: list[tuple[float, np.ndarray]] = []
    for head in range(model.config.heads[layer]):
        candidates.extend(zip(scores[head].tolist(), list(write_directions(model, layer, head))))
    candidates.sort(key=lambda pair: -pair[0])
    return orthonormal_basis(np.stack([direction for _, direction in candidates[:rank]]))


def channel_basis(model: LaundryModel) -> np.ndarray:
    """The channel: the ``channel_rank`` write directions ranked by Q-composition with the mover."""
    layer = inhibition_layer(model)
    mover_qk = model.qk(model.n_layers - 1, 0)
    scores = {
        head: component_composition_scores(model.ov(layer, head), mover_qk, rank=model.config.d_heads[layer])
        for head in range(model.config.heads[layer])
    }
    return top_directions(model, scores, model.config.channel_rank)


def channel_content(coords: np.ndarray, calibration: Prompts) -> dict[str, float]:
    """Position and item shares of the variance of channel coordinates ``(m, k)`` (module docstring)."""
    position_share = variance_explained_by_groups(coords, calibration.positions.numpy())
    if calibration.items is None:
        item_share = variance_explained_by_groups(coords, calibration.answers.numpy())
    else:
        item_share = variance_explained_linearly(coords, calibration.missing_items().double().numpy())
    return {"position_share": position_share, "item_share": item_share}


def _chance_shares(calibration: Prompts) -> dict[str, float]:
    samples = len(calibration)
    position = (calibration.length - 1) / (samples - 1)
    if calibration.items is None:
        item = (len(np.unique(calibration.answers.numpy())) - 1) / (samples - 1)
    else:
        item = calibration.items.shape[-1] / (samples - 1)
    return {"chance_position_share": position, "chance_item_share": item}


def group_mean_patch_accuracy(
    model: LaundryModel,
    prompts: Prompts,
    groups: torch.Tensor,
    calibration_resid: torch.Tensor,
    calibration_groups: torch.Tensor,
    basis_np: np.ndarray,
) -> float:
    """Accuracy after setting each prompt's channel coordinates to the calibration mean of its group.

    A prompt whose group never occurs in the calibration set keeps its own coordinates.
    """
    device = calibration_resid.device
    basis = torch.tensor(basis_np, dtype=calibration_resid.dtype, device=device)
    coords = calibration_resid @ basis.T
    labels, inverse = torch.unique(calibration_groups.to(device), return_inverse=True)
    sums = torch.zeros(labels.numel(), coords.shape[1], dtype=coords.dtype, device=device)
    sums.index_add_(0, inverse, coords)
    means = sums / torch.bincount(inverse, minlength=labels.numel())[:, None]
    groups = groups.to(device)
    slot = torch.searchsorted(labels, groups).clamp(max=labels.numel() - 1)
    known = labels[slot] == groups

    def edit(x: torch.Tensor) -> torch.Tensor:
        own = x @ basis.T
        target = torch.where(known[:, None], means[slot], own)
        return x + (target - own) @ basis

    return mean_accuracy(model, prompts, mover_input_edit=edit)


def centred_gain_accuracy(
    model: LaundryModel, prompts: Prompts, calibration_resid: torch.Tensor, basis_np: np.ndarray, gain: float
) -> float:
    """Accuracy after multiplying the channel's deviation from its calibration mean by ``gain``."""
    basis = torch.tensor(basis_np, dtype=calibration_resid.dtype, device=calibration_resid.device)
    centre = project_onto(calibration_resid.mean(dim=0), basis)

    def edit(x: torch.Tensor) -> torch.Tensor:
        return x + (gain - 1.0) * (project_onto(x, basis) - centre)

    return mean_accuracy(model, prompts, mover_input_edit=edit)


def component_scaling_edit(layer: int, head: int, direction: torch.Tensor, gain: float) -> HeadEdit:
    """The weight edit ``W_O <- W_O (I + (g - 1) v v^T)`` of one head, applied to its outputs."""

    def edit(current: int, outputs: torch.Tensor) -> torch.Tensor:
        if current != layer:
            return outputs
        edited = outputs.clone()
        along = outputs[:, head] @ direction
        edited[:, head] = outputs[:, head] + (gain - 1.0) * along[..., None] * direction
        return edited

    return edit


def _component_scaling(
    model: LaundryModel, prompts: Prompts, composition: dict[str, Any], base: float
) -> dict[str, float]:
    layer, head, top = composition["layer"], composition["top_head"], composition["top_component"]
    device = next(model.parameters()).device
    directions = torch.tensor(write_directions(model, layer, head), dtype=torch.float32, device=device)
    results: dict[str, float] = {}
    for gain in INTERVENTION_GAINS:

        def change(index: int, gain: float = gain) -> float:
            edit = component_scaling_edit(layer, head, directions[index], gain)
            return mean_accuracy(model, prompts, head_edit=edit) - base

        others = [i for i in range(directions.shape[0]) if i != top]
        results[f"ov_component_scaling_{gain:g}"] = change(top)
        results[f"ov_other_component_scaling_{gain:g}"] = float(np.mean([change(i) for i in others]))
    return results


def intervene(
    model: LaundryModel,
    config: LaundryConfig,
    seed: int,
    data: dict[int, Prompts],
    composition: dict[str, Any],
    *,
    inhibition_channel: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every edit of the module docstring at the largest length, on the channel and its controls.

    ``inhibition_channel`` (optional: the components with the largest data-based inhibition scores)
    gets the same representation edits as a secondary analysis. The headline ``gain`` is the position
    patch on the composition-selected channel, fixed in advance.
    """
    n = config.max_length
    calibration = calibration_set(config, seed)
    calibration_resid = residual_at_query(model, calibration)
    prompts = data[n]
    base = mean_accuracy(model, prompts)
    rng = numpy_stream(seed, Stream.RANDOM_SUBSPACE)
    subspaces = {
        "channel": channel_basis(model),
        "random_subspace": orthonormal_basis(rng.standard_normal((config.channel_rank, config.d_model))),
    }
    if inhibition_channel is not None:
        subspaces["inhibition_channel"] = inhibition_channel
    resid_np = calibration_resid.double().cpu().numpy()
    gains: dict[str, dict[str, float]] = {}
    content: dict[str, Any] = {}
    for name, basis in subspaces.items():
        content[name] = channel_content(resid_np @ basis.T, calibration)
        edits = {
            "position_patch": group_mean_patch_accuracy(
                model, prompts, prompts.positions, calibration_resid, calibration.positions, basis
            )
        }
        if config.items == "vocabulary":
            edits["item_patch"] = group_mean_patch_accuracy(
                model, prompts, prompts.answers, calibration_resid, calibration.answers, basis
            )
        for gain in INTERVENTION_GAINS:
            edits[f"centred_gain_{gain:g}"] = centred_gain_accuracy(model, prompts, calibration_resid, basis, gain)
        gains[name] = {key: value - base for key, value in edits.items()}
    content.update(_chance_shares(calibration))
    return {
        "length": n,
        "channel_rank": config.channel_rank,
        "accuracy_before": base,
        "headline_method": "position_patch",
        "gain": gains["channel"]["position_patch"],
        "random_subspace_gain": gains["random_subspace"]["position_patch"],
        "gains": gains,
        "weight_edits": _component_scaling(model, prompts, composition, base),
        "channel_content": content,
    }
