"""CMHA-specific checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from attnlab.core import Shape
from attnlab.fastpath.torch.cmha import cmha_attention as torch_cmha
from attnlab.forms.cmha import rope_half, sample
from attnlab.reference.cmha import check_cmha_angles, check_cmha_options, cmha_attention
from attnlab.reference.softmax import softmax_attention


def test_rope_reduction_at_length_600() -> None:
    s = sample(2, Shape(batch=1, heads=2, kv_heads=2, n=600, d=16, d_v=4, causal=True))
    q, k, v = s.args
    positions = np.arange(600)
    want = softmax_attention(rope_half(q, positions, 1e4), rope_half(k, positions, 1e4), v, scale=1.0, causal=True)
    np.testing.assert_allclose(cmha_attention(q, k, v, causal=True, eps=0.0), want, rtol=0, atol=1e-10)


def test_torch_float32_keeps_the_phase_at_length_600() -> None:
    # float32 features lost n·6e-8 rad of absolute phase: 2.2e-4 output error at n = 512, d = 64; the float64
    # torch path (held to the reference by the parity tests) is the yardstick here
    s = sample(
        4, Shape(batch=1, heads=2, kv_heads=2, n=600, d=64, d_v=8, causal=True, options=(("adaptive", "per_head"),))
    )
    got32, got64 = (
        torch_cmha(*(torch.from_numpy(a).to(dtype) for a in s.args), **s.kwargs)
        for dtype in (torch.float32, torch.float64)
    )
    assert float((got32.double() - got64).abs().max()) < 4e-5  # 1.6e-5 now; 1.3e-4 with float32 features


def test_fewer_queries_read_the_last_positions() -> None:
    # queries sit at i + m − n: the last rows of self-attention are a decode step against the full cache
    s = sample(5, Shape(batch=1, heads=2, kv_heads=2, n=9, d=8, d_v=3, causal=True, options=(("adaptive", "shared"),)))
    q, k, v = s.args
    full = cmha_attention(q, k, v, **{**s.kwargs, "causal": True})
    tail = cmha_attention(q[..., -3:, :], k, v, **{**s.kwargs, "causal": True})
    np.testing.assert_allclose(tail, full[..., -3:, :], rtol=0, atol=1e-12)


def _phases_refused(delta: float, beta: float, base: float, d: int, span: int) -> bool:
    try:
        check_cmha_angles(np.array([delta]), np.array([beta]), base, d, span)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize(
    ("term", "delta", "beta", "base", "d"),
    [
        ("2π|δ| = 2^19", 2.0**18 / math.pi, 0.0, 1e4, 4),
        ("|β| = 2^19", 0.0, 2.0**19, 1e4, 4),
        # base < 1: the top frequency base^(−(d−2)/d) is 2 at base = 1/4, d = 4, so (n + m)·2 = 2^20 at 2^19
        ("(n + m)·base^(−1/2) = 2^20", 0.0, 0.0, 0.25, 4),
        # d = 2 has one frequency, base^0 = 1, whatever the base
        ("(n + m)·1 at d = 2, next to 2^19", 0.0, 2.0**19, 0.25, 2),
    ],
)
def test_phase_bound_adds_every_term_and_is_strict(term, delta, beta, base, d) -> None:
    # |β| + 2π|δ| + (n + m)·max_t g_t against 2^20: refused when it reaches 2^20, accepted one below
    span = 2**19
    assert _phases_refused(delta, beta, base, d, span), term
    assert not _phases_refused(delta, beta, base, d, span - 1), term


def test_phase_bound_reports_a_finite_size_for_an_overflowing_frequency() -> None:
    # base = 5e-324 at d = 1000: log max_t g_t = (998/1000)·744.4 > 709; the bound caps the exponent at 700
    with pytest.raises(ValueError, match=re.escape(f"phases up to {math.exp(700.0):.3g}")):
        check_cmha_angles(np.zeros(1), np.zeros(1), 5e-324, 1000, 1)


def test_default_parameters_come_in_the_inputs_dtype() -> None:
    # δ = 1 and β = 0 built for a float32 call are float32, so a float32 path computes its angles in float32
    q32 = np.ones((1, 2, 3, 4), dtype=np.float32)
    delta, beta, base, _ = check_cmha_options(q32, None, None, None, 0.0)
    assert delta.dtype == beta.dtype == np.float32 and base == 10000.0


def test_two_dimensional_inputs_take_shared_parameters_only() -> None:
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((5, 4)) for _ in range(3))
    delta = np.array([0.5, 2.0])
    np.testing.assert_allclose(
        cmha_attention(q, k, v, delta=delta), cmha_attention(q[None], k[None], v[None], delta=delta)[0], rtol=1e-13
    )
    with pytest.raises(ValueError, match=re.escape("delta: expected shape (2,) shared by every head, got (1, 2)")):
        cmha_attention(q, k, v, delta=delta[None])


def test_base_none_is_the_default_base() -> None:
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal((1, 2, 5, 4)) for _ in range(3))
    np.testing.assert_array_equal(cmha_attention(q, k, v, base=None), cmha_attention(q, k, v, base=10000.0))
