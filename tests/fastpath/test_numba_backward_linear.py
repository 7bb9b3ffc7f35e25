"""Numba linear-attention VJP vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.linear import linear_vjp
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.torch.composed import composed_linear

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (batch, heads, kv_heads, n, m, d, d_v, causal, feature map)
CASES = [
    pytest.param((1, 2, 2, 1, 1, 8, 4, False, "elu1"), id="n1"),
    pytest.param((1, 2, 1, 63, 63, 16, 8, True, "elu1"), id="n63-causal-gqa"),
    pytest.param((2, 4, 2, 100, 100, 8, 8, False, "elu1"), id="n100-gqa"),
    pytest.param((1, 2, 2, 64, 80, 32, 16, False, "elu1"), id="n64-m80"),
    pytest.param((1, 1, 1, 128, 128, 64, 8, True, "elu1"), id="n128-causal"),
    pytest.param((1, 2, 2, 100, 100, 8, 4, True, "relu"), id="n100-causal-relu"),
]


def _sample(case: tuple, seed: int = 0) -> tuple[list[np.ndarray], dict]:
    batch, heads, kv_heads, n, m, d, d_v, causal, feature_map = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d))
    k = rng.standard_normal((batch, kv_heads, m, d))
    if feature_map == "relu":  # keep every denominator well above eps: the first key is positive
        k[..., 0, :] = np.abs(k[..., 0, :]) + 0.5
        q = np.abs(q) + 0.1
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    return [q, k, v], {"causal": causal, "feature_map": feature_map}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_linear_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    arrays, kwargs = _sample(case)
    check_vjp("linear", linear_vjp, composed_linear, arrays, kwargs, dtype)


def test_linear_vjp_rejects_callable_feature_map_and_causal_cross() -> None:
    (q, k, v), _ = _sample((1, 2, 2, 5, 5, 4, 3, False, "elu1"))
    with pytest.raises(ValueError, match=r"feature_map"):
        linear_vjp(np.ones((1, 2, 5, 3)), q, k, v, feature_map=np.tanh)
    with pytest.raises(ValueError, match=r"causal.*n=5, m=6"):
        linear_vjp(np.ones((1, 2, 5, 3)), q, np.ones((1, 2, 6, 4)), np.ones((1, 2, 6, 3)), causal=True)


def test_registry_mapping_names_linear() -> None:
    assert VJPS["linear"] is linear_vjp
