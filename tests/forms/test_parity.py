"""Fast-path parity generated from the declarations, under the tolerance rule.

Forward: every fast path, every declared CPU dtype (float32/float64; bfloat16/float16 on the torch paths
too), on the form's fixed samples and the lengths around the path's tiles. Gradients: every
differentiable path on small samples, against the oracle's float64 autograd gradients. Hypothesis
samples: the form's own strategy (options, value distributions, GQA, m != n).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab.forms import all_forms
from attnlab.testing.parity import Implementation, assert_forward, assert_gradients
from attnlab.testing.samples import gradient_samples, parity_samples

FORMS = all_forms()
CPU_DTYPES = ("float32", "float64", "bfloat16", "float16")


def _paths(grad: bool = False):
    for form in FORMS:
        for path in form.fast_paths:
            if grad and not path.differentiable:
                continue
            if "cpu" in path.devices:
                yield form, path


FORWARD = [
    pytest.param(form, path, dtype, sample, id=f"{form.name}-{path.name}-{dtype}-{sample.label}")
    for form, path in _paths()
    for dtype in path.dtypes
    if dtype in CPU_DTYPES and (dtype in ("float32", "float64") or path.kind == "torch")
    for sample in (parity_samples(form, path) if dtype in ("float32", "float64") else parity_samples(form, path)[:4])
]
GRADIENT = [
    pytest.param(form, path, dtype, sample, id=f"{form.name}-{path.name}-{dtype}-{sample.label}")
    for form, path in _paths(grad=True)
    for dtype in ("float32", "float64")
    if dtype in path.dtypes
    for sample in gradient_samples(form, path)
]
HYPOTHESIS = [
    pytest.param(form, path, dtype, id=f"{form.name}-{path.name}-{dtype}")
    for form, path in _paths()
    for dtype in ("float32", "float64")
    if dtype in path.dtypes
]


@pytest.mark.parametrize(("form", "path", "dtype", "sample"), FORWARD)
def test_forward_parity(form, path, dtype, sample) -> None:
    assert_forward(form, Implementation.of(path), sample, dtype)


@pytest.mark.parametrize(("form", "path", "dtype", "sample"), GRADIENT)
def test_gradient_parity(form, path, dtype, sample) -> None:
    assert_gradients(form, Implementation.of(path), sample, dtype)


@pytest.mark.parametrize(("form", "path", "dtype"), HYPOTHESIS)
def test_forward_parity_on_hypothesis_samples(form, path, dtype) -> None:
    impl = Implementation.of(path)

    @given(st.builds(form.sample, st.integers(0, 2**32 - 1), form.shapes).filter(path.supports))
    def check(sample) -> None:
        assert_forward(form, impl, sample, dtype)

    check()
