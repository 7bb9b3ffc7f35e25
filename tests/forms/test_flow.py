"""Flow-Attention: the released code's ε and clamp against the paper's equations, and long sequences."""

from __future__ import annotations

import numpy as np

from attnlab.reference.flow import flow_attention, flow_parts


def test_the_code_clamp_changes_the_output_and_its_eps_does_not() -> None:
    """The paper has neither; at typical sizes ε = 1e-6 moves the output by < 1e-5 while the [−1, 1] clamp on Ô
    (active once Ô > 1) moves it by far more."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 64, 16)), rng.standard_normal((2, 64, 16)), rng.standard_normal((2, 64, 8))
    assert flow_parts(q, k).conserved_source.max() > 1.0
    paper = flow_attention(q, k, v)
    assert np.max(np.abs(flow_attention(q, k, v, eps=1e-6) - paper)) < 1e-5
    assert np.max(np.abs(flow_attention(q, k, v, eps=1e-6, clamp=1.0) - paper)) > 1e-3


def test_linear_equals_quadratic_on_long_sequences() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (
        rng.standard_normal((1, 2, 300, 8)),
        rng.standard_normal((1, 2, 300, 8)),
        rng.standard_normal((1, 2, 300, 4)),
    )
    for causal in (False, True):
        linear = flow_attention(q, k, v, causal=causal, eps=1e-6, clamp=1.0)
        quadratic = flow_attention(q, k, v, causal=causal, eps=1e-6, clamp=1.0, form="quadratic")
        np.testing.assert_allclose(linear, quadratic, atol=1e-11)
    np.testing.assert_allclose(flow_parts(q, k).competition.sum(-1), 300.0, rtol=1e-12)
