"""Form-specific tests of the softmax reference beyond the registry invariants."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference import attention_weights, softmax_attention
from attnlab.validation import reference_precision

rng = np.random.default_rng(0)


def test_fully_masked_row_gives_zeros_not_nan() -> None:
    q, k, v = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    mask = np.ones((3, 5), bool)
    mask[1] = False
    out = softmax_attention(q, k, v, mask=mask)
    assert np.all(np.isfinite(out))
    assert np.all(out[1] == 0.0)
    assert np.all(attention_weights(q, k, mask=mask)[1] == 0.0)


def test_causal_cross_length_is_bottom_right_aligned() -> None:
    n, m = 3, 5
    weights = attention_weights(rng.standard_normal((n, 4)), rng.standard_normal((m, 4)), causal=True)
    visible = weights > 0
    expected = np.array([[j <= i + m - n for j in range(m)] for i in range(n)])
    assert (visible == expected).all()
    assert visible[-1].all(), "the last query sees every key (KV-cache convention)"


def test_large_scale_is_hard_argmax_and_small_scale_is_mean() -> None:
    q, k, v = rng.standard_normal((4, 6)), rng.standard_normal((7, 6)), rng.standard_normal((7, 3))
    hard = softmax_attention(q, k, v, scale=1e6)
    np.testing.assert_allclose(hard, v[np.argmax(q @ k.T, axis=1)], atol=1e-12)
    soft = softmax_attention(q, k, v, scale=1e-12)
    np.testing.assert_allclose(soft, np.broadcast_to(v.mean(0), soft.shape), atol=1e-10)


def test_huge_logits_do_not_overflow() -> None:
    q = 1e3 * rng.standard_normal((2, 8))
    k = 1e3 * rng.standard_normal((9, 8))
    out = softmax_attention(q, k, rng.standard_normal((9, 2)))
    assert np.all(np.isfinite(out))


def test_mask_broadcasts_over_heads() -> None:
    q, k, v = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 6, 2))
    mask = rng.random((4, 6)) < 0.6
    full = np.broadcast_to(mask, (2, 3, 4, 6))
    np.testing.assert_array_equal(softmax_attention(q, k, v, mask=mask), softmax_attention(q, k, v, mask=full))


def test_mqa_single_kv_head() -> None:
    q, k, v = rng.standard_normal((4, 3, 5)), rng.standard_normal((1, 6, 5)), rng.standard_normal((1, 6, 2))
    out = softmax_attention(q, k, v)
    for h in range(4):
        np.testing.assert_allclose(out[h], softmax_attention(q[h], k[0], v[0]), atol=1e-14)


def test_reference_precision_runs_the_same_math_in_float32() -> None:
    q, k, v = rng.standard_normal((2, 9, 8)), rng.standard_normal((2, 9, 8)), rng.standard_normal((2, 9, 3))
    with reference_precision(np.float32):
        low = softmax_attention(q, k, v, causal=True)
    high = softmax_attention(q, k, v, causal=True)
    assert low.dtype == np.float32
    err = np.max(np.abs(low - high))
    assert 0 < err < 1e-5


@pytest.mark.parametrize("bad_mask", [np.ones((4,), bool), np.ones((3, 4, 7), bool)])
def test_mask_shape_is_checked(bad_mask: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask"):
        softmax_attention(
            rng.standard_normal((4, 2)), rng.standard_normal((7, 2)), rng.standard_normal((7, 1)), mask=bad_mask
        )


def test_merging_with_an_empty_side_is_the_identity() -> None:
    """``merge_partial_attention`` is a monoid with the empty partial result (``lse = −inf``) as identity,
    on either side; two empty sides stay empty."""
    from attnlab.reference.softmax import merge_partial_attention

    rng = np.random.default_rng(8)
    out, lse = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3))
    junk = rng.standard_normal((2, 3, 4))  # whatever an empty side holds, it must not leak
    empty = np.full((2, 3), -np.inf)
    for merged, merged_lse in (
        merge_partial_attention(out, lse, junk, empty),
        merge_partial_attention(junk, empty, out, lse),
    ):
        np.testing.assert_allclose(merged, out, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(merged_lse, lse)
    both, both_lse = merge_partial_attention(junk, empty, junk, empty)
    np.testing.assert_array_equal(both, np.zeros_like(junk))
    assert np.all(both_lse == -np.inf)


_Q, _K = np.ones((1, 3, 4, 4)), np.ones((1, 3, 5, 4))


@pytest.mark.parametrize(
    ("q", "k", "error", "message"),
    [
        ("q", _K, TypeError, "q: expected a float NumPy array of shape (..., n, d), got str"),
        (_Q, "k", TypeError, "k: expected a float NumPy array of shape (..., n, d), got str"),
        (
            _Q,
            _K[..., :3],
            ValueError,
            "k: expected last axis of size 4 (d_k, the last axis of q), got shape (1, 3, 5, 3)",
        ),
        (
            _Q,
            _K[:, :2],
            ValueError,
            "k: expected a KV head count that divides the 3 query heads of q on axis -3 (GQA/MQA), got 2 heads in "
            "shape (1, 2, 5, 4)",
        ),
    ],
)
def test_attention_weights_name_the_bad_argument(q, k, error, message) -> None:
    with pytest.raises(error) as caught:
        attention_weights(q, k)
    assert str(caught.value) == message


@pytest.mark.parametrize("weights_only", [False, True])
def test_a_per_head_mask_on_inputs_without_a_batch_axis(weights_only) -> None:
    # q (H, n, d) with a mask (H, n, m): head h uses mask[h], as a call on that head alone does (H != n)
    q, k, v = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 6, 4)), rng.standard_normal((3, 6, 2))
    mask = rng.random((3, 5, 6)) < 0.7
    mask[..., 0] = True
    for h in range(3):
        if weights_only:
            np.testing.assert_allclose(
                attention_weights(q, k, mask=mask)[h], attention_weights(q[h], k[h], mask=mask[h]), rtol=1e-14
            )
        else:
            np.testing.assert_allclose(
                softmax_attention(q, k, v, mask=mask)[h], softmax_attention(q[h], k[h], v[h], mask=mask[h]), rtol=1e-14
            )
