"""Evaluation and circuit analysis of a trained Laundry List model.

* accuracy by list length and by the answer's position (crowding and order sensitivity);
* attention statistics: the mover's attention to the missing item, the inhibition head's attention
  to the repeated list at the query, and layer 0's attention from each repeated item to its first
  occurrence (duplicate matching);
* the per-component Q-composition of the inhibition head's OV with the mover's QK against a
  random-direction baseline, and the ablation of every component at the query (accuracy, and the
  data-based *inhibition score*: the drop of the mover's attention to the missing item minus a
  repeated one).

The method is that of Merullo, Eickhoff & Pavlick (2024), "Talking Heads", arXiv:2406.09519v4 (SVD
components scored by composition, then checked by ablation); the composition score is Elhage et al.
(2021)'s (:mod:`attnlab.synthetic.analysis.composition`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnlab.synthetic.analysis.composition import (
    component_composition_scores,
    project_out,
    random_direction_baseline,
)
from attnlab.synthetic.laundry.data import Prompts, Stream, numpy_stream, targets
from attnlab.synthetic.laundry.model import HeadEdit, LaundryModel, ResidualEdit, run_model


def inhibition_layer(model: LaundryModel) -> int:
    """The layer whose heads write the channel the mover reads (the one just before the mover)."""
    return model.n_layers - 2


@torch.no_grad()
def accuracy(
    model: LaundryModel,
    prompts: Prompts,
    *,
    head_edit: HeadEdit | None = None,
    mover_input_edit: ResidualEdit | None = None,
) -> torch.Tensor:
    """Per-prompt correctness (bool ``(m,)``): the arg-max logit is the answer."""
    logits = run_model(model, prompts, head_edit=head_edit, mover_input_edit=mover_input_edit)
    return logits.argmax(dim=-1).cpu() == targets(model.config, prompts)


def mean_accuracy(model: LaundryModel, prompts: Prompts, **edits: Any) -> float:
    return float(accuracy(model, prompts, **edits).double().mean())


def accuracy_tables(model: LaundryModel, data: dict[int, Prompts]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Accuracy by list length, and by the answer's position in the first list (per length)."""
    by_length, by_position = {}, {}
    for n, prompts in data.items():
        correct = accuracy(model, prompts).double()
        by_length[str(n)] = float(correct.mean())
        by_position[str(n)] = [float(correct[prompts.positions == j].mean()) for j in range(n)]
    return by_length, by_position


def _forward_cache(model: LaundryModel, prompts: Prompts, **edits: Any) -> dict[str, torch.Tensor]:
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        run_model(model, prompts, cache=cache, **edits)
    return {key: value.cpu() for key, value in cache.items()}


def _mover_attention(model: LaundryModel, cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(m, T)`` the mover's attention at the query position."""
    return cache[f"attn{model.n_layers - 1}"][:, 0, -1]


@torch.no_grad()
def mechanism_statistics(model: LaundryModel, prompts: Prompts) -> dict[str, Any]:
    """Attention statistics at one list length ``n`` (see the module docstring).

    ``layer0_repeat_to_first_occurrence`` (per layer-0 head) is the attention from each repeated item
    to the first-list copy of the same item, averaged over the repeats; ``..._chance`` is its value
    under uniform attention over the visible keys.
    """
    n = prompts.length
    cache = _forward_cache(model, prompts)
    rows = torch.arange(len(prompts))
    mover = _mover_attention(model, cache)
    to_missing = mover[rows, prompts.positions]
    to_other_first = (mover[:, :n].sum(dim=1) - to_missing) / max(n - 1, 1)
    inhibition = {
        str(layer): cache[f"attn{layer}"][:, :, -1, n + 1 : 2 * n].sum(dim=-1).mean(dim=0).tolist()
        for layer in range(model.n_layers - 1)
    }
    tokens = prompts.tokens
    same_item = (tokens[:, n + 1 : 2 * n, None] == tokens[:, None, :n]).to(torch.float32)  # (m, n-1, n)
    layer0 = cache["attn0"][:, :, n + 1 : 2 * n, :n]  # (m, heads, n-1, n)
    duplicate = (layer0 * same_item[:, None]).sum(dim=-1).mean(dim=(0, 2))
    # a repeat at position t sees t keys (strict) or t + 1 keys (with itself)
    visible = torch.arange(n + 1, 2 * n, dtype=torch.float64) + (0 if model.config.matching_layer0 else 1)
    return {
        "mover_attention_to_missing": float(to_missing.mean()),
        "mover_attention_to_other_first_list": float(to_other_first.mean()),
        "mover_missing_over_uniform": float(to_missing.mean() * n),
        "earlier_heads_attention_to_repeats": inhibition,
        "layer0_repeat_to_first_occurrence": duplicate.tolist(),
        "layer0_repeat_to_first_occurrence_chance": float((1 / visible).mean()),
    }


def mover_margin(model: LaundryModel, prompts: Prompts, **edits: Any) -> float:
    """Mover attention to the missing item minus its mean attention to a repeated first-list item."""
    n = prompts.length
    mover = _mover_attention(model, _forward_cache(model, prompts, **edits))
    to_missing = mover[torch.arange(len(prompts)), prompts.positions]
    others = (mover[:, :n].sum(dim=1) - to_missing) / (n - 1)
    return float((to_missing - others).mean())


def write_directions(model: LaundryModel, layer: int, head: int) -> np.ndarray:
    """The orthonormal write directions ``v_i`` of a head's OV SVD (rows, descending singular value)."""
    width = model.config.d_heads[layer]
    _, _, vh = np.linalg.svd(model.ov(layer, head))
    return vh[:width]


def composition_analysis(model: LaundryModel, seed: int) -> dict[str, Any]:
    """Per-component Q-composition of the inhibition heads' OV with the mover's QK, plus its baseline."""
    layer = inhibition_layer(model)
    mover_qk = model.qk(model.n_layers - 1, 0)
    baseline_seed = int(numpy_stream(seed, Stream.COMPOSITION_BASELINE).integers(2**31))
    baseline = random_direction_baseline(mover_qk, samples=4000, seed=baseline_seed)
    per_head = {
        str(head): component_composition_scores(
            model.ov(layer, head), mover_qk, rank=model.config.d_heads[layer]
        ).tolist()
        for head in range(model.config.heads[layer])
    }
    top_head, top_component = max(
        ((int(h), int(np.argmax(s))) for h, s in per_head.items()), key=lambda hc: per_head[str(hc[0])][hc[1]]
    )
    return {
        "layer": layer,
        "per_head_component_scores": per_head,
        "random_direction_baseline": baseline.mean,
        "random_direction_baseline_std": baseline.std,
        "top_head": top_head,
        "top_component": top_component,
        "top_score": per_head[str(top_head)][top_component],
    }


def head_direction_edit(layer: int, head: int, basis: torch.Tensor, *, query_only: bool = True) -> HeadEdit:
    """Project the rows of ``basis`` out of one head's output (at the query position, or everywhere)."""

    def edit(current: int, outputs: torch.Tensor) -> torch.Tensor:
        if current != layer:
            return outputs
        edited = outputs.clone()
        if query_only:
            edited[:, head, -1] = project_out(outputs[:, head, -1], basis)
        else:
            edited[:, head] = project_out(outputs[:, head], basis)
        return edited

    return edit


def ablation_analysis(model: LaundryModel, prompts: Prompts, composition: dict[str, Any]) -> dict[str, Any]:
    """Project each SVD write direction of each inhibition head out of its output at the query.

    The top-composition component is compared with the mean over the other components of its head
    (the "random component"); the margin drop of :func:`mover_margin` is the inhibition score.
    """
    layer = composition["layer"]
    top_head, top_component = composition["top_head"], composition["top_component"]
    device = next(model.parameters()).device
    base_accuracy = mean_accuracy(model, prompts)
    base_margin = mover_margin(model, prompts)
    accuracy_ablated: dict[int, list[float]] = {}
    inhibition: dict[int, list[float]] = {}
    for head in range(model.config.heads[layer]):
        directions = write_directions(model, layer, head)
        accuracy_ablated[head], inhibition[head] = [], []
        for index in range(directions.shape[0]):
            basis = torch.tensor(directions[index : index + 1], dtype=torch.float32, device=device)
            edit = head_direction_edit(layer, head, basis)
            accuracy_ablated[head].append(mean_accuracy(model, prompts, head_edit=edit))
            inhibition[head].append(base_margin - mover_margin(model, prompts, head_edit=edit))
    others = [i for i in range(len(accuracy_ablated[top_head])) if i != top_component]
    random_accuracy = float(np.mean([accuracy_ablated[top_head][i] for i in others]))
    return {
        "head": top_head,
        "component": top_component,
        "accuracy_unablated": base_accuracy,
        "accuracy_top_ablated": accuracy_ablated[top_head][top_component],
        "accuracy_random_component_ablated": random_accuracy,
        "accuracy_drop_top": base_accuracy - accuracy_ablated[top_head][top_component],
        "accuracy_drop_random_component": base_accuracy - random_accuracy,
        "inhibition_score": inhibition[top_head],
        "inhibition_score_by_head": {str(h): v for h, v in inhibition.items()},
        "accuracy_ablated_by_head": {str(h): v for h, v in accuracy_ablated.items()},
    }
