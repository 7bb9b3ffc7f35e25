"""GAAM: the code's product of Gaussians is unimodal along the axis; the abstract's mixture reading need not be."""

from __future__ import annotations

import numpy as np

from attnlab.reference.gaam import gaussian_adaptive_weights


def _peaks(w: np.ndarray) -> int:
    return int(np.sum((w[1:-1] > w[:-2]) & (w[1:-1] > w[2:])))


def test_product_is_unimodal_and_mean_can_be_bimodal() -> None:
    x = np.linspace(-3.0, 3.0, 61)[None, :]
    delta, c = np.array([[-1.6, 1.6]]), np.array([[0.25, 0.25]])
    product = gaussian_adaptive_weights(x, delta, c)[0]
    mixture = gaussian_adaptive_weights(x, delta, c, combine="mean")[0]
    assert _peaks(product) == 1
    assert _peaks(mixture) == 2
    np.testing.assert_allclose([product.sum(), mixture.sum()], 1.0, atol=1e-12)
