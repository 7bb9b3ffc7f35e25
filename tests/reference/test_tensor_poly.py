"""Polynomial-method tensor attention: factorisation, convergence, error bound, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attnlab.forms import get_form
from attnlab.reference import khatri_rao, tensor_attention
from attnlab.reference.tensor_poly import (
    monomial_features,
    poly_output_error_bound,
    taylor_coefficients,
    taylor_exp,
    taylor_multi_indices,
    taylor_relative_error_bound,
    tensor_attention_poly,
    tensor_poly_factors,
    tensor_poly_rank,
)


def _random_inputs(seed: int, n: int, m1: int, m2: int, d: int, d_v: int = 2, bound: float = 1.0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-bound, bound, (n, d)),
        rng.uniform(-bound, bound, (m1, d)),
        rng.uniform(-bound, bound, (m2, d)),
        rng.uniform(-bound, bound, (m1, d_v)),
        rng.uniform(-bound, bound, (m2, d_v)),
    )


def _logits(q, k1, k2, scale):
    return scale * np.einsum("il,jl,kl->ijk", q, k1, k2).reshape(q.shape[0], -1)


@st.composite
def bounded_problem(draw):
    """Shapes n, m1, m2 ≤ 6, d ≤ 4, entries in [−B, B] with B ≤ 1.5 (σ = 1/d ⇒ |logit| ≤ B³)."""
    n, m1, m2 = (draw(st.integers(1, 6)) for _ in range(3))
    d = draw(st.integers(1, 4))
    d_v = draw(st.integers(1, 3))
    bound = draw(st.floats(0.1, 1.5))
    unit = st.floats(-1.0, 1.0, allow_nan=False)

    def arr(rows: int, cols: int) -> np.ndarray:
        return bound * draw(hnp.arrays(np.float64, (rows, cols), elements=unit))

    return arr(n, d), arr(m1, d), arr(m2, d), arr(m1, d_v), arr(m2, d_v)


@given(bounded_problem())
def test_poly_converges_and_respects_the_output_bound(problem):
    q, k1, k2, v1, v2 = problem
    d = q.shape[-1]
    exact_weights = np.exp(_logits(q, k1, k2, 1.0 / d))
    reference = tensor_attention(q, k1, k2, v1, v2)
    radius = float(np.max(np.abs(_logits(q, k1, k2, 1.0 / d))))
    value_sup = float(np.max(np.abs(khatri_rao(v1, v2))))
    for degree in (2, 4, 8, 24):
        approx_weights = tensor_poly_factors(q, k1, k2, degree=degree).matrix()
        eps = float(np.max(np.abs(approx_weights / exact_weights - 1.0)))
        # 1e-13 covers float64 round-off in forming Ã/A when the Taylor bound is below it.
        assert eps <= taylor_relative_error_bound(radius, degree) * (1 + 1e-9) + 1e-13
        err = float(np.max(np.abs(tensor_attention_poly(q, k1, k2, v1, v2, degree=degree) - reference)))
        if eps < 1.0:
            assert err <= poly_output_error_bound(eps, value_sup) + 1e-14
    # Degree 24 at |logit| ≤ 3.375: Taylor bound ≈ 3e-11, so the operator has converged.
    assert err <= 1e-9 * max(1.0, value_sup)


@pytest.mark.parametrize(("d", "g"), [(1, 3), (2, 4), (3, 2), (4, 3)])
def test_factors_reproduce_the_taylor_matrix(d, g):
    q, k1, k2, _, _ = _random_inputs(1, 5, 4, 3, d)
    factors = tensor_poly_factors(q, k1, k2, degree=g, scale=0.8)
    assert factors.rank == math.comb(d + g, g) == tensor_poly_rank(d, g)
    assert factors.query_features.shape == (5, factors.rank)
    assert factors.key1_features.shape == (4, factors.rank)
    assert factors.key2_features.shape == (3, factors.rank)
    expected = taylor_exp(_logits(q, k1, k2, 0.8), g)
    np.testing.assert_allclose(factors.matrix(), expected, rtol=1e-13, atol=1e-14)


def test_rank_equals_monomial_count_when_n_exceeds_it():
    d, g = 3, 3
    r = tensor_poly_rank(d, g)
    q, k1, k2, _, _ = _random_inputs(2, r + 6, r + 2, r + 1, d)
    approx = tensor_poly_factors(q, k1, k2, degree=g, scale=1.0).matrix()
    assert np.linalg.matrix_rank(approx) == r


def test_multi_indices_and_monomials():
    alphas = taylor_multi_indices(3, 4)
    assert alphas.shape == (math.comb(7, 4), 3)
    assert len({tuple(a) for a in alphas}) == len(alphas)
    assert np.all(np.diff(alphas.sum(axis=1)) >= 0)  # graded: degree 0 first
    x = np.random.default_rng(3).standard_normal((2, 5, 3))
    direct = np.prod(x[..., None, :] ** alphas, axis=-1)
    np.testing.assert_allclose(monomial_features(x, 4), direct, rtol=1e-13)


def test_coefficients_are_multinomial():
    alphas = np.array([[0, 0], [1, 0], [2, 1], [3, 3]])
    expected = [1.0, 0.5, 0.5**3 / 2, 0.5**6 / 36]
    np.testing.assert_allclose(taylor_coefficients(alphas, 0.5), expected, rtol=1e-15)


def test_degree_zero_averages_all_pairs():
    q, k1, k2, v1, v2 = _random_inputs(4, 3, 5, 4, 2, d_v=3)
    out = tensor_attention_poly(q, k1, k2, v1, v2, degree=0)
    np.testing.assert_allclose(out, np.broadcast_to(v1.mean(0) * v2.mean(0), out.shape), rtol=1e-14)


def test_swap_symmetry_and_default_scale():
    q, k1, k2, v1, v2 = _random_inputs(5, 4, 3, 5, 3)
    out = tensor_attention_poly(q, k1, k2, v1, v2, degree=4)
    np.testing.assert_allclose(tensor_attention_poly(q, k2, k1, v2, v1, degree=4), out, rtol=1e-13)
    np.testing.assert_array_equal(tensor_attention_poly(q, k1, k2, v1, v2, degree=4, scale=1 / 3), out)


def test_batch_dims_broadcast_like_slices():
    rng = np.random.default_rng(6)
    q = rng.uniform(-1, 1, (2, 3, 4, 2))
    k1, v1 = rng.uniform(-1, 1, (3, 5, 2)), rng.uniform(-1, 1, (3, 5, 2))
    k2, v2 = rng.uniform(-1, 1, (1, 1, 6, 2)), rng.uniform(-1, 1, (1, 1, 6, 2))
    out = tensor_attention_poly(q, k1, k2, v1, v2, degree=6)
    assert out.shape == (2, 3, 4, 2)
    for b in range(2):
        for h in range(3):
            single = tensor_attention_poly(q[b, h], k1[h], k2[0, 0], v1[h], v2[0, 0], degree=6)
            np.testing.assert_allclose(out[b, h], single, rtol=1e-13)


def test_taylor_bound_dominates_the_true_error():
    for radius in (0.3, 1.0, 2.5):
        x = np.linspace(-radius, radius, 2001)
        for degree in (1, 3, 6, 9):
            actual = np.max(np.abs(taylor_exp(x, degree) * np.exp(-x) - 1.0))
            assert actual <= taylor_relative_error_bound(radius, degree)


def test_taylor_exp_evaluates_in_float64_whatever_the_input_dtype() -> None:
    x32 = np.array([0.3, -1.7, 2.2], dtype=np.float32)
    got = taylor_exp(x32, 12)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, taylor_exp(x32.astype(np.float64), 12))
    # the power sum term by term in float64; float32 Horner would be off by ~1e-7 relative
    power_sum = [math.fsum(float(x) ** t / math.factorial(t) for t in range(13)) for x in x32]
    np.testing.assert_allclose(got, power_sum, rtol=1e-14)
    assert taylor_exp([1, 2], 3).tolist() == [1 + 1 + 1 / 2 + 1 / 6, 1 + 2 + 2 + 8 / 6]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"degree": -1}, ValueError, "degree"),
        ({"degree": 2.0}, TypeError, "degree"),
        ({"degree": True}, TypeError, "degree"),
        ({"degree": 2, "scale": 0.0}, ValueError, "scale"),
    ],
)
def test_bad_options(kwargs, error, match):
    q, k1, k2, v1, v2 = _random_inputs(7, 3, 3, 3, 2)
    with pytest.raises(error, match=match):
        tensor_attention_poly(q, k1, k2, v1, v2, **kwargs)


def test_bad_arrays():
    q, k1, k2, v1, v2 = _random_inputs(8, 3, 4, 5, 2)
    with pytest.raises(ValueError, match="k1"):
        tensor_attention_poly(q, k1[:, :1], k2, v1, v2, degree=2)
    with pytest.raises(ValueError, match="k2/v2"):
        tensor_attention_poly(q, k1, k2, v1, v2[:4], degree=2)
    with pytest.raises(ValueError, match="v2"):
        tensor_attention_poly(q, k1, k2, v1, v2[:, :1], degree=2)
    with pytest.raises(TypeError, match="q"):
        tensor_attention_poly(q.astype(np.int64), k1, k2, v1, v2, degree=2)
    bad = k1.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="k1"):
        tensor_attention_poly(q, bad, k2, v1, v2, degree=2)
    with pytest.raises(ValueError, match="leading"):
        tensor_attention_poly(np.stack([q, q, q]), np.stack([k1, k1]), k2, v1, v2, degree=2)


def test_odd_degree_far_outside_its_range_is_rejected():
    # P_1(x) = 1 + x is negative for every logit here, so the normaliser is negative.
    q = np.full((2, 1), 10.0)
    k1, k2 = np.full((3, 1), -10.0), np.full((2, 1), 10.0)
    v1, v2 = np.ones((3, 1)), np.ones((2, 1))
    with pytest.raises(ValueError, match="normaliser"):
        tensor_attention_poly(q, k1, k2, v1, v2, degree=1, scale=1.0)
    # Even degrees are positive everywhere, so the same input is accepted.
    assert np.all(np.isfinite(tensor_attention_poly(q, k1, k2, v1, v2, degree=2, scale=1.0)))


def test_bound_helpers_validate():
    with pytest.raises(ValueError, match="epsilon"):
        poly_output_error_bound(1.0, 1.0)
    with pytest.raises(ValueError, match="radius"):
        taylor_relative_error_bound(-1.0, 2)
    with pytest.raises(ValueError, match="d"):
        taylor_multi_indices(0, 2)


def _exact_bad_inputs() -> list:
    # the non-causal bad inputs of the exact operator the polynomial method approximates (no causal option)
    bads = get_form("tensor").bad_inputs()
    return [pytest.param(bad, id=bad.label) for bad in bads if bad.kwargs.get("causal", False) is False]


@pytest.mark.parametrize("bad", _exact_bad_inputs())
def test_refuses_every_bad_input_of_the_exact_operator(bad) -> None:
    # the same message for the same mistake; inputs too large overflow in other intermediates (the monomials
    # of q, the key summaries) and are refused as such instead of returning a non-finite output
    kwargs = {key: value for key, value in bad.kwargs.items() if key != "causal"}
    with pytest.raises(bad.error) as exact:
        tensor_attention(*bad.args, **bad.kwargs)
    with pytest.raises(bad.error) as poly:
        tensor_attention_poly(*bad.args, **kwargs, degree=2)
    if "overflow" in bad.label:
        assert str(poly.value).startswith("q/k1/k2/v1/v2: the result is not finite in float64"), str(poly.value)
    else:
        assert str(poly.value) == str(exact.value)
