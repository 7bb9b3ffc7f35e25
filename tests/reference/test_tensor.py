"""Tensor / 2-simplicial references: memory-bounded streaming equals one-shot evaluation."""

from __future__ import annotations

import numpy as np

import attnlab.reference.tensor as tensor_module
from attnlab.reference import khatri_rao, simplicial_attention, softmax_attention, tensor_attention


def test_query_streaming_matches_one_block(monkeypatch) -> None:
    rng = np.random.default_rng(7)
    args = [rng.standard_normal((2, 9, 4)) for _ in range(5)]
    whole = tensor_attention(*args, causal=True)
    monkeypatch.setattr(tensor_module, "_BLOCK_ELEMENTS", 1)  # one query per block
    np.testing.assert_array_equal(tensor_attention(*args, causal=True), whole)


def test_khatri_rao_row_order() -> None:
    a = np.arange(6.0).reshape(3, 2)
    b = np.arange(4.0).reshape(2, 2) + 10
    kr = khatri_rao(a, b)
    assert kr.shape == (6, 2)
    for j in range(3):
        for k in range(2):
            np.testing.assert_array_equal(kr[j * 2 + k], a[j] * b[k])


def test_window_one_is_self_only() -> None:
    rng = np.random.default_rng(8)
    q, k1, k2, v1, v2 = (rng.standard_normal((6, 3)) for _ in range(5))
    out = simplicial_attention(q, k1, k2, v1, v2, window1=1, window2=1)
    np.testing.assert_allclose(out, v1 * v2, atol=1e-14)


def test_tensor_with_one_key_pair_block_equals_softmax_over_pairs() -> None:
    rng = np.random.default_rng(9)
    q, k1, k2, v1, v2 = (rng.standard_normal((4, 3)) for _ in range(5))
    want = softmax_attention(q, khatri_rao(k1, k2), khatri_rao(v1, v2), scale=0.5)
    np.testing.assert_allclose(tensor_attention(q, k1, k2, v1, v2, scale=0.5), want, atol=1e-13)
