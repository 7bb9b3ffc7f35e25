"""Flow-Attention: the released code's ε and clamp against the paper's equations, and long sequences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import attnlab.reference.flow as flow_module
from attnlab.reference.flow import FORMS, FlowParts, flow_attention, flow_parts
from attnlab.validation import reference_precision


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


def _features(x: np.ndarray) -> np.ndarray:
    return np.asarray(expit(x))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("form", FORMS)
def test_reference_precision_runs_the_same_math_in_float32(causal: bool, form: str) -> None:
    """Inside ``reference_precision(float32)`` (the benchmark's NumPy row) every flow and the output stay float32."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 6, 3)) for _ in range(3))
    kw = {"causal": causal, "form": form, "eps": 1e-3, "clamp": 1.0}
    with reference_precision(np.float32):
        single = [a.astype(np.float32) for a in (q, k, v)]
        out = flow_attention(*single, **kw)
        parts = flow_parts(*single[:2], **kw)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, flow_attention(q, k, v, **kw), atol=1e-5)
    for name, part, exact in zip(FlowParts._fields, parts, flow_parts(q, k, **kw)):
        assert part.dtype == np.float32, name
        np.testing.assert_allclose(part, exact, rtol=1e-5, err_msg=name)


def test_each_head_competes_alone_even_at_hundreds_of_nats() -> None:
    """The competition is a softmax over one head's sources: shifting by that head's own peak keeps it finite when
    Ô reaches ~n on a long sequence with one dominant source, next to a head whose Ô is 1 everywhere."""
    rng = np.random.default_rng(5)
    n = 1000
    q = rng.standard_normal((2, n, 2))
    k = np.full((2, n, 2), -20.0)
    k[0, 0] = 20.0  # head 0: one source carries all the key features, Ô_0 ≈ n
    k[1] = 0.0  # head 1: identical sources, Ô_j = n/m = 1
    parts = flow_parts(q, k)
    assert parts.conserved_source[0].max() > 900.0
    np.testing.assert_allclose(parts.competition.sum(-1), [n, n], rtol=1e-12)
    np.testing.assert_allclose(parts.competition[0, 0], n, rtol=1e-6)  # the dominant source takes all
    np.testing.assert_allclose(parts.competition[1], np.ones(n), rtol=1e-12)
    out = flow_attention(q, k, rng.standard_normal((2, n, 3)))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "options", [{}, {"causal": True}, {"eps": 0.1, "clamp": 0.3}, {"causal": True, "eps": 1e-6, "clamp": 1.0}]
)
def test_flow_parts_are_the_quantities_the_operator_uses(options: dict) -> None:
    """``o = a ⊙ (φ(Q)φ(K)ᵀ (c ⊙ V)) / I`` (prefix-masked and divided by t + 1 when causal) from the parts
    ``flow_parts`` returns for the same options, the defaults included (non-causal, ε = 0, no clamp)."""
    rng = np.random.default_rng(6)
    causal = options.get("causal", False)
    n, m = 5, 5 if causal else 7
    q, k, v = rng.standard_normal((2, n, 3)), rng.standard_normal((2, m, 3)), rng.standard_normal((2, m, 2))
    parts = flow_parts(q, k, **options)
    weights = _features(q) @ np.swapaxes(_features(k), -1, -2)
    if causal:
        weights = np.tril(weights) / np.arange(1, n + 1)[:, None]
    want = parts.allocation[..., None] * (weights @ (parts.competition[..., None] * v)) / parts.incoming[..., None]
    np.testing.assert_allclose(flow_attention(q, k, v, **options), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", FORMS)
def test_each_form_runs_its_own_evaluation(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``linear_equals_quadratic`` compares two evaluations only if ``form`` picks one: the other is never called."""
    other = {"linear_time": "quadratic_flows", "quadratic": "linear_flows"}[form]

    def refuse(*args: object) -> None:
        raise AssertionError(f"form={form!r} ran {other}")

    monkeypatch.setattr(flow_module, other, refuse)
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    for causal in (False, True):
        flow_parts(q, k, causal=causal, form=form)
        flow_attention(q, k, v, causal=causal, form=form)
    if form == "linear_time":
        flow_parts(q, k)
        flow_attention(q, k, v)


def test_flow_parts_rejects_an_unknown_form_by_name() -> None:
    q = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match=r"^form: expected one of \('linear_time', 'quadratic'\), got 'chunked'$"):
        flow_parts(q, q, form="chunked")


def test_flows_that_underflow_to_zero_are_reported_by_name() -> None:
    """At |q|, |k| ~ 1e150 of opposite signs the sigmoid features of the keys underflow to 0, so the outgoing
    flow is 0 and its ratio divides by zero: the call names its arguments instead of warning or returning inf."""
    q = np.array([-0.7, -1.3]).reshape(1, 2, 1, 1) * 1e150
    k, v = np.full((1, 1, 1, 1), 0.9e150), np.full((1, 1, 1, 1), -1e150)
    with pytest.raises(ValueError, match=r"^q/k/v: .*float64"):
        flow_attention(q, k, v, allocation=False, competition=False)
