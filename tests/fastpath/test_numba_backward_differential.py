"""Numba differential-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.differential import differential_vjp
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.torch.composed import composed_differential

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (batch, heads, kv_heads, n, m, d, d_v, causal, masked, lambda kind)
CASES = [
    pytest.param((1, 2, 2, 1, 1, 8, 4, False, False, "scalar"), id="n1-scalar-lambda"),
    pytest.param((1, 2, 1, 63, 63, 16, 8, True, False, "per-row"), id="n63-causal-gqa-per-row-lambda"),
    pytest.param((2, 4, 2, 100, 100, 8, 8, False, True, "per-head"), id="n100-mask-empty-row-gqa-per-head-lambda"),
    pytest.param((1, 2, 2, 64, 80, 32, 16, True, False, "scalar"), id="n64-m80-causal"),
    pytest.param((1, 1, 1, 128, 128, 64, 8, False, False, "scalar"), id="n128"),
]


def _sample(case: tuple, seed: int = 0) -> tuple[list[np.ndarray], dict]:
    batch, heads, kv_heads, n, m, d, d_v, causal, masked, lam_kind = case
    rng = np.random.default_rng(seed)
    q1, q2 = rng.standard_normal((2, batch, heads, n, d))
    k1, k2 = rng.standard_normal((2, batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    lam: float | np.ndarray = 0.8
    if lam_kind == "per-row":
        lam = rng.uniform(0.1, 0.9, (batch, heads, n, 1))
    elif lam_kind == "per-head":
        lam = rng.uniform(0.1, 0.9, (heads, 1, 1))
    kwargs: dict = {"lam": lam, "causal": causal}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False
        kwargs["mask"] = mask
    return [q1, k1, q2, k2, v], kwargs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_differential_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    arrays, kwargs = _sample(case)
    check_vjp("differential", differential_vjp, composed_differential, arrays, kwargs, dtype)


def test_differential_vjp_broadcast_query_batch() -> None:
    # q2 shared across the batch: its gradient is the sum over the batch copies
    arrays, kwargs = _sample((2, 2, 2, 20, 20, 8, 4, True, False, "scalar"), seed=3)
    arrays[2] = arrays[2][:1]
    check_vjp("differential", differential_vjp, composed_differential, arrays, kwargs, "float64")


def test_lambda_zero_leaves_second_map_without_gradient() -> None:
    arrays, kwargs = _sample((1, 2, 2, 10, 10, 4, 3, False, False, "scalar"), seed=4)
    grads = differential_vjp(np.ones((1, 2, 10, 3)), *arrays, **{**kwargs, "lam": 0.0})
    assert not np.any(grads[2]) and not np.any(grads[3])
    assert np.any(grads[0]) and np.any(grads[4])


def test_differential_vjp_rejects_bad_lambda() -> None:
    arrays, _ = _sample((1, 2, 2, 5, 5, 4, 3, False, False, "scalar"))
    with pytest.raises(ValueError, match=r"\blam\b"):
        differential_vjp(np.ones((1, 2, 5, 3)), *arrays, lam=np.ones((3, 5, 1)))
    with pytest.raises(TypeError, match=r"\blam\b"):
        differential_vjp(np.ones((1, 2, 5, 3)), *arrays, lam=None)


def test_registry_mapping_names_differential() -> None:
    assert VJPS["differential"] is differential_vjp
