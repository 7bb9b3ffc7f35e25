"""Laundry List prompts: layout and labels, spread, train/test separation, and the seed's reach."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.synthetic.base import config_hash
from attnlab.synthetic.laundry import (
    LaundryConfig,
    build_test_set,
    in_test_partition,
    item_coded,
    positional,
    sample_prompts,
)
from attnlab.synthetic.laundry.data import calibration_set, training_batch

VOCABULARY = item_coded(n_items=32)
GAUSSIAN = positional()


def _rows(tokens: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in tokens.tolist()}


@pytest.mark.parametrize("config", [VOCABULARY, GAUSSIAN], ids=["vocabulary", "gaussian"])
@pytest.mark.parametrize("n", [2, 5, 8])
def test_prompts_have_the_documented_layout_and_correct_labels(config: LaundryConfig, n: int) -> None:
    prompts = sample_prompts(config, n, 300, torch.Generator().manual_seed(n))
    tokens = prompts.tokens
    assert tokens.shape == (300, 2 * n + 1)
    assert torch.all(tokens[:, n] == config.sep_token)
    assert torch.all(tokens[:, -1] == config.query_token)
    assert torch.all(prompts.positions < n)
    for row, answer, position in zip(tokens.tolist(), prompts.answers.tolist(), prompts.positions.tolist()):
        first, second = row[:n], row[n + 1 : 2 * n]
        assert len(set(first)) == n and max(first) < config.sep_token
        assert first[position] == answer
        assert answer not in second
        assert sorted(second) == sorted(first[:position] + first[position + 1 :])


def test_gaussian_items_are_fresh_unit_scale_vectors_in_first_list_order() -> None:
    prompts = sample_prompts(GAUSSIAN, 6, 2000, torch.Generator().manual_seed(0))
    assert prompts.items is not None and prompts.items.shape == (2000, 6, GAUSSIAN.d_model)
    assert torch.equal(prompts.tokens[:, :6], torch.arange(6).expand(2000, 6))
    assert torch.equal(prompts.answers, prompts.positions)
    squared_norms = prompts.items.pow(2).sum(dim=-1)
    assert abs(float(squared_norms.mean()) - 1.0) < 0.02  # a_i ~ N(0, I/d): E||a||^2 = 1
    torch.testing.assert_close(prompts.missing_items(), prompts.items[torch.arange(2000), prompts.positions])
    # no two prompts share an item: the model cannot memorise item identities
    flat = prompts.items.reshape(-1, GAUSSIAN.d_model)
    assert torch.unique(flat, dim=0).shape[0] == flat.shape[0]


def test_answer_positions_and_repeat_orders_are_spread() -> None:
    prompts = sample_prompts(VOCABULARY, 6, 3000, torch.Generator().manual_seed(0))
    counts = torch.bincount(prompts.positions, minlength=6).double() / 3000
    assert torch.all((counts - 1 / 6).abs() < 0.03)
    # the second list is a fresh shuffle, not the first list in order (which about 1/5! of rows keep)
    rows = prompts.tokens.tolist()
    in_first_order = [[t for t in row[:6] if t in row[7:12]] for row in rows]
    assert np.mean([kept == row[7:12] for kept, row in zip(in_first_order, rows)]) < 0.05


def test_train_and_test_partitions_never_overlap() -> None:
    config = item_coded(n_items=9, max_length=3, eval_size=400)
    data = build_test_set(config, seed=0)
    generator = torch.Generator().manual_seed(1)
    for n in config.lengths():
        assert torch.all(in_test_partition(data[n].tokens, config.test_buckets))
        train = sample_prompts(config, n, 4000, generator)
        assert not torch.any(in_test_partition(train.tokens, config.test_buckets))
        # with 9 items and n = 2 the whole prompt space (9*8*2 prompts) is sampled many times over
        assert _rows(train.tokens).isdisjoint(_rows(data[n].tokens))


@pytest.mark.parametrize("config", [VOCABULARY, GAUSSIAN], ids=["vocabulary", "gaussian"])
def test_test_set_is_a_function_of_the_seed(config: LaundryConfig) -> None:
    small = LaundryConfig(**{**config.__dict__, "eval_size": 64})
    first, again, other = build_test_set(small, 3), build_test_set(small, 3), small.build(4)
    for n in small.lengths():
        assert torch.equal(first[n].tokens, again[n].tokens)
        assert torch.equal(first[n].answers, again[n].answers)
        if small.items == "gaussian":
            assert first[n].items is not None and other[n].items is not None
            assert torch.equal(first[n].items, again[n].items)  # type: ignore[arg-type]
            assert not torch.allclose(first[n].items, other[n].items)
        else:
            assert not torch.equal(first[n].tokens, other[n].tokens)


def test_calibration_and_training_streams_differ_by_seed_and_from_each_other() -> None:
    config = positional(calibration_size=32, batch_size=32)
    first, again, other = calibration_set(config, 0), calibration_set(config, 0), calibration_set(config, 1)
    assert first.items is not None and again.items is not None and other.items is not None
    assert torch.equal(first.items, again.items)
    assert not torch.allclose(first.items, other.items)
    batch = training_batch(config, torch.Generator().manual_seed(0))
    assert batch.tokens.shape[0] == 32 and config.min_length <= batch.length <= config.max_length


def test_training_lengths_cover_the_range() -> None:
    generator = torch.Generator().manual_seed(0)
    lengths = {training_batch(positional(batch_size=1), generator).length for _ in range(200)}
    assert lengths == set(positional().lengths())


def test_config_validation_names_the_argument() -> None:
    with pytest.raises(ValueError, match="heads"):
        LaundryConfig(heads=(2, 2), d_heads=(8, 0), qk_widths=(8, 2))
    with pytest.raises(ValueError, match="n_items"):
        item_coded(n_items=5)
    with pytest.raises(ValueError, match="d_heads"):
        LaundryConfig(d_heads=(4,))
    with pytest.raises(ValueError, match="d_heads"):
        LaundryConfig(readout="items")  # the default mover has no value path
    with pytest.raises(ValueError, match="qk_widths"):
        LaundryConfig(qk_widths=(4, 0, 2))
    with pytest.raises(ValueError, match="readout"):
        LaundryConfig(readout="unembed")  # gaussian items have no vocabulary
    with pytest.raises(ValueError, match="items"):
        LaundryConfig(items="words")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mover_identity_init"):
        LaundryConfig(mover_identity_init=True, d_heads=(16, 16, 8), readout="items")
    with pytest.raises(ValueError, match="channel_rank"):
        LaundryConfig(channel_rank=17)
    with pytest.raises(ValueError, match="partition"):
        sample_prompts(GAUSSIAN, 3, 4, torch.Generator(), partition="valid")
    with pytest.raises(ValueError, match="n: expected"):
        sample_prompts(GAUSSIAN, 9, 4, torch.Generator())
    assert config_hash(positional()) != config_hash(positional(steps=10))
    assert config_hash(positional()) != config_hash(item_coded())
