"""Sinkhorn specifics: explicit marginals are met at convergence, and the transport-limit claim holds
while its mutants are caught."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import attnlab.reference.sinkhorn as sinkhorn_module
from attnlab.fastpath.torch.sinkhorn import sinkhorn_attention as torch_sinkhorn
from attnlab.reference.sinkhorn import LOGIT_SPACING, MAX_ITERATIONS, check_logit_resolution, sinkhorn_attention
from attnlab.theory import claims


def test_explicit_marginals_are_met_at_convergence() -> None:
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
    r, c = rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 7)
    weights = sinkhorn_attention(q, k, np.eye(7), row_marginal=r, col_marginal=c, iterations=5000, tol=1e-13)
    plan = weights * (r / r.sum())[:, None]  # A = diag(r)^{-1} P
    np.testing.assert_allclose(plan.sum(axis=1), r / r.sum(), rtol=1e-10)
    np.testing.assert_allclose(plan.sum(axis=0), c / c.sum(), atol=1e-12)


def test_early_stop_matches_a_long_run() -> None:
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    stopped = sinkhorn_attention(q, k, v, iterations=10_000, tol=1e-14)
    long = sinkhorn_attention(q, k, v, iterations=3000)
    np.testing.assert_allclose(stopped, long, atol=1e-12)


CLAIMS = claims("sinkhorn")


def test_family_has_its_claims() -> None:
    assert {c.id for c in CLAIMS} == {"sinkhorn.transport.epsilon_limit"}


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_holds_and_its_mutants_are_caught(claim) -> None:
    result = claim.quick()
    assert result.verdict == claim.verdict, result.evidence
    for mutant in claim.mutants:
        assert claim.quick(**mutant.overrides).verdict != claim.verdict, f"mutant {mutant.name} survived"


def test_logit_resolution_limit_is_the_dtypes_spacing_and_strict() -> None:
    # logits are refused once their float spacing would exceed 2^-4: from 2^-4 / eps(dtype) on, not before
    for dtype in (np.float32, np.float64):
        limit = LOGIT_SPACING / float(np.finfo(dtype).eps)
        check_logit_resolution(float(np.nextafter(limit, 0.0)), dtype)
        with pytest.raises(
            ValueError, match=re.escape(f"beyond {limit:.3g}, the largest whose {np.dtype(dtype).name} spacing")
        ):
            check_logit_resolution(limit, dtype)


def test_torch_float32_path_refuses_logits_its_dtype_cannot_resolve() -> None:
    # 2^-4 / eps(float32) = 5.2e5: logits ~1e7 are fine in float64 but decided by float32 rounding
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 1, 4, 4)) for _ in range(3))
    q, k = q * 1e4 / np.abs(q).max(), k * 1e4 / np.abs(k).max()
    sinkhorn_attention(q, k, v)  # float64 resolves them
    with pytest.raises(ValueError, match=r"float32 spacing"):
        torch_sinkhorn(*(torch.from_numpy(x).float() for x in (q, k, v)))


def _sweeps(monkeypatch, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` and the number of Sinkhorn sweeps (column steps) it ran."""
    calls = []
    counted = sinkhorn_module.column_step

    def counting(*step_args):
        calls.append(1)
        return counted(*step_args)

    monkeypatch.setattr(sinkhorn_module, "column_step", counting)
    try:
        return fn(*args, **kwargs), len(calls)
    finally:
        monkeypatch.undo()


def test_tolerance_stops_at_the_first_sweep_whose_column_gap_is_within_it(monkeypatch) -> None:
    # the loop stops after the first sweep T with max_j |Σ_i P_ij − c_j| <= tol: T is well below the budget,
    # the result is that of exactly T sweeps, and T − 1 sweeps still leave a larger gap
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 5)) * 2.0
    log_r, log_c = np.full(6, -np.log(6)), np.full(5, -np.log(5))
    (f, g), used = _sweeps(monkeypatch, sinkhorn_module.sinkhorn_potentials, logits, log_r, log_c, 5000, 1e-12)
    assert 1 < used < 1000, used
    exact = sinkhorn_module.sinkhorn_potentials(logits, log_r, log_c, used, 0.0)
    np.testing.assert_array_equal(f, exact[0])
    np.testing.assert_array_equal(g, exact[1])

    def gap(potentials):
        fp, gp = potentials
        return np.max(np.abs(np.exp(logits + fp[:, None] + gp[None, :]).sum(0) - np.exp(log_c)))

    assert gap((f, g)) <= 1e-12 < gap(sinkhorn_module.sinkhorn_potentials(logits, log_r, log_c, used - 1, 0.0))


@pytest.mark.parametrize("marginals", ["uniform", "unnormalised", "batched-unnormalised", "masked-column"])
def test_the_tolerance_stops_early_whatever_the_marginals(monkeypatch, marginals) -> None:
    # the stop compares column sums with the normalised column marginal, over supported columns only: given
    # uniform or unnormalised (×7) marginals a converging call stops long before its budget; with a key no
    # query sees the marginals cannot both be met (its mass has nowhere to go), and a loose tol (0.15, below
    # the unseen key's share 0.2) must still stop, judging only the columns that have support
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((6, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    options: dict = {}
    if marginals == "unnormalised":
        options = {"row_marginal": 7.0 * rng.uniform(0.5, 2.0, 6), "col_marginal": 7.0 * rng.uniform(0.5, 2.0, 5)}
    if marginals == "batched-unnormalised":  # each batch row normalised on its own (×7 and ×0.1)
        q, k, v = (np.stack([x, 2.0 * x]) for x in (q, k, v))
        scales = np.array([[7.0], [0.1]])
        options = {
            "row_marginal": scales * rng.uniform(0.5, 2.0, (2, 6)),
            "col_marginal": scales * rng.uniform(0.5, 2.0, (2, 5)),
        }
    if marginals == "masked-column":
        mask = np.ones((6, 5), dtype=bool)
        mask[:, 2] = False
        options = {"mask": mask}
    tol = 0.15 if marginals == "masked-column" else 1e-12
    out, used = _sweeps(monkeypatch, sinkhorn_attention, q, k, v, iterations=5000, tol=tol, **options)
    assert used < 1000, used
    np.testing.assert_allclose(out, sinkhorn_attention(q, k, v, iterations=used, **options), rtol=0, atol=0)


def test_the_iteration_budget_is_inclusive() -> None:
    assert sinkhorn_module._check_count("iterations", MAX_ITERATIONS) == MAX_ITERATIONS
