"""Hedgehog specifics: the fla variant is the paper's map at a doubled projection with each key re-weighted
by 1/Z(k_j); the query normaliser cancels, the key normaliser does not."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference.hedgehog import (
    PAPER_EXPONENT_LIMIT,
    check_paper_exponents,
    feature_attention,
    hedgehog_attention,
    hedgehog_fast_path_options,
    hedgehog_features,
)


def test_fla_is_the_paper_map_with_keys_reweighted() -> None:
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((2, 9, 4)), rng.standard_normal((2, 9, 4)), rng.standard_normal((2, 9, 3))
    paper_q, paper_k = hedgehog_features(2 * q), hedgehog_features(2 * k)
    z_k = paper_k.sum(-1, keepdims=True)
    want = feature_attention(paper_q, paper_k / z_k, v, causal=True, eps=0.0)
    got = hedgehog_attention(q, k, v, variant="fla", causal=True, eps=0.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    unweighted = feature_attention(paper_q, paper_k, v, causal=True, eps=0.0)
    assert np.abs(got - unweighted).max() > 1e-3  # the key normaliser matters


STATELESS = {"variant": "paper", "form": "quadratic", "causal": True, "eps": 1e-6, "chunk_size": 16}


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"initial_state": 0.0}, ValueError, "initial_state: the Numba path carries no recurrent state"),
        ({"return_state": True}, ValueError, "return_state: the Numba path carries no recurrent state"),
        ({"initial_state": 0.0, "return_state": True}, ValueError, "initial_state: the Numba path carries no"),
        ({"return_state": "yes"}, TypeError, "return_state: expected True or False, got str 'yes'"),
        ({"eps": -1.0}, ValueError, "eps: expected a non-negative finite float"),
    ],
)
def test_stateless_fast_path_options_refused_by_name(changes, error, message) -> None:
    options = {"initial_state": None, "return_state": False, **STATELESS, **changes}
    with pytest.raises(error) as caught:
        hedgehog_fast_path_options("Numba", **options)
    assert str(caught.value).startswith(message)


def test_stateless_fast_path_options_return_causal_and_eps() -> None:
    got = hedgehog_fast_path_options("torch", initial_state=None, return_state=False, **{**STATELESS, "causal": False})
    assert got == (False, 1e-6)


def test_paper_shift_divides_every_feature_by_e_to_the_shift() -> None:
    # [e^{y − μ}, e^{−y − μ}] = e^{−μ} [e^{y}, e^{−y}]: the shift the fast paths use to stay finite
    rng = np.random.default_rng(11)
    y = rng.standard_normal((2, 5, 3))
    shift = rng.standard_normal((2, 5, 1))
    shifted = hedgehog_features(y, variant="paper", shift=shift)
    np.testing.assert_allclose(shifted, np.exp(-shift) * hedgehog_features(y, variant="paper"), rtol=1e-14)


@pytest.mark.parametrize("variant", ["softmax_dim", "exp_dim"])
def test_row_normalised_variants_ignore_a_per_token_offset_of_any_size(variant) -> None:
    # each softmax (and each max/min-shifted exponential) is taken over one token's d' features, so adding
    # a constant to one token's projection changes nothing, even an offset of ±800 next to a token near 0
    rng = np.random.default_rng(12)
    y = rng.standard_normal((4, 3))
    offset = np.array([[800.0], [-800.0], [0.0], [30.0]])
    np.testing.assert_allclose(
        hedgehog_features(y + offset, variant=variant), hedgehog_features(y, variant=variant), rtol=1e-12, atol=1e-15
    )


def test_paper_exponent_limit_is_strict() -> None:
    # e^{y_q + y_k} is accepted strictly below the limit and refused at it
    check_paper_exponents(PAPER_EXPONENT_LIMIT / 2, PAPER_EXPONENT_LIMIT / 2 - 1e-9)
    with pytest.raises(ValueError, match=r"reach e\^700"):
        check_paper_exponents(PAPER_EXPONENT_LIMIT / 2, PAPER_EXPONENT_LIMIT / 2)
