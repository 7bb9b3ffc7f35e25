"""Aaren specifics: its combine is the lse merge of partial attention, the torch path resumes, and the
paper's claims hold while their mutants are caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.fastpath.torch.aaren import aaren_attention as torch_aaren
from attnlab.reference.aaren import aaren_attention, aaren_combine
from attnlab.reference.softmax import merge_partial_attention
from attnlab.theory import claims
from attnlab.validation import reference_precision


def test_combine_is_the_lse_merge_of_normalised_partials() -> None:
    rng = np.random.default_rng(0)
    a = (rng.normal(size=5) * 20, rng.uniform(0.5, 2, 5), rng.normal(size=(5, 3)))
    b = (rng.normal(size=5) * 20, rng.uniform(0.5, 2, 5), rng.normal(size=(5, 3)))
    mu, ell, acc = aaren_combine(a, b)

    def normalised(x):
        return x[2] / x[1][:, None], x[0] + np.log(x[1])

    merged, lse = merge_partial_attention(*normalised(a), *normalised(b))
    np.testing.assert_allclose(acc / ell[:, None], merged, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(mu + np.log(ell), lse, rtol=1e-13)


def test_torch_path_resumes_from_its_state() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (torch.from_numpy(rng.standard_normal(s)) for s in ((2, 3, 1, 4), (2, 3, 11, 4), (2, 3, 11, 2)))
    whole = torch_aaren(q, k, v)
    first, state = torch_aaren(q, k[..., :5, :], v[..., :5, :], return_state=True)
    rest = torch_aaren(q, k[..., 5:, :], v[..., 5:, :], initial_state=state)
    torch.testing.assert_close(torch.cat([first, rest], dim=-2), whole, rtol=1e-12, atol=1e-12)
    _, ref_state = aaren_attention(q.numpy(), k[..., :5, :].numpy(), v[..., :5, :].numpy(), return_state=True)
    for mine, theirs in zip(state, ref_state):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-12)


CLAIMS = claims("aaren")


def test_family_has_its_claims() -> None:
    assert {c.id for c in CLAIMS} == {"aaren.scan.prefix_attention", "aaren.recurrent.constant_memory"}


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_holds_and_its_mutants_are_caught(claim) -> None:
    result = claim.quick()
    assert result.verdict == claim.verdict, result.evidence
    for mutant in claim.mutants:
        assert claim.quick(**mutant.overrides).verdict != claim.verdict, f"mutant {mutant.name} survived"


@pytest.mark.parametrize("form", ["scan", "recurrent", "parallel"])
def test_outputs_and_state_keep_the_reference_precision(form: str) -> None:
    from attnlab.validation import reference_precision

    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(2, 1, 4)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 3))
    with reference_precision(np.float32):
        out, state = aaren_attention(*(x.astype(np.float32) for x in (q, k, v)), form=form, return_state=True)
    assert out.dtype == np.float32
    assert [part.dtype for part in state] == [np.float32] * 3
    np.testing.assert_allclose(out, aaren_attention(q, k, v, form=form), atol=1e-5)


def _qkv(seed: int, lead: tuple[int, ...], m: int = 6) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((*lead, 1, 4)), rng.standard_normal((*lead, m, 4)), rng.standard_normal((*lead, m, 3))


@pytest.mark.parametrize("form", ["scan", "parallel", "recurrent"])
def test_two_dimensional_call_resumes_from_its_state(form) -> None:
    # without batch or head axes the state is a 0-d max and sum and a (d_v,) accumulator
    q, k, v = _qkv(1, ())
    whole = aaren_attention(q, k, v, form=form)
    head, state = aaren_attention(q, k[:2], v[:2], form=form, return_state=True)
    assert state[0].shape == state[1].shape == () and state[2].shape == (3,)
    tail = aaren_attention(q, k[2:], v[2:], form=form, initial_state=state)
    np.testing.assert_allclose(np.concatenate([head, tail], -2), whole, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", ["scan", "parallel", "recurrent"])
def test_the_empty_prefix_state_is_the_identity(form) -> None:
    # (-inf, 0, 0) is the state of no keys: resuming from it is starting afresh
    q, k, v = _qkv(2, (2,))
    empty = (np.full(2, -np.inf), np.zeros(2), np.zeros((2, 3)))
    np.testing.assert_allclose(
        aaren_attention(q, k, v, form=form, initial_state=empty), aaren_attention(q, k, v, form=form), rtol=1e-14
    )


def test_a_resumed_call_computes_in_the_reference_precision() -> None:
    # the oracle's float32 rerun of the same math: a state given in float64 is cast to float32 with the rest
    q, k, v = _qkv(3, (2,))
    _, state = aaren_attention(q, k[..., :3, :], v[..., :3, :], return_state=True)
    with reference_precision(np.float32):
        out, final = aaren_attention(q, k[..., 3:, :], v[..., 3:, :], initial_state=state, return_state=True)
    assert out.dtype == np.float32 and all(part.dtype == np.float32 for part in final)
