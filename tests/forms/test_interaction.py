"""The softmax coefficients of the factorized interaction operator, called directly (theory.heads uses them)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference.interaction import softmax_coefficients

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 5, 4))
W_Q, W_K = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))


def _by_hand(scale: float, causal: bool) -> np.ndarray:
    q = np.stack([X @ w for w in W_Q], axis=-3)  # (2, 3, 5, 2)
    k = np.stack([X @ w for w in W_K], axis=-3)
    logits = scale * q @ np.swapaxes(k, -1, -2)
    if causal:
        logits = np.where(np.tril(np.ones((5, 5), dtype=bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def test_softmax_coefficients_are_non_causal_with_scale_one_over_root_d_k_by_default() -> None:
    np.testing.assert_allclose(softmax_coefficients(X, W_Q, W_K), _by_hand(2**-0.5, False), rtol=0, atol=1e-14)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_coefficients_use_the_given_scale(causal: bool) -> None:
    got = softmax_coefficients(X, W_Q, W_K, scale=1.7, causal=causal)
    np.testing.assert_allclose(got, _by_hand(1.7, causal), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("x", W_Q, W_K), TypeError, r"^x: expected a float NumPy array"),
        ((X, W_Q[0], W_K), ValueError, r"^w_q: expected a 3-d array \(H, D, d_k\), got shape \(4, 2\)"),
        ((X, W_Q, W_K[0]), ValueError, r"^w_k: expected a 3-d array \(H, D, d_k\), got shape \(4, 2\)"),
        ((X, "w", W_K), TypeError, r"^w_q: expected a float NumPy array of shape \(H, D, d_k\)"),
        ((X, W_Q, "w"), TypeError, r"^w_k: expected a float NumPy array of shape \(H, D, d_k\)"),
    ],
)
def test_softmax_coefficients_name_the_bad_argument(args: tuple, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        softmax_coefficients(*args)
