"""Tests generated from the operator registry: invariants under hypothesis, and bad inputs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from attnlab.registry import VERIFY_SHAPES, forms

FORMS = forms()
INVARIANT_CASES = [pytest.param(info, inv, id=f"{info.name}-{inv.name}") for info in FORMS for inv in info.invariants]
BAD_CASES = [pytest.param(info, bad, id=f"{info.name}-{bad.label}") for info in FORMS for bad in info.bad_inputs()]


def test_nine_core_forms_are_registered() -> None:
    names = [info.name for info in FORMS]
    assert names == [
        "softmax",
        "linear",
        "laser",
        "tensor",
        "simplicial",
        "differential",
        "hamming",
        "mla",
        "interaction",
    ]


@pytest.mark.parametrize(("info", "invariant"), INVARIANT_CASES)
def test_invariant_on_fixed_shapes(info, invariant) -> None:
    for seed, shape in enumerate(VERIFY_SHAPES):
        invariant.check(info.make_sample(seed, shape))


@pytest.mark.parametrize(("info", "invariant"), INVARIANT_CASES)
def test_invariant_hypothesis(info, invariant) -> None:
    @settings(max_examples=10 if info.name in ("tensor", "simplicial", "mla") else 15)
    @given(info.samples())
    def check(sample) -> None:
        invariant.check(sample)

    check()


@pytest.mark.parametrize("info", FORMS, ids=[f.name for f in FORMS])
def test_at_least_ten_bad_input_cases(info) -> None:
    assert len(info.bad_inputs()) >= 10


@pytest.mark.parametrize(("info", "bad"), BAD_CASES)
def test_bad_input_is_rejected_with_a_named_argument(info, bad) -> None:
    with pytest.raises(bad.error) as caught:
        info.reference(*bad.args, **bad.kwargs)
    assert re.search(bad.match, str(caught.value)), f"message {str(caught.value)!r} does not match {bad.match!r}"


@pytest.mark.parametrize("info", FORMS, ids=[f.name for f in FORMS])
def test_reference_is_deterministic_and_float64(info) -> None:
    sample = info.make_sample(123, VERIFY_SHAPES[1])
    first, second = sample.call(info.reference), sample.call(info.reference)
    assert first.dtype.name == "float64"
    assert (first == second).all()
