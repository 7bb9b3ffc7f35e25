"""OCR recall task: generator, model, training effect, resume, summary and figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attnlab.reference import softmax_attention
from attnlab.synthetic.base import config_hash
from attnlab.synthetic.ocr import (
    FACT_RELATION,
    IMPLICATION_RELATION,
    RANK_SWEEP,
    TASK,
    OCRConfig,
    OCRData,
    OCRTransformer,
    configs,
    run,
    summarize,
)

torch.set_num_threads(1)

# Official sizes; fewer steps and a small evaluation set so the training tests take seconds.
TINY = OCRConfig(steps=300, eval_every=100, eval_per_subject=4, checkpoint_every=100, num_threads=1, device="cpu")


def quiet(fraction: float, message: str) -> None:
    """Progress sink for tests."""


def decode(data: OCRData, tokens: np.ndarray) -> tuple[int, int, int, int]:
    """(subject index, subject position, relation token, relation position) of one sequence."""
    subject_positions = np.flatnonzero(np.isin(tokens, data.subject_tokens))
    relation_positions = np.flatnonzero(tokens < 2)
    assert subject_positions.size == 1 and relation_positions.size == 1
    s_pos, r_pos = int(subject_positions[0]), int(relation_positions[0])
    subject = int(np.flatnonzero(data.subject_tokens == tokens[s_pos])[0])
    return subject, s_pos, int(tokens[r_pos]), r_pos


def check_sequences(data: OCRData, tokens: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Assert every sequence is well formed and correctly labelled; return (subject, relation) pairs."""
    assert tokens.shape[1] == data.config.seq_len
    pairs = []
    for row, label in zip(tokens, labels):
        subject, s_pos, relation, r_pos = decode(data, row)
        assert s_pos < r_pos < data.config.seq_len - 1
        assert row[-1] == data.eos_token
        others = np.delete(row[:-1], [s_pos, r_pos])
        assert np.isin(others, data.noise_tokens).all()
        expected = data.subject_fact[subject] if relation == FACT_RELATION else data.subject_implication[subject]
        assert label == expected
        pairs.append((subject, relation))
    return pairs


# ------------------------------------------------------------------------------------------ generator


def test_official_vocabulary_and_maps() -> None:
    data = OCRConfig().build(0)
    assert data.config.vocab_size == 128
    assert data.fact_tokens.tolist() == list(range(2, 22))
    assert data.implication_tokens.tolist() == list(range(22, 42))
    assert data.subject_tokens.tolist() == list(range(42, 122))
    assert data.noise_tokens.tolist() == list(range(122, 127))
    assert data.eos_token == 127
    # subject i -> fact i mod 20 -> implication (i mod 20); 20 train subjects, one per fact.
    i = np.arange(80)
    assert np.array_equal(data.subject_fact, 2 + i % 20)
    assert np.array_equal(data.subject_implication, 22 + i % 20)
    assert data.train_subjects.tolist() == list(range(20))
    assert data.heldout_subjects.tolist() == list(range(20, 80))
    assert sorted(data.subject_fact_index[data.train_subjects].tolist()) == list(range(20))


def test_random_maps_are_seeded_bijections_and_compose() -> None:
    config = OCRConfig(random_maps=True)
    a, b, c = config.build(3), config.build(3), config.build(4)
    assert np.array_equal(a.subject_implication, b.subject_implication)
    assert not np.array_equal(a.fact_implication, c.fact_implication)
    assert sorted(a.fact_implication.tolist()) == a.implication_tokens.tolist()  # bijection
    assert not np.array_equal(a.fact_implication, a.implication_tokens)  # not the structured map
    # Implication = fact→implication map applied to the subject's fact; train subjects cover every fact.
    assert np.array_equal(a.subject_implication, a.fact_implication[a.subject_fact_index])
    assert sorted(a.subject_fact_index[a.train_subjects].tolist()) == list(range(20))


def test_sequences_are_well_formed_and_labelled() -> None:
    data = OCRConfig().build(0)
    for name, (tokens, labels) in data.eval_sets.items():
        pairs = check_sequences(data, tokens, labels)
        split, relation = name.split("_")
        subjects = data.train_subjects if split == "train" else data.heldout_subjects
        want = FACT_RELATION if relation == "fact" else IMPLICATION_RELATION
        assert {r for _, r in pairs} == {want}
        counts = np.bincount([s for s, _ in pairs], minlength=80)
        assert np.all(counts[subjects] == data.config.eval_per_subject)
        assert counts.sum() == subjects.size * data.config.eval_per_subject


def test_positions_cover_the_allowed_range() -> None:
    data = OCRConfig().build(0)
    tokens, _ = data.training_batch(3000, torch.Generator().manual_seed(1))
    decoded = [decode(data, row) for row in tokens.numpy()]
    subject_positions = {d[1] for d in decoded}
    relation_positions = {d[3] for d in decoded}
    assert subject_positions == set(range(0, 14))
    assert relation_positions == set(range(1, 15))


def test_training_batches_never_contain_heldout_implications() -> None:
    data = OCRConfig().build(0)
    generator = torch.Generator().manual_seed(0)
    seen: set[tuple[int, int]] = set()
    for _ in range(5):
        tokens, labels = data.training_batch(252, generator)
        pairs = check_sequences(data, tokens.numpy(), labels.numpy())
        relations = np.array([r for _, r in pairs])
        # Three equal thirds: train facts, train implications, held-out facts.
        assert np.array_equal(relations, np.repeat([0, 1, 0], 84))
        seen.update(pairs)
    heldout = set(data.heldout_subjects.tolist())
    assert not any(s in heldout and r == IMPLICATION_RELATION for s, r in seen)
    # Every other kind of pair does occur (no accidental starvation of a split).
    assert {(s, r) for s, r in seen if s in heldout} == {(s, FACT_RELATION) for s in heldout}
    assert {s for s, r in seen if r == IMPLICATION_RELATION} == set(data.train_subjects.tolist())


def test_generation_is_deterministic_by_seed() -> None:
    config = OCRConfig(eval_per_subject=3)
    a, b, c = config.build(5), config.build(5), config.build(6)
    for name in a.eval_sets:
        assert np.array_equal(a.eval_sets[name][0], b.eval_sets[name][0])
        assert not np.array_equal(a.eval_sets[name][0], c.eval_sets[name][0])
    x1, y1 = a.training_batch(252, torch.Generator().manual_seed(9))
    x2, y2 = b.training_batch(252, torch.Generator().manual_seed(9))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"parameterization": "merged"}, "parameterization"),
        ({"parameterization": "combined", "rank": 8}, "rank"),
        ({"rank": 500}, "rank"),
        ({"train_fraction": 0.001}, "train_fraction"),
        ({"seq_len": 2}, "seq_len"),
        ({"attention": "relu"}, "attention"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_configs_are_rejected(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OCRConfig(**changes)


def test_non_integer_sizes_are_type_errors() -> None:
    with pytest.raises(TypeError, match="steps"):
        OCRConfig(steps=10.5)


# -------------------------------------------------------------------------------------------- model


def full_layer_reference(model: OCRTransformer, tokens: np.ndarray) -> np.ndarray:
    """Logits at the last position of the *full* causal layer in float64 NumPy, one-hot inputs."""
    d = model.vocab_size
    x = np.eye(d)[tokens]  # (B, T, d)
    w_q, w_k, w_v, w_o = (getattr(model, n).detach().double().numpy() for n in ("w_q", "w_k", "w_v", "w_o"))
    q, k, v = x @ w_q.T, x @ w_k.T, x @ w_v.T
    if model.attention == "softmax":
        mixed = softmax_attention(q, k, v, causal=True)  # scale 1/√d, the official softmax option
    else:
        mixed = np.tril(q @ np.swapaxes(k, -1, -2)) @ v  # raw masked scores, no normalisation
    return (mixed @ w_o.T)[:, -1] @ np.eye(d).T


@pytest.mark.parametrize("attention", ["linear", "softmax"])
@pytest.mark.parametrize("parameterization", ["factorized", "combined"])
def test_model_equals_full_causal_layer(attention: str, parameterization: str) -> None:
    config = OCRConfig(parameterization=parameterization, attention=attention, init="default",
                       rank=16 if parameterization == "factorized" else None)
    data = config.build(0)
    model = OCRTransformer(config, torch.Generator().manual_seed(0)).double()
    tokens, _ = data.training_batch(30, torch.Generator().manual_seed(2))
    got = model(tokens).detach().numpy()
    np.testing.assert_allclose(got, full_layer_reference(model, tokens.numpy()), rtol=1e-10, atol=1e-12)


def test_trainable_parameters_match_the_parameterisation() -> None:
    gen = torch.Generator().manual_seed(0)
    factorized = OCRTransformer(OCRConfig(rank=8), gen)
    combined = OCRTransformer(OCRConfig(parameterization="combined"), gen)
    assert {n: tuple(p.shape) for n, p in factorized.named_parameters()} == {
        "w_q": (128, 128), "w_o": (128, 8), "w_v": (8, 128)}
    assert {n for n, _ in combined.named_parameters()} == {"w_q", "w_o"}
    assert torch.equal(combined.w_v, torch.eye(128)) and torch.equal(combined.w_k, torch.eye(128))
    # Official "identity" init: W_Q = W_O = 1e-4·𝟙, W_V = 1e-4·I at r = d.
    full = OCRTransformer(OCRConfig(), gen)
    assert torch.equal(full.w_v, 1e-4 * torch.eye(128)) and torch.all(full.w_q == 1e-4)


# ------------------------------------------------------------------------------ training and summary


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[OCRConfig, int, dict[str, Any]]]:
    results = []
    for parameterization in ("factorized", "combined"):
        config = dataclasses.replace(TINY, parameterization=parameterization)
        workdir = tmp_path_factory.mktemp(config_hash(config))
        results.append((config, 0, run(config, 0, quiet, workdir)))
    return results


def test_tiny_run_shows_the_ocr_effect(tiny_results: list[tuple[OCRConfig, int, dict[str, Any]]]) -> None:
    """Factorized W_O W_V fills in held-out implications; the combined W_OV stays at chance (1/20)."""
    metrics = {config.parameterization: m for config, _, m in tiny_results}
    factorized, combined = metrics["factorized"], metrics["combined"]
    for m in (factorized, combined):
        assert m["heldout_fact_acc"] >= 0.95 and m["train_implication_acc"] >= 0.95
    assert factorized["heldout_implication_acc_within_implications"] >= 0.9
    assert abs(combined["heldout_implication_acc_within_implications"] - 0.05) <= 0.05
    assert combined["heldout_implication_acc"] <= 0.1
    # Low-rank evidence: the factorized answer×subject block needs far fewer directions for 99% energy.
    k_fact = factorized["answer_subject_block"]["energy_rank"]["0.99"]
    k_comb = combined["answer_subject_block"]["energy_rank"]["0.99"]
    assert k_fact <= 22 < k_comb
    # The same holds for the block weighted by the learned subject attention scores.
    assert factorized["attention_weighted_block"]["energy_rank"]["0.99"] <= 22
    assert [h["step"] for h in factorized["history"]] == [0, 100, 200, 300]


def test_summary_reports_each_criterion_beside_its_threshold(
    tiny_results: list[tuple[OCRConfig, int, dict[str, Any]]], tmp_path: Path
) -> None:
    summary = summarize(tiny_results)
    json.dumps(summary, allow_nan=False)  # the --json output must be strict JSON
    assert summary["task"] == "ocr"
    metrics = {config.parameterization: m for config, _, m in tiny_results}
    for p in ("factorized", "combined"):
        assert summary["heldout_implication_acc"][p] == metrics[p]["heldout_implication_acc"]
        assert summary["heldout_fact_acc"][p] == metrics[p]["heldout_fact_acc"]
        assert summary["energy_rank"][p]["0.99"] == metrics[p]["answer_subject_block"]["energy_rank"]["0.99"]
    criteria = summary["criteria"]
    assert set(criteria) == {
        "heldout_fact_acc_factorized", "heldout_fact_acc_combined", "heldout_implication_acc_factorized",
        "heldout_implication_acc_within_implications_combined_at_chance", "energy_rank_0.99_factorized_low",
        "energy_rank_0.99_combined_higher",
    }
    crit = criteria["heldout_implication_acc_factorized"]
    assert crit["value"] == metrics["factorized"]["heldout_implication_acc"]
    assert crit["threshold"] == ">= 0.95"
    assert crit["passed"] == (crit["value"] >= 0.95)
    assert summary["reproduced"] == all(c["passed"] for c in criteria.values())
    files = TASK.plot(tiny_results, summary, tmp_path)
    names = {f.name for f in files}
    assert {"ocr_heldout_implication_accuracy.png", "ocr_heldout_implication_accuracy.svg",
            "ocr_spectra.png", "ocr_spectra.svg"} <= names
    assert all(f.stat().st_size > 0 for f in files)


def test_summary_flags_a_failed_criterion() -> None:
    def fake(p: str, seed: int, impl: float, within: float, rank99: int) -> tuple[OCRConfig, int, dict[str, Any]]:
        m = {"experiment": "main", "parameterization": p, "seed": seed, "num_facts": 20,
             "chance_within_implications": 0.05, "heldout_implication_acc": impl,
             "heldout_implication_acc_within_implications": within, "heldout_fact_acc": 1.0,
             "nuclear_norm_at_unit_margin": 1.0,
             "answer_subject_block": {"energy_rank": {"0.9": 5, "0.99": rank99}, "effective_rank": 3.0}}
        return OCRConfig(parameterization=p), seed, m

    results = [fake("factorized", 0, 0.99, 1.0, 12), fake("factorized", 1, 0.90, 1.0, 12),
               fake("combined", 0, 0.0, 0.05, 31), fake("combined", 1, 0.0, 0.10, 31)]
    summary = summarize(results)
    crit = summary["criteria"]
    assert crit["heldout_implication_acc_factorized"]["value"] == 0.90  # worst seed
    assert not crit["heldout_implication_acc_factorized"]["passed"]
    assert crit["heldout_implication_acc_within_implications_combined_at_chance"]["value"] == 0.10
    assert not crit["heldout_implication_acc_within_implications_combined_at_chance"]["passed"]
    assert crit["energy_rank_0.99_factorized_low"]["passed"] and crit["energy_rank_0.99_combined_higher"]["passed"]
    assert summary["heldout_implication_acc"]["factorized"] == pytest.approx(0.945)
    assert summary["reproduced"] is False


class Interrupted(Exception):
    """Raised from the progress callback to simulate a killed run."""


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path: Path) -> None:
    config = OCRConfig(steps=40, eval_every=10, checkpoint_every=20, eval_per_subject=2, num_threads=1,
                       device="cpu")
    straight = run(config, 7, quiet, tmp_path / "straight")

    def stop_after_thirty(fraction: float, message: str) -> None:
        if fraction >= 0.75:
            raise Interrupted(message)

    with pytest.raises(Interrupted):
        run(config, 7, stop_after_thirty, tmp_path / "resumed")
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 20  # the last checkpoint before the interruption at step 30
    resumed = run(config, 7, quiet, tmp_path / "resumed")
    straight.pop("runtime_s")
    resumed.pop("runtime_s")
    assert resumed == straight
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # A finished checkpoint is reused as is; a different config in the same workdir is refused.
    again = run(config, 7, quiet, tmp_path / "straight")
    again.pop("runtime_s")
    assert again == straight
    with pytest.raises(ValueError, match="workdir"):
        run(dataclasses.replace(config, lr=1e-3), 7, quiet, tmp_path / "straight")


CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x00\x9c\xff not a checkpoint \x81",
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_moved_aside_and_the_run_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    config = OCRConfig(steps=20, eval_every=10, checkpoint_every=10, eval_per_subject=2, num_threads=1, device="cpu")
    straight = run(config, 3, quiet, tmp_path / "straight")
    checkpoint = tmp_path / "damaged" / "checkpoint.pt"
    run(config, 3, quiet, checkpoint.parent)
    checkpoint.write_bytes(CORRUPTIONS[how](checkpoint.read_bytes()))
    with caplog.at_level("WARNING", logger="attnlab"):
        again = run(config, 3, quiet, checkpoint.parent)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "attnlab.cache"]
    assert str(checkpoint) in message and "corrupt" in message
    assert len(list(checkpoint.parent.glob("checkpoint.pt.corrupt-*"))) == 1
    straight.pop("runtime_s")
    again.pop("runtime_s")
    assert again == straight
    assert torch.load(checkpoint, weights_only=True)["step"] == config.steps


# ---------------------------------------------------------------------------------------- experiment


def test_experiment_configs_match_the_official_setup() -> None:
    assert TASK.name == "ocr" and TASK.configs is configs
    quick = configs(True)
    assert [c.parameterization for c in quick] == ["factorized", "combined"]
    for c in quick:
        assert (c.num_subjects, c.num_facts, c.num_implications, c.num_noise, c.seq_len) == (80, 20, 20, 5, 16)
        assert (c.train_fraction, c.vocab_size, c.batch_size, c.lr, c.weight_decay) == (0.25, 128, 252, 5e-3, 0.03)
        assert (c.attention, c.init, c.steps, c.random_maps, c.experiment) == ("linear", "identity", 2000, False,
                                                                               "main")
    full = configs(False)
    sweep = [c for c in full if c.experiment == "rank_sweep"]
    assert tuple(c.rank for c in sweep) == RANK_SWEEP == (3, 4, 8, 16, 32, 64, 128)
    assert all(c.steps == 20_000 and c.init == "default" and c.parameterization == "factorized" for c in sweep)
    assert {c.parameterization for c in full if c.random_maps} == {"factorized", "combined"}
    assert len({config_hash(c) for c in full}) == len(full)


@pytest.mark.slow
def test_quick_experiment_meets_every_criterion(tmp_path: Path) -> None:
    """The official setup (2000 steps, both parameterisations) meets every reproduction criterion."""
    results = [(c, 0, run(c, 0, quiet, tmp_path / config_hash(c))) for c in configs(True)]
    summary = summarize(results)
    failed = {k: v for k, v in summary["criteria"].items() if not v["passed"]}
    assert not failed
