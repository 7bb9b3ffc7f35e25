"""Bilinear MLR checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import numpy as np

from attnlab.core import Shape
from attnlab.forms.mlr_bilinear import sample
from attnlab.reference.mlr_bilinear import bilinear_mlr_attention


def test_a_level_with_one_feature_vanishes_under_the_layer_norm() -> None:
    # r_1·p_1 = 1: the layer norm of a single feature is 0, so level 1's weights cannot matter
    s = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=6, d=8, d_v=3, options=(("ranks", (1, 2)),)))
    x, y, v, w_q, w_k = s.args
    other_q, other_k = w_q.copy(), w_k.copy()
    other_q[:, :2] = np.random.default_rng(1).standard_normal((8, 2))  # level 1 owns the first H·r_1 = 2 columns
    np.testing.assert_array_equal(
        bilinear_mlr_attention(x, y, v, other_q, other_k, **s.kwargs), bilinear_mlr_attention(*s.args, **s.kwargs)
    )
    without_ln = {**s.kwargs, "layer_norm_features": False}
    assert not np.allclose(
        bilinear_mlr_attention(x, y, v, other_q, other_k, **without_ln), bilinear_mlr_attention(*s.args, **without_ln)
    )


def test_tokens_without_batch_and_head_axes_are_shared_by_every_head() -> None:
    # x (n, D) and y (m, D) are the same tokens as (1, 1, n, D) and (1, 1, m, D)
    s = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, m=4, d=8, d_v=3, options=(("ranks", (2, 1)),)))
    x, y, v, w_q, w_k = s.args
    flat = bilinear_mlr_attention(x[0, 0], y[0, 0], v[0], w_q, w_k, **s.kwargs)
    np.testing.assert_array_equal(flat, bilinear_mlr_attention(x, y, v, w_q, w_k, **s.kwargs)[0])
