"""Tensor-attention claim family: recorded verdicts, planted bugs that flip them, helpers, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

import attnlab.theory.tensor as tensor_claims
from attnlab.proofs_checks import tensor as proofs
from attnlab.reference import tensor_poly
from attnlab.theory.registry import claims, run

TENSOR_CLAIMS = claims("tensor")


def test_family_has_the_planned_claims():
    ids = [c.id for c in TENSOR_CLAIMS]
    assert len(ids) >= 6 and len(set(ids)) == len(ids)
    assert all(c.family == "tensor" and c.id.startswith("tensor.") for c in TENSOR_CLAIMS)
    assert any(c.figure is not None for c in TENSOR_CLAIMS)


@pytest.mark.parametrize("claim", TENSOR_CLAIMS, ids=lambda c: c.id)
def test_quick_check_supports_the_recorded_verdict(claim):
    outcome = run(claim)
    assert outcome.result.verdict == claim.verdict, outcome.result.evidence
    assert outcome.result.evidence


# ---- planted bugs: each must flip its check away from the recorded verdict -------------------------


def _khatri_rao_wrong_order(a, b):
    """Rows ordered k·m1 + j instead of j·m2 + k."""
    return (b[..., :, None, :] * a[..., None, :, :]).reshape(*a.shape[:-2], -1, a.shape[-1])


def test_wrong_khatri_rao_row_order_is_caught(monkeypatch):
    monkeypatch.setattr(tensor_claims, "khatri_rao", _khatri_rao_wrong_order)
    assert tensor_claims.check_khatri_rao().verdict == "falsified"
    monkeypatch.setattr(proofs, "khatri_rao", _khatri_rao_wrong_order)
    assert proofs.check_khatri_rao_identity().verdict == "falsified"


def test_wrong_taylor_coefficients_are_caught(monkeypatch):
    # σ^{|α|}/|α|! drops the multinomial factor |α|!/α!.
    def total_degree_only(alphas, scale):
        total = np.asarray(alphas).sum(axis=-1)
        return np.array([scale**t / math.factorial(int(t)) for t in total])

    monkeypatch.setattr(tensor_poly, "taylor_coefficients", total_degree_only)
    assert tensor_claims.check_rank().verdict == "falsified"
    assert proofs.check_monomial_count().verdict == "falsified"


def test_too_tight_output_bound_is_caught(monkeypatch):
    monkeypatch.setattr(tensor_claims, "output_error_bound", lambda eps, sup: eps * sup / 100.0)
    assert tensor_claims.check_output_error_bound().verdict == "falsified"


def test_understated_taylor_bound_is_caught(monkeypatch):
    monkeypatch.setattr(
        tensor_poly, "taylor_relative_error_bound",
        lambda radius, degree: radius ** (degree + 1) * math.exp(-radius) / math.factorial(degree + 1),
    )
    assert proofs.check_taylor_remainder().verdict == "falsified"


def test_quadratic_step_in_the_polynomial_method_is_caught(monkeypatch):
    original = tensor_claims.poly_tensor_steps

    def with_pair_matrix(n, d, d_v, degree):
        sizes = {"i": n, "j": n, "k": n}
        return [*original(n, d, d_v, degree), ("materialise pairs", "jk->jk", sizes)]

    monkeypatch.setattr(tensor_claims, "poly_tensor_steps", with_pair_matrix)
    assert tensor_claims.check_poly_cost_counts().verdict == "falsified"


def test_fixed_degree_budget_breaks_the_phase_transition(monkeypatch):
    monkeypatch.setattr(tensor_claims, "max_degree_within_rank", lambda d, log_budget: 2)
    assert tensor_claims.check_phase_transition().verdict == "falsified"


def test_simplicial_without_kv_bias_is_caught(monkeypatch):
    reference = tensor_claims.simplicial_attention

    def ignores_bias(*args, kv_bias=False, **kwargs):
        return reference(*args, **kwargs)

    monkeypatch.setattr(tensor_claims, "simplicial_attention", ignores_bias)
    assert tensor_claims.check_simplicial().verdict == "falsified"


# ---- helpers behind the checks ---------------------------------------------------------------------


def test_contraction_counts():
    sizes = {"i": 5, "j": 6, "k": 7, "l": 3}
    assert tensor_claims.contraction_multiply_adds("il,jl,kl->ijk", sizes) == 2 * 5 * 6 * 7 * 3
    assert tensor_claims.contraction_multiply_adds("ijk->ijk", sizes) == 5 * 6 * 7
    naive = tensor_claims.total_multiply_adds(tensor_claims.naive_tensor_steps(8, 4, 2))
    assert naive == 2 * 8**3 * 4 + 8**3 + 8**3 * 2 + 8**2 * 2
    crossover = tensor_claims.op_count_crossover()
    steps = tensor_claims.naive_tensor_steps, tensor_claims.poly_tensor_steps
    d, d_v, g = tensor_claims.COST_D, tensor_claims.COST_DV, tensor_claims.COST_DEGREE
    assert tensor_claims.total_multiply_adds(steps[0](crossover, d, d_v)) > tensor_claims.total_multiply_adds(
        steps[1](crossover, d, d_v, g)
    )


@pytest.mark.parametrize("log2_n", [6, 12, 64, 4096])
def test_largest_radius_meets_error_target_at_the_rank_budget(log2_n):
    degree, log_radius = tensor_claims.largest_logit_radius(log2_n)
    radius = math.exp(log_radius)
    ln_n = log2_n * math.log(2.0)
    assert tensor_claims.log_rank(log2_n, degree) <= 0.5 * ln_n < tensor_claims.log_rank(log2_n, degree + 1)
    assert math.isclose(tensor_claims.log_taylor_bound(radius, degree), -2.0 * ln_n, rel_tol=1e-9)


def test_realised_point_meets_its_targets():
    point = tensor_claims._realise_phase_point(6, np.random.default_rng(0))
    assert point["eps_measured"] <= point["eps_target"]
    assert point["rank"] == math.comb(int(point["d"] + point["degree"]), int(point["degree"]))
    assert point["rank"] <= point["rank_budget"]


@pytest.mark.slow
def test_phase_transition_figure(tmp_path):
    written = tensor_claims.phase_transition_figure(tmp_path)
    assert {p.suffix for p in written} == {".png", ".svg", ".json"}
    assert all(p.stat().st_size > 0 for p in written)


@pytest.mark.slow
def test_runtime_figure(tmp_path):
    written = tensor_claims.runtime_figure(tmp_path)
    assert {p.suffix for p in written} == {".png", ".svg", ".json"}
