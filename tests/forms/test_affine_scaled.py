"""Affine-Scaled Attention: the tied bias at length, and the Numba path against torch on a long causal call."""

from __future__ import annotations

import numpy as np
import torch

from attnlab.fastpath.numba.affine_scaled import affine_scaled_attention as numba_path
from attnlab.fastpath.torch.affine_scaled import affine_scaled_attention as torch_path
from attnlab.reference.affine_scaled import affine_scaled_attention


def test_tied_bias_keeps_unit_row_sums_at_length() -> None:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 200, 8)), rng.standard_normal((2, 230, 8))
    alpha = rng.uniform(0.0, 2.0, (2, 200, 1))
    weights = affine_scaled_attention(
        q, k, np.broadcast_to(np.eye(230), (2, 230, 230)), alpha, causal=True, tie_beta=True
    )
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    assert weights.min() < 0.0  # α > 1 pushes some weights below zero: the row sum, not positivity, is what ties


def test_numba_and_torch_paths_agree_on_a_long_causal_call() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (
        rng.standard_normal((1, 4, 300, 16)),
        rng.standard_normal((1, 2, 300, 16)),
        rng.standard_normal((1, 2, 300, 8)),
    )
    alpha, beta = rng.uniform(0.2, 1.8, (1, 4, 300, 1)), 0.01 * rng.standard_normal((1, 4, 300, 1))
    want = affine_scaled_attention(q, k, v, alpha, beta, causal=True)
    np.testing.assert_allclose(numba_path(q, k, v, alpha, beta, causal=True), want, atol=1e-11)
    got = torch_path(*(torch.from_numpy(a) for a in (q, k, v, alpha, beta)), causal=True).numpy()
    np.testing.assert_allclose(got, want, atol=1e-11)
