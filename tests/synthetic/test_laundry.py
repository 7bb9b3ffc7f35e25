"""Laundry List task: generator correctness, leakage, determinism, resume, and a tiny trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attnlab.synthetic.base import config_hash
from attnlab.synthetic.laundry import (
    TASK,
    AttentionOnlyModel,
    LaundryConfig,
    in_test_partition,
    sample_prompts,
    train_model,
)

torch.set_num_threads(1)

# The experiment's design at toy size: three single-head layers, a mover that reads only the first
# list through a rank-3 query/key.
TINY = LaundryConfig(
    n_items=16,
    min_length=2,
    max_length=5,
    heads=(1, 1, 1),
    d_model=16,
    d_heads=(8, 8, 16),
    qk_widths=(8, 8, 3),
    mover_reads_first_list=True,
    steps=400,
    batch_size=64,
    learning_rate=1e-2,
    eval_size=128,
    checkpoint_every=200,
    channel_rank=2,
    threads=1,
    label="tiny",
)


def _rows(tokens: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in tokens.tolist()}


@pytest.mark.parametrize("n", [2, 5, 8])
def test_prompts_have_the_documented_layout_and_correct_labels(n: int) -> None:
    config = LaundryConfig()
    tokens, answers, positions = sample_prompts(config, n, 300, torch.Generator().manual_seed(n))
    assert tokens.shape == (300, 2 * n + 1)
    assert torch.all(tokens[:, n] == config.sep_token)
    assert torch.all(tokens[:, -1] == config.query_token)
    assert torch.all(positions < n)
    for row, answer, position in zip(tokens.tolist(), answers.tolist(), positions.tolist()):
        first, second = row[:n], row[n + 1 : 2 * n]
        assert len(set(first)) == n and max(first) < config.n_items
        assert first[position] == answer
        assert answer not in second
        assert sorted(second) == sorted(first[:position] + first[position + 1 :])


def test_answer_positions_and_repeat_orders_are_spread() -> None:
    config = LaundryConfig()
    tokens, _, positions = sample_prompts(config, 6, 3000, torch.Generator().manual_seed(0))
    counts = torch.bincount(positions, minlength=6).double() / 3000
    assert torch.all((counts - 1 / 6).abs() < 0.03)
    # the second list is not the first list in order (a fresh shuffle): about 1/5! of rows stay in order
    first_without_missing = [
        [t for t in row[:6] if t in row[7:12]] for row in tokens.tolist()
    ]
    same_order = np.mean([fw == row[7:12] for fw, row in zip(first_without_missing, tokens.tolist())])
    assert same_order < 0.05


def test_train_and_test_partitions_never_overlap() -> None:
    config = LaundryConfig(n_items=8, max_length=3, eval_size=400)
    data = config.build(seed=0)
    generator = torch.Generator().manual_seed(1)
    for n in config.lengths():
        assert torch.all(in_test_partition(data.tokens[n], config.test_buckets))
        train_tokens, _, _ = sample_prompts(config, n, 4000, generator)
        assert not torch.any(in_test_partition(train_tokens, config.test_buckets))
        # with 8 items and n=2 the whole prompt space (8*7*2 prompts) is sampled many times over
        assert _rows(train_tokens).isdisjoint(_rows(data.tokens[n]))


def test_build_is_deterministic_by_seed() -> None:
    config = LaundryConfig(eval_size=64)
    first, again, other = config.build(3), config.build(3), config.build(4)
    for n in config.lengths():
        assert torch.equal(first.tokens[n], again.tokens[n])
        assert torch.equal(first.answers[n], again.answers[n])
        assert not torch.equal(first.tokens[n], other.tokens[n])


def test_config_validation_names_the_argument() -> None:
    with pytest.raises(ValueError, match="heads"):
        LaundryConfig(heads=(2, 2))
    with pytest.raises(ValueError, match="n_items"):
        LaundryConfig(n_items=5, max_length=8)
    with pytest.raises(ValueError, match="d_heads"):
        LaundryConfig(d_heads=(4,))
    with pytest.raises(ValueError, match="qk_widths"):
        LaundryConfig(qk_widths=(4, 0))
    with pytest.raises(ValueError, match="partition"):
        sample_prompts(LaundryConfig(), 3, 4, torch.Generator(), partition="valid")
    assert config_hash(LaundryConfig()) != config_hash(LaundryConfig(steps=10))


class _Interrupt(Exception):
    pass


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path: Path) -> None:
    config = LaundryConfig(
        n_items=12, max_length=4, d_model=16, d_head=4, steps=12, batch_size=8, checkpoint_every=6
    )
    straight = train_model(config, 5, lambda f, m: None, tmp_path / "straight")

    def stop_after_first_checkpoint(fraction: float, message: str) -> None:
        if "step 6/" in message:
            raise _Interrupt

    workdir = tmp_path / "interrupted"
    with pytest.raises(_Interrupt):
        train_model(config, 5, stop_after_first_checkpoint, workdir)
    assert torch.load(workdir / "checkpoint.pt", weights_only=False)["step"] == 6
    resumed = train_model(config, 5, lambda f, m: None, workdir)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert not list(workdir.glob("*.tmp"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LaundryConfig, dict[str, Any], list[str]]:
    workdir = tmp_path_factory.mktemp("laundry")
    messages: list[str] = []
    metrics = TASK.run(TINY, 0, lambda fraction, message: messages.append(message), workdir)
    return TINY, metrics, messages


def test_tiny_model_learns_and_accuracy_falls_with_length(
    tiny_run: tuple[LaundryConfig, dict[str, Any], list[str]],
) -> None:
    config, metrics, messages = tiny_run
    accuracy = metrics["accuracy_by_length"]
    chance = 1 / 2  # guessing among the first list at n=2
    assert accuracy["2"] > chance + 0.3
    assert accuracy["2"] > accuracy[str(config.max_length)] + 0.1
    assert len(metrics["accuracy_by_position"]["5"]) == 5
    # the mover prefers the missing item over the repeated ones at the shortest length
    assert metrics["mechanism"]["2"]["mover_attention_to_missing"] > 0.5
    assert any("step 400/400" in m for m in messages)


def test_tiny_model_channel_is_low_rank_and_carries_the_inhibition(
    tiny_run: tuple[LaundryConfig, dict[str, Any], list[str]],
) -> None:
    """The top Q-composition component stands out from chance and is one the mover's inhibition uses."""
    _, metrics, _ = tiny_run
    composition, ablation = metrics["composition"], metrics["ablation"]
    assert composition["top_score"] > 1.5 * composition["random_direction_baseline"]
    scores = np.asarray(ablation["inhibition_score"])
    others = np.delete(scores, ablation["component"])
    # ablating it lowers the mover's preference for the missing item more than a typical component does
    assert scores[ablation["component"]] > np.median(others) + 0.01
    assert ablation["accuracy_drop_top"] > ablation["accuracy_drop_random_component"]


def _zero_layers_before_mover(model: AttentionOnlyModel) -> None:
    with torch.no_grad():
        for layer in range(model.n_layers - 1):
            model.w_o[layer].zero_()


def test_mover_reads_only_the_first_list() -> None:
    config = LaundryConfig(n_items=12, max_length=4, heads=(1, 1), d_model=8, d_head=4, mover_reads_first_list=True)
    torch.manual_seed(0)
    model = AttentionOnlyModel(config)
    tokens, _, _ = sample_prompts(config, 4, 32, torch.Generator().manual_seed(0))
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model(tokens, cache=cache)
    mover = cache["attn1"][:, 0, -1]
    assert torch.all(mover[:, 4:] == 0)
    torch.testing.assert_close(mover[:, :4].sum(dim=-1), torch.ones(32))
    assert torch.any(cache["attn0"][:, 0, -1, 4:] > 0)  # earlier layers still see the whole prompt


@pytest.mark.parametrize("positional", [True, False])
def test_positional_mover_keys_ignore_item_content(positional: bool) -> None:
    """With the earlier layers silenced the query is the same for every prompt of a length, so the mover's
    attention can only differ between prompts through the keys, which positional keys make content-free."""
    config = LaundryConfig(
        n_items=12, max_length=4, heads=(1, 1), d_model=8, d_head=4, mover_positional_keys=positional
    )
    torch.manual_seed(1)
    model = AttentionOnlyModel(config)
    _zero_layers_before_mover(model)
    tokens, _, _ = sample_prompts(config, 4, 16, torch.Generator().manual_seed(1))
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        model(tokens, cache=cache)
    mover = cache["attn1"][:, 0, -1]
    same = bool(torch.allclose(mover, mover[:1].expand_as(mover), atol=1e-6))
    assert same == positional


def test_tiny_run_summary_and_figures(
    tiny_run: tuple[LaundryConfig, dict[str, Any], list[str]], tmp_path: Path
) -> None:
    config, metrics, _ = tiny_run
    summary = TASK.summarize([(config, 0, metrics)])
    json.dumps(summary)
    assert summary["task"] == "laundry"
    assert set(summary["accuracy_by_length"]) == set(config.lengths())
    assert summary["intervention_gain"] == metrics["intervention"]["gain"]
    composition = metrics["composition"]
    assert composition["random_direction_baseline"] == pytest.approx(1 / np.sqrt(config.d_model), rel=0.15)
    content = metrics["intervention"]["channel_content"]
    for subspace in ("channel", "random_subspace", "inhibition_channel"):
        assert 0.0 <= content[subspace]["position_share"] <= 1.0
        assert 0.0 <= content[subspace]["item_share"] <= 1.0
    assert set(summary["intervention_gains"]) == {"channel", "random_subspace", "inhibition_channel"}
    for criterion in summary["criteria"].values():
        assert {"value", "threshold", "passed"} <= set(criterion)
    files = TASK.plot([(config, 0, metrics)], summary, tmp_path)
    names = {path.name for path in files}
    for stem in ("accuracy_by_length", "accuracy_by_position", "component_composition", "intervention"):
        assert {f"laundry_{stem}.png", f"laundry_{stem}.svg"} <= names
    assert all(path.stat().st_size > 0 for path in files)
