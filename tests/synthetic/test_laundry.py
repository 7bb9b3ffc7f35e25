"""Laundry List training and the end-to-end run: resume, the seed's reach, tiny trained models, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attnlab.synthetic.laundry import TASK, LaundryConfig, item_coded, positional, train_model
from attnlab.synthetic.laundry import training as training_module
from attnlab.synthetic.laundry.data import Prompts

torch.set_num_threads(1)

_TINY_COMMON: dict[str, Any] = {
    "d_model": 16,
    "max_length": 5,
    "steps": 300,
    "batch_size": 64,
    "learning_rate": 1e-2,
    "eval_size": 128,
    "calibration_size": 512,
    "checkpoint_every": 150,
    "channel_rank": 2,
}
# The experiment's two designs at toy size.
TINY_POSITIONAL = positional(name="tiny-positional", d_heads=(8, 8, 0), qk_widths=(8, 8, 2), **_TINY_COMMON)
TINY_ITEM_CODED = item_coded(
    name="tiny-item-coded", n_items=16, d_heads=(8, 8, 16), qk_widths=(8, 8, 3), **_TINY_COMMON
)
SHORT = positional(
    d_model=16,
    max_length=4,
    d_heads=(4, 4, 0),
    qk_widths=(4, 4, 2),
    steps=12,
    batch_size=8,
    checkpoint_every=6,
    channel_rank=2,
)


def _quiet(fraction: float, message: str) -> None:
    pass


class _Interrupt(Exception):
    pass


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight = train_model(SHORT, 5, _quiet, tmp_path / "straight")

    def stop_after_first_checkpoint(fraction: float, message: str) -> None:
        if "step 6/" in message:
            raise _Interrupt

    workdir = tmp_path / "interrupted"
    with pytest.raises(_Interrupt):
        train_model(SHORT, 5, stop_after_first_checkpoint, workdir)
    assert torch.load(workdir / "checkpoint.pt", weights_only=False)["step"] == 6
    resumed = train_model(SHORT, 5, _quiet, workdir)
    assert _same_weights(straight, resumed)
    assert not list(workdir.glob("*.tmp"))


def test_same_seed_trains_bitwise_the_same_model_and_another_seed_does_not() -> None:
    first, again, other = (train_model(SHORT, s, _quiet, None) for s in (3, 3, 4))
    assert _same_weights(first, again)
    assert not _same_weights(first, other)


def _recorded_batches(monkeypatch: pytest.MonkeyPatch) -> list[Prompts]:
    batches: list[Prompts] = []
    real = training_module.training_batch

    def spy(config: LaundryConfig, generator: torch.Generator) -> Prompts:
        batches.append(real(config, generator))
        return batches[-1]

    monkeypatch.setattr(training_module, "training_batch", spy)
    return batches


def test_training_data_follows_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the initialisation pinned, the batches train_model draws must still differ between seeds."""
    pinned = training_module.init_model(SHORT, 0)
    monkeypatch.setattr(training_module, "init_model", lambda config, seed: pinned)
    batches = _recorded_batches(monkeypatch)
    train_model(SHORT, 0, _quiet, None)
    seed0 = list(batches)
    batches.clear()
    train_model(SHORT, 1, _quiet, None)
    assert len(seed0) == len(batches) == SHORT.steps
    assert seed0[0].items is not None and batches[0].items is not None
    assert not any(
        a.length == b.length and torch.allclose(a.items, b.items)  # type: ignore[arg-type]
        for a, b in zip(seed0, batches)
    )


def test_initialisation_follows_the_seed_inside_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every batch pinned, models trained under two seeds must still differ (through their init)."""
    fixed = training_module.training_batch(SHORT, torch.Generator().manual_seed(0))
    monkeypatch.setattr(training_module, "training_batch", lambda config, generator: fixed)
    assert not _same_weights(train_model(SHORT, 0, _quiet, None), train_model(SHORT, 1, _quiet, None))
    assert _same_weights(train_model(SHORT, 2, _quiet, None), train_model(SHORT, 2, _quiet, None))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[LaundryConfig, dict[str, Any], list[str]]]:
    runs = {}
    for config in (TINY_POSITIONAL, TINY_ITEM_CODED):
        messages: list[str] = []
        workdir = tmp_path_factory.mktemp(config.name)
        metrics = TASK.run(config, 0, lambda fraction, message, m=messages: m.append(message), workdir)
        runs[config.name] = (config, metrics, messages)
    return runs


def test_tiny_models_learn_and_accuracy_falls_with_length(tiny_runs: dict[str, Any]) -> None:
    for config, metrics, messages in tiny_runs.values():
        accuracy = metrics["accuracy_by_length"]
        assert accuracy["2"] > 0.5 + 0.3  # chance is 1/2 at n = 2
        assert accuracy["2"] > accuracy[str(config.max_length)] + 0.1
        assert len(metrics["accuracy_by_position"]["5"]) == 5
        assert metrics["mechanism"]["2"]["mover_attention_to_missing"] > 0.5
        assert any("step 300/300" in m for m in messages)


def test_tiny_positional_model_matches_duplicates_and_its_patch_beats_a_random_subspace(
    tiny_runs: dict[str, Any],
) -> None:
    _, metrics, _ = tiny_runs["tiny-positional"]
    mechanism = metrics["mechanism"]["5"]
    assert mechanism["layer0_repeat_to_first_occurrence"][0] > 4 * mechanism["layer0_repeat_to_first_occurrence_chance"]
    content = metrics["intervention"]["channel_content"]
    assert content["channel"]["position_share"] > 10 * content["channel"]["item_share"]
    intervention = metrics["intervention"]
    assert intervention["gain"] > intervention["random_subspace_gain"] + 0.03


def test_tiny_item_coded_channel_codes_the_item_and_the_position_patch_hurts(tiny_runs: dict[str, Any]) -> None:
    _, metrics, _ = tiny_runs["tiny-item-coded"]
    content = metrics["intervention"]["channel_content"]
    assert content["channel"]["position_share"] < 3 * content["chance_position_share"]
    assert content["channel"]["item_share"] > content["chance_item_share"] + 0.01
    assert metrics["intervention"]["gain"] < -0.05


def test_tiny_channels_are_low_rank_and_carry_the_inhibition(tiny_runs: dict[str, Any]) -> None:
    """The top Q-composition component stands out from chance and is one the mover's inhibition uses."""
    for _, metrics, _ in tiny_runs.values():
        composition, ablation = metrics["composition"], metrics["ablation"]
        assert composition["top_score"] > 1.5 * composition["random_direction_baseline"]
        scores = np.asarray(ablation["inhibition_score"])
        others = np.delete(scores, ablation["component"])
        assert scores[ablation["component"]] > np.median(others) + 0.01
        assert ablation["accuracy_drop_top"] > ablation["accuracy_drop_random_component"]


def test_summary_reports_both_designs_per_seed_and_the_figures(tiny_runs: dict[str, Any], tmp_path: Path) -> None:
    results = [(config, 0, metrics) for config, metrics, _ in tiny_runs.values()]
    results.append((TINY_POSITIONAL, 1, _shifted_gain(tiny_runs["tiny-positional"][1], -0.2)))
    summary = TASK.summarize(results)
    json.dumps(summary)
    positional_metrics = tiny_runs["tiny-positional"][1]
    assert summary["headline_design"] == "tiny-positional"
    assert summary["intervention_gain"] == summary["designs"]["tiny-positional"]["intervention_gain"]
    assert TASK.summarize(results[1:2])["headline_design"] == "tiny-item-coded"
    design = summary["designs"]["tiny-positional"]
    assert design["seeds"] == [0, 1]
    assert design["intervention_gain_min"] == pytest.approx(positional_metrics["intervention"]["gain"] - 0.2)
    assert design["intervention_gain"] == pytest.approx(positional_metrics["intervention"]["gain"] - 0.1)
    assert design["criteria"]["e_position_patch_gain_at_max_n"]["measured"] == design["intervention_gain_min"]
    assert set(design["criteria_by_seed"]) == {"0", "1"}
    assert {(row["design"], row["seed"]) for row in summary["per_seed"]} == {
        ("tiny-positional", 0),
        ("tiny-positional", 1),
        ("tiny-item-coded", 0),
    }
    assert set(design["accuracy_by_length"]) == set(TINY_POSITIONAL.lengths())
    for row in summary["per_seed"]:
        edits = row["non_oracle_edits"]
        assert {"centred_gain_1.5", "centred_gain_3", "ov_component_scaling_1.5", "ov_component_scaling_3"} <= set(
            edits
        )
        assert row["best_non_oracle_gain"] == max(edits.values())
        assert 0.0 <= row["layer0_duplicate_matching"] <= 1.0
    for criteria in [summary["criteria"], *(d["criteria"] for d in summary["designs"].values())]:
        for criterion in criteria.values():
            assert {"measured", "threshold", "op", "passed"} <= set(criterion)
            assert isinstance(criterion["threshold"], float)
    assert summary["reproduced"] == all(c["passed"] for c in summary["criteria"].values())
    assert len(summary["caveats"]) == 3
    files = TASK.plot(results, summary, tmp_path)
    names = {path.name for path in files}
    for stem in (
        "accuracy_by_length",
        "accuracy_by_position",
        "component_composition",
        "intervention",
        "channel_content",
    ):
        assert {f"laundry_{stem}.png", f"laundry_{stem}.svg"} <= names
    assert all(path.stat().st_size > 0 for path in files)


def test_the_experiment_lists_the_positional_design_first() -> None:
    assert [c.name for c in TASK.configs(True)] == ["positional", "item-coded"]
    assert [c.name for c in TASK.configs(False)] == ["positional", "item-coded", "value-readout"]
    assert TASK.configs(False)[0] == positional()


def _shifted_gain(metrics: dict[str, Any], shift: float) -> dict[str, Any]:
    copy = json.loads(json.dumps(metrics))
    copy["intervention"]["gain"] += shift
    copy["intervention"]["gains"]["channel"]["position_patch"] += shift
    return copy


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"], ids=["empty", "garbage", "truncated"]
)
def test_a_corrupt_checkpoint_is_moved_aside_and_training_restarts(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(content)
    resumed = train_model(SHORT, 3, _quiet, tmp_path)
    assert _same_weights(resumed, train_model(SHORT, 3, _quiet, None))
    assert list(tmp_path.glob("checkpoint.pt.corrupt-*")), "the corrupt file was not quarantined"
