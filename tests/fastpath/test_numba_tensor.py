"""Numba tensor attention (attnlab.fastpath.numba.tensor) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.entries import _tensor_sample
from attnlab.fastpath.numba.checks import check_deterministic, check_parity
from attnlab.fastpath.numba.tensor import tensor_attention
from attnlab.reference import tensor_attention as reference
from attnlab.registry import Shape, get_form

CASES = [
    Shape(batch=1, heads=1, n=1, d=4, d_v=3),
    Shape(batch=2, heads=2, n=9, m=12, d=6, d_v=4),
    Shape(batch=1, heads=2, n=12, d=8, d_v=4, causal=True),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [pytest.param(s, id=s.label()) for s in CASES])
def test_numba_tensor_parity(shape: Shape, dtype: str) -> None:
    check_parity("tensor", tensor_attention, reference, _tensor_sample(11, shape), dtype)


def test_numba_tensor_deterministic() -> None:
    check_deterministic(tensor_attention, _tensor_sample(2, CASES[-1]))


def test_numba_tensor_bad_inputs() -> None:
    for bad in get_form("tensor").bad_inputs():
        with pytest.raises(bad.error, match=bad.match):
            tensor_attention(*bad.args, **bad.kwargs)


@pytest.mark.parametrize("degree", [0, 2, 3, 6])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_tensor_poly_parity(degree: int, dtype: str) -> None:
    from attnlab.fastpath.numba.tensor import tensor_attention_poly
    from attnlab.reference.tensor_poly import tensor_attention_poly as poly_reference

    sample = _tensor_sample(5, Shape(batch=2, heads=2, n=12, m=11, d=4, d_v=3))
    sample = sample.with_args(*(0.6 * a for a in sample.args), degree=degree)
    sample = type(sample)(sample.args, {"degree": degree}, sample.label)
    check_parity("tensor poly", tensor_attention_poly, poly_reference, sample, dtype)


def test_numba_tensor_poly_long_sequence() -> None:
    """Linear-time path on a length the exact form could not afford (n = m1 = m2 = 4096)."""
    from attnlab.fastpath.numba.tensor import tensor_attention_poly
    from attnlab.reference.tensor_poly import tensor_attention_poly as poly_reference

    rng = np.random.default_rng(0)
    args = [0.5 * rng.standard_normal((1, 4096, 4)) for _ in range(5)]
    np.testing.assert_allclose(tensor_attention_poly(*args, degree=4), poly_reference(*args, degree=4), atol=1e-12)
