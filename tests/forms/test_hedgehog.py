"""Hedgehog specifics: the fla variant is the paper's map at a doubled projection with each key re-weighted
by 1/Z(k_j); the query normaliser cancels, the key normaliser does not."""

from __future__ import annotations

import numpy as np

from attnlab.reference.hedgehog import feature_attention, hedgehog_attention, hedgehog_features


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
