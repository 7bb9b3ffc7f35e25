"""Holographic-attention-specific checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnlab.reference.holographic import holographic_attention, holographic_attention_real_view


def test_real_inputs_give_real_outputs_when_eps_is_0() -> None:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 7, 4)), rng.standard_normal((2, 7, 3))
    out = holographic_attention(q, k, v, eps=0.0)
    assert out.dtype == np.complex128
    assert float(np.abs(out.imag).max()) < 1e-15  # phases 0 or π: e^{iπ} = −1 up to rounding
    view = holographic_attention_real_view(q, k, v, eps=0.0)
    np.testing.assert_allclose(view[..., :3], out.real, rtol=0, atol=0)


def test_eps_gives_a_zero_score_the_phase_pi_over_4() -> None:
    # the released code's ε in both atan2 arguments: s = 0 has Δφ = atan2(ε, ε) = π/4
    q = np.array([[1.0 + 0j, 0j]])
    k = np.array([[0j, 1.0 + 0j]])  # orthogonal: s = 0
    v = np.array([[2.0 + 0j]])
    out = holographic_attention(q, k, v)
    np.testing.assert_allclose(out, 2.0 * np.exp(1j * math.pi / 4), rtol=0, atol=1e-15)
    np.testing.assert_allclose(holographic_attention(q, k, v, eps=0.0), 2.0, rtol=0, atol=1e-15)


def test_a_scalar_decay_applies_to_inputs_without_a_head_axis() -> None:
    # (n, d) inputs have no head axis; a scalar alpha (float or 0-d array) is their one head's decay
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 5, 4)) + 1j * rng.standard_normal((1, 5, 4)) for _ in range(3))
    want = holographic_attention(q, k, v, alpha=np.array([1.5]))[0]
    for alpha in (1.5, np.array(1.5)):
        np.testing.assert_allclose(holographic_attention(q[0], k[0], v[0], alpha=alpha), want, rtol=0, atol=1e-15)


def test_a_torch_decay_is_refused_by_name() -> None:
    # np.asarray would read a CPU tensor silently; the reference takes NumPy arrays only
    import torch

    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 3, 4)) + 0j for _ in range(3))
    with pytest.raises(TypeError, match=r"^alpha: .*NumPy array.*torch"):
        holographic_attention(q, k, v, alpha=torch.ones(2, dtype=torch.float64))
