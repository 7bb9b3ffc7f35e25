"""Hamming attention: sign(0) = +1, integer scores, top-N keeps ties."""

from __future__ import annotations

import numpy as np

from attnlab.reference import hamming_attention, hamming_scores, sign_code, softmax_attention


def test_sign_of_zero_is_plus_one() -> None:
    assert (sign_code(np.array([0.0, -0.0, 1e-300, -1e-300])) == np.array([1, 1, 1, -1])).all()


def test_scores_take_only_d_plus_one_values() -> None:
    rng = np.random.default_rng(5)
    d = 7
    scores = hamming_scores(rng.standard_normal((30, d)), rng.standard_normal((40, d)), scale=1.0)
    assert set(np.unique(scores)).issubset(set(range(-d, d + 1, 2)))


def test_top_n_keeps_every_tie_with_the_nth_value() -> None:
    q = np.array([[1.0, 1.0]])
    k = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # scores 2, 0, 0, -2
    v = np.eye(4)
    out = hamming_attention(q, k, v, scale=1.0, top_n=2)
    kept = out[0] > 0
    assert kept.tolist() == [True, True, True, False]


def test_equals_softmax_on_sign_codes() -> None:
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 7, 6)), rng.standard_normal((2, 7, 3))
    np.testing.assert_allclose(
        hamming_attention(q, k, v, causal=True),
        softmax_attention(sign_code(q), sign_code(k), v, causal=True),
        atol=1e-13,
    )


def test_causal_rows_with_no_visible_key_are_zero_in_reference_and_loop() -> None:
    """Regression for the first example hypothesis found: causal with m < n leaves the first n - m
    queries with no visible key (bottom-right alignment); both forms must return zeros there."""
    from attnlab.registry import Shape, get_form

    info = get_form("hamming")
    sample = info.make_sample(3, Shape(batch=1, heads=1, kv_heads=1, n=5, m=2, d=3, d_v=2, causal=True))
    out = sample.call(info.reference)
    np.testing.assert_array_equal(out[..., :3, :], 0.0)
    np.testing.assert_allclose(sample.call(info.brute_force), out, atol=1e-13)
