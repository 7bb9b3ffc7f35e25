"""Local Linear Attention: the λ conventions, the pseudo-inverse limit and resuming the stream."""

from __future__ import annotations

import numpy as np
import pytest

import attnlab.reference.lla as lla_module
from attnlab.forms import get_form
from attnlab.forms.lla import brute_force as lla_brute_force
from attnlab.reference._core import masked_logsumexp
from attnlab.reference.lla import lla_attention, lla_attention_blocked
from attnlab.testing.parity import Implementation, assert_forward
from attnlab.testing.samples import fixed_samples
from attnlab.validation import reference_precision


def test_objective_convention_is_the_normalised_one_with_a_per_query_ridge() -> None:
    """The objective as written penalises un-normalised weights: λ'_i = 2λ / Σ_j exp(σ q_i·k_j)."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((4, 3)), rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    lam = 1.7
    objective = lla_attention(q, k, v, lam=lam, lam_convention="objective")
    lse = masked_logsumexp(3**-0.5 * q @ k.T, np.ones((4, 10), bool))
    for i in range(4):
        row = lla_attention(q[i : i + 1], k, v, lam=float(2 * lam * np.exp(-lse[i])))
        np.testing.assert_allclose(objective[i], row[0], atol=1e-12)


def test_zero_ridge_is_the_limit_of_small_ridges_where_the_keys_do_not_span() -> None:
    """Four keys in R⁵ leave Σ singular; the λ' → 0⁺ limit exists (C's rows lie in Σ's range) and λ = 0 is it."""
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal((4, 2))
    limit = lla_attention(q, k, v, lam=0.0)
    for lam, tol in ((1e-4, 1e-2), (1e-7, 1e-5)):
        assert np.max(np.abs(lla_attention(q, k, v, lam=lam) - limit)) < tol


def test_streaming_resumes_across_three_calls() -> None:
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((2, 16, 4)), rng.standard_normal((2, 64, 4)), rng.standard_normal((2, 64, 3))
    full = lla_attention(q, k, v, causal=True)
    visible = np.tril(np.ones((16, 64), bool), k=48)
    state = None
    for start, stop in ((0, 20), (20, 21), (21, 64)):
        out, state = lla_attention_blocked(
            q,
            k[:, start:stop],
            v[:, start:stop],
            mask=visible[:, start:stop],
            block_size=7,
            initial_state=state,
            return_state=True,
        )
    np.testing.assert_allclose(out, full, atol=1e-11)


def test_torch_path_matches_the_reference_in_float64_without_a_ridge() -> None:
    """The options parity leaves to float64: lam = 0 (the pseudo-inverse limit) and the objective convention."""
    form = get_form("lla")
    path = Implementation.of(form.fast_path("torch"))
    samples = [s for s in fixed_samples(form) if not form.fast_path("torch").supports(s)]
    assert len(samples) >= 3
    for sample in samples:
        assert_forward(form, path, sample, "float64")


def test_the_streamed_form_matches_the_parallel_one_under_the_objective_convention() -> None:
    """λ'_i = 2λ / Σ_j w_ij needs the streamed log-sum-exp (running max + log of the rescaled total); a
    query with no visible key still returns zeros."""
    rng = np.random.default_rng(6)
    q, k, v = 2 * rng.standard_normal((2, 7, 3)), 2 * rng.standard_normal((2, 11, 3)), rng.standard_normal((2, 11, 2))
    mask = rng.random((2, 7, 11)) < 0.7
    mask[0, 3] = False
    options = {"lam": 0.8, "lam_convention": "objective", "mask": mask}
    blocked = lla_attention_blocked(q, k, v, block_size=4, **options)
    np.testing.assert_allclose(blocked, lla_attention(q, k, v, **options), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(blocked[0, 3], 0.0)


def test_the_streamed_form_computes_in_the_reference_precision() -> None:
    """Under ``reference_precision(float32)`` every moment of the stream is float32, so is the output."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for shape in ((2, 5, 3), (2, 9, 3), (2, 9, 2)))
    with reference_precision(np.float32):
        out, state = lla_attention_blocked(q, k, v, block_size=4, return_state=True)
    assert out.dtype == np.float32
    assert {np.asarray(part).dtype for part in state} == {np.dtype(np.float32)}


def test_a_bad_block_size_is_named() -> None:
    q = np.ones((3, 2))
    for size, error in ((0, ValueError), (2.5, TypeError)):
        try:
            lla_attention_blocked(q, q, q, block_size=size)
        except error as caught:
            assert str(caught).startswith("block_size: ")
        else:
            raise AssertionError(f"block_size={size!r} was accepted")


@pytest.mark.parametrize("lam", [3.0, 30.0])
def test_a_ridge_above_the_local_spread_matches_the_normal_equations(lam) -> None:
    # keys of spread ~0.1 make tr Σ far below d·λ: the ridge dominates each system, and the correction must
    # still be the ridge solution of the normal equations, not dropped
    rng = np.random.default_rng(17)
    q, k, v = (
        rng.standard_normal((1, 2, 5, 3)),
        0.1 * rng.standard_normal((1, 2, 7, 3)),
        rng.standard_normal((1, 2, 7, 2)),
    )
    np.testing.assert_allclose(
        lla_attention(q, k, v, lam=lam), lla_brute_force(q, k, v, lam=lam), rtol=1e-10, atol=1e-12
    )


def test_query_chunks_do_not_change_the_moments(monkeypatch) -> None:
    # the local moments are computed a few query rows at a time: chunks of one row give the same output
    rng = np.random.default_rng(18)
    q = rng.standard_normal((1, 2, 9, 3))
    k, v = rng.standard_normal((1, 2, 11, 3)), rng.standard_normal((1, 2, 11, 2))
    whole = lla_attention(q, k, v)
    monkeypatch.setattr(lla_module, "CHUNK_ELEMENTS", 2 * 11 * 3 * 2)  # two query rows per chunk
    np.testing.assert_array_equal(lla_attention(q, k, v), whole)
