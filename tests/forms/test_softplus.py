"""LSSA / LSSAR: the log-domain evaluation at extreme logits and the threshold re-weighting."""

from __future__ import annotations

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.reference.softplus import log_softplus, softplus_attention


def test_rows_of_very_negative_logits_keep_their_weights() -> None:
    """softplus(x) = e^x (1 − e^x/2 + …) for x ≪ 0: where every logit is below −700 softplus underflows, yet the
    normalised weights are softmax's to double precision (a direct ratio would give 0/0)."""
    rng = np.random.default_rng(0)
    q = -np.abs(rng.standard_normal((4, 3))) - 40.0
    k = np.abs(rng.standard_normal((6, 3))) + 40.0
    v = rng.standard_normal((6, 2))
    out = softplus_attention(q, k, v, scale=1.0, length_scale=False)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, softmax_attention(q, k, v, scale=1.0), atol=1e-12)


def test_threshold_reweighting_drops_weights_below_uniform() -> None:
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((5, 4)), rng.standard_normal((9, 4))
    identity = np.eye(9)
    base = softplus_attention(q, k, identity)
    sharp = softplus_attention(q, k, identity, power=2.0, reweight="threshold")
    below = base <= 1.0 / 9
    assert np.all(sharp[below] == 0.0)
    np.testing.assert_allclose(sharp.sum(-1), 1.0, atol=1e-12)
    excess = np.where(below, 0.0, 9 * base - 1) ** 2
    np.testing.assert_allclose(sharp, excess / excess.sum(-1, keepdims=True), atol=1e-12)


def test_log_softplus_is_accurate_where_e_to_the_x_underflows() -> None:
    # log(log(1 + e^x)) = x + log(log1p(e^x)/e^x) -> x as x -> -inf: at x = -800 (e^x = 0 in float64) it is x
    np.testing.assert_allclose(
        log_softplus(np.array([-800.0, -40.0, 0.0])), [-800.0, -40.0, np.log(np.log(2.0))], rtol=1e-15
    )
