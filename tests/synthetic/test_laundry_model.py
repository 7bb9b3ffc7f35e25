"""The Laundry List model: masks, the matching layer 0, the readouts and seeded initialisation."""

from __future__ import annotations

import pytest
import torch

from attnlab.synthetic.laundry import LaundryConfig, LaundryModel, init_model, item_coded, positional, sample_prompts
from attnlab.synthetic.laundry.analysis import mechanism_statistics
from attnlab.synthetic.laundry.data import Prompts
from attnlab.synthetic.laundry.model import AttentionLayer, run_model

torch.set_num_threads(1)

SMALL = positional(d_model=16, max_length=5, d_heads=(8, 8, 0), qk_widths=(8, 8, 2), channel_rank=2)
SMALL_VALUE = positional(
    d_model=16, max_length=5, d_heads=(8, 8, 16), qk_widths=(8, 8, 3), readout="items", mover_identity_init=True
)
SMALL_VOCABULARY = item_coded(n_items=12, max_length=4, heads=(1, 1), d_model=8, d_heads=(4, 4), qk_widths=(4, 4))


def _cache(model: LaundryModel, prompts: Prompts) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    cache: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = run_model(model, prompts, cache=cache)
    return logits, cache


def _layer(model: LaundryModel, index: int) -> AttentionLayer:
    layer = model.layers[index]
    assert isinstance(layer, AttentionLayer)
    return layer


def _silence_layers_before_mover(model: LaundryModel) -> None:
    with torch.no_grad():
        for index in range(model.n_layers - 1):
            w_o = _layer(model, index).w_o
            assert w_o is not None
            w_o.zero_()


@pytest.mark.parametrize("config", [SMALL, SMALL_VOCABULARY], ids=["gaussian", "vocabulary"])
def test_mover_reads_only_the_first_list(config: LaundryConfig) -> None:
    model = init_model(config, 0)
    n = config.max_length
    prompts = sample_prompts(config, n, 32, torch.Generator().manual_seed(0))
    _, cache = _cache(model, prompts)
    mover = cache[f"attn{model.n_layers - 1}"][:, 0, -1]
    assert torch.all(mover[:, n:] == 0)
    torch.testing.assert_close(mover[:, :n].sum(dim=-1), torch.ones(32))
    assert torch.any(cache["attn1" if model.n_layers > 2 else "attn0"][:, 0, -1, n:] > 0)  # earlier layers see all


@pytest.mark.parametrize("positional_keys", [True, False])
def test_positional_mover_keys_ignore_item_content(positional_keys: bool) -> None:
    """With the earlier layers silenced the query is the same for every prompt of a length, so the mover's
    attention can only differ between prompts through the keys, which positional keys make content-free."""
    config = LaundryConfig(
        **{**SMALL_VOCABULARY.__dict__, "mover_positional_keys": positional_keys, "mover_reads_first_list": False}
    )
    model = init_model(config, 1)
    _silence_layers_before_mover(model)
    _, cache = _cache(model, sample_prompts(config, 4, 16, torch.Generator().manual_seed(1)))
    mover = cache["attn1"][:, 0, -1]
    assert bool(torch.allclose(mover, mover[:1].expand_as(mover), atol=1e-6)) == positional_keys


def test_matching_layer0_is_symmetric_strictly_causal_and_reads_positions_as_values() -> None:
    model = init_model(SMALL, 2)
    prompts = sample_prompts(SMALL, 5, 16, torch.Generator().manual_seed(2))
    _, cache = _cache(model, prompts)
    scores, attention = cache["scores0"][:, 0], cache["attn0"][:, 0]
    torch.testing.assert_close(scores, scores.transpose(-1, -2))  # W_K tied to W_Q
    assert torch.all(attention.diagonal(dim1=-2, dim2=-1)[:, 1:] == 0)  # no self-attention ...
    assert torch.all(attention[:, 0, 0] == 1)  # ... except token 0, which has nothing else to see
    assert torch.all(attention.triu(1) == 0)
    with torch.no_grad():
        model.pos.normal_(generator=torch.Generator().manual_seed(3))
    _, moved = _cache(model, prompts)
    torch.testing.assert_close(moved["scores0"], cache["scores0"])  # query/key read the tokens only
    with torch.no_grad():
        model.pos.zero_()
    _, zeroed = _cache(model, prompts)
    assert torch.all(zeroed["head_out0"] == 0)  # the value reads the positions only


def test_matching_layer0_matches_duplicates_from_initialisation_and_a_free_layer_does_not() -> None:
    """The tied, 8x-scaled initialisation is what makes layer 0 a duplicate-matching head."""
    prompts = sample_prompts(positional(), 8, 256, torch.Generator().manual_seed(4))
    tied = mechanism_statistics(init_model(positional(), 0), prompts)
    free = mechanism_statistics(init_model(positional(matching_layer0=False), 0), prompts)
    chance = tied["layer0_repeat_to_first_occurrence_chance"]
    assert 0.07 < chance < 0.1
    assert tied["layer0_repeat_to_first_occurrence"][0] > 4 * chance
    assert free["layer0_repeat_to_first_occurrence"][0] < 2 * free["layer0_repeat_to_first_occurrence_chance"]


def test_uniform_layer0_attention_measures_the_stated_chance_level() -> None:
    model = init_model(SMALL, 0)
    with torch.no_grad():
        _layer(model, 0).w_q.zero_()
    stats = mechanism_statistics(model, sample_prompts(SMALL, 5, 64, torch.Generator().manual_seed(5)))
    assert stats["layer0_repeat_to_first_occurrence"][0] == pytest.approx(
        stats["layer0_repeat_to_first_occurrence_chance"], rel=1e-5
    )


def test_pointer_logits_are_the_mover_scores_over_the_first_list() -> None:
    model = init_model(SMALL, 0)
    prompts = sample_prompts(SMALL, 4, 32, torch.Generator().manual_seed(6))
    logits, cache = _cache(model, prompts)
    assert logits.shape == (32, 4)
    torch.testing.assert_close(logits, cache["scores2"][:, 0, -1, :4])
    assert _layer(model, 2).w_v is None  # the pointer mover has no value path to train


def test_value_readout_starts_as_a_copying_mover() -> None:
    model = init_model(SMALL_VALUE, 0)
    mover = _layer(model, 2)
    assert mover.w_v is not None and mover.w_o is not None
    assert torch.equal(mover.w_v[0], torch.eye(16)) and torch.equal(mover.w_o[0], torch.eye(16))
    prompts = sample_prompts(SMALL_VALUE, 5, 32, torch.Generator().manual_seed(7))
    logits, cache = _cache(model, prompts)
    assert prompts.items is not None
    expected = torch.einsum("bd,bnd->bn", cache["head_out2"][:, 0, -1], prompts.items)
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("config", [SMALL, SMALL_VALUE, SMALL_VOCABULARY], ids=["pointer", "items", "unembed"])
def test_initialisation_follows_the_seed(config: LaundryConfig) -> None:
    first, again, other = init_model(config, 0), init_model(config, 0), init_model(config, 1)
    for (name, a), (_, b), (_, c) in zip(
        first.state_dict().items(), again.state_dict().items(), other.state_dict().items()
    ):
        assert torch.equal(a, b), name
        if not (config.mover_identity_init and name.startswith("layers.2.w_")):
            assert not torch.equal(a, c), name
