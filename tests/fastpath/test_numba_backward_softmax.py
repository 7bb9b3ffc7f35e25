"""Numba softmax-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.parity import QKV_CASES, check_vjp, qkv_sample
from attnlab.fastpath.numba.backward.softmax import softmax_vjp
from attnlab.fastpath.torch.composed import composed_softmax

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

CASES = [pytest.param(case, id=name) for name, case in QKV_CASES]
_sample = qkv_sample


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_softmax_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    arrays, kwargs = _sample(case)
    check_vjp("softmax", softmax_vjp, composed_softmax, arrays, kwargs, dtype)


def test_softmax_vjp_explicit_scale_and_broadcast_mask() -> None:
    arrays, _ = _sample((2, 2, 2, 20, 30, 8, 8, False, False), seed=3)
    mask = np.random.default_rng(4).random((20, 30)) > 0.5
    check_vjp("softmax", softmax_vjp, composed_softmax, arrays, {"scale": 0.3, "mask": mask}, "float64")


def test_fully_masked_row_has_zero_gradients() -> None:
    (q, k, v), kwargs = _sample((1, 2, 2, 100, 100, 8, 8, False, True), seed=1)
    grad = np.ones((1, 2, 100, 8))
    dq, dk, dv = softmax_vjp(grad, q, k, v, **kwargs)
    assert np.all(dq[..., 50, :] == 0.0)
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


def test_softmax_vjp_rejects_bad_upstream_shape() -> None:
    (q, k, v), _ = _sample((1, 2, 2, 5, 5, 4, 3, False, False))
    with pytest.raises(ValueError, match=r"grad_out.*\(1, 2, 5, 3\)"):
        softmax_vjp(np.ones((1, 2, 5, 4)), q, k, v)
    with pytest.raises(TypeError, match=r"\bq\b"):
        softmax_vjp(np.ones((1, 2, 5, 3)), "q", k, v)


def test_registry_mapping_names_softmax() -> None:
    assert VJPS["softmax"] is softmax_vjp
