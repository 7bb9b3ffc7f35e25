"""Tensor-attention claim family: recorded verdicts, planted bugs that flip them, helpers, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

import attnlab.theory.tensor as tensor_claims
from attnlab.proofs_checks import tensor as proofs
from attnlab.reference import tensor_poly
from attnlab.reference.tensor import tensor_attention
from attnlab.theory.opcount import count_operations
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


def test_wrong_khatri_rao_row_order_is_caught():
    assert tensor_claims.check_khatri_rao(khatri_rao=_khatri_rao_wrong_order).verdict == "falsified"
    assert proofs.check_khatri_rao_identity(khatri_rao=_khatri_rao_wrong_order).verdict == "falsified"


def test_wrong_taylor_coefficients_are_caught(monkeypatch):
    # σ^{|α|}/|α|! drops the multinomial factor |α|!/α!.
    def total_degree_only(alphas, scale):
        total = np.asarray(alphas).sum(axis=-1)
        return np.array([scale**t / math.factorial(int(t)) for t in total])

    monkeypatch.setattr(tensor_poly, "taylor_coefficients", total_degree_only)
    assert tensor_claims.check_rank().verdict == "falsified"
    assert proofs.check_monomial_count().verdict == "falsified"


def test_too_tight_output_bound_is_caught():
    assert tensor_claims.check_output_error_bound(bound=lambda eps, sup: eps * sup / 100.0).verdict == "falsified"


def test_understated_taylor_bound_is_caught():
    def understated(radius, degree):
        return radius ** (degree + 1) * math.exp(-radius) / math.factorial(degree + 1)

    assert proofs.check_taylor_remainder(bound=understated).verdict == "falsified"


def test_quadratic_step_in_the_polynomial_method_is_caught():
    # A polynomial method that forms an n × m matrix of pair features per query: quadratic work.
    def with_pair_scores(q, k1, k2, v1, v2, *, degree, scale=None):
        features = tensor_poly.tensor_poly_factors(q, k1, k2, degree=degree, scale=scale)
        scores = features.query_features @ np.swapaxes(features.key1_features, -1, -2)  # (n, m1)
        out = tensor_poly.tensor_attention_poly(q, k1, k2, v1, v2, degree=degree, scale=scale)
        return out + 0.0 * scores.sum(axis=-1, keepdims=True)

    assert tensor_claims.check_poly_cost_counts(operator=with_pair_scores).verdict == "falsified"


def test_fixed_degree_budget_breaks_the_phase_transition():
    assert tensor_claims.check_phase_transition(degree_budget=lambda d, log_budget: 2).verdict == "falsified"


def test_simplicial_without_kv_bias_is_caught():
    def ignores_bias(*args, kv_bias=False, **kwargs):
        return tensor_claims.simplicial_attention(*args, **kwargs)

    assert tensor_claims.check_simplicial(operator=ignores_bias).verdict == "falsified"


# ---- helpers behind the checks ---------------------------------------------------------------------


def test_executed_operation_counts():
    # The hard-coded contraction list is gone: counts come from running the operator. The naive
    # operator's products at n = 8, d = 4, d_v = 2 are exactly its three einsums.
    rng = np.random.default_rng(0)
    q, k1, k2 = (rng.standard_normal((8, 4)) for _ in range(3))
    v1, v2 = rng.standard_normal((8, 2)), rng.standard_normal((8, 2))
    out, tally = count_operations(tensor_attention, q, k1, k2, v1, v2)
    np.testing.assert_array_equal(out, tensor_attention(q, k1, k2, v1, v2))
    assert tally.products == 2 * 8**3 * 4 + 8**3 * 2 + 8**2 * 2
    assert tally.elementwise >= 8**3  # exp over every pair logit at least
    crossover = tensor_claims.op_count_crossover()
    assert tensor_claims.executed_operations(tensor_attention, crossover) > tensor_claims.executed_operations(
        tensor_poly.tensor_attention_poly, crossover, degree=tensor_claims.COST_DEGREE
    )
    assert tensor_claims.executed_operations(tensor_attention, crossover - 1) <= tensor_claims.executed_operations(
        tensor_poly.tensor_attention_poly, crossover - 1, degree=tensor_claims.COST_DEGREE
    )


@pytest.mark.parametrize("log2_n", [6, 12, 64, 4096])
def test_largest_radius_meets_error_target_at_the_rank_budget(log2_n):
    degree, log_radius = tensor_claims.largest_logit_radius(log2_n)
    radius = math.exp(log_radius)
    ln_n = log2_n * math.log(2.0)
    assert tensor_claims.log_rank(log2_n, degree) <= 0.5 * ln_n < tensor_claims.log_rank(log2_n, degree + 1)
    assert math.isclose(tensor_claims.log_taylor_bound(radius, degree), -2.0 * ln_n, rel_tol=1e-9)


def test_realised_point_meets_its_targets():
    point = tensor_claims._realise_phase_point(6, np.random.default_rng(0), tensor_poly.tensor_poly_factors)
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
