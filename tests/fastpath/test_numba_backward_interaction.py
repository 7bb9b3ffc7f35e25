"""Factorized-interaction VJP (dense U) vs torch autograd of the composed reference math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.interaction import interaction_vjp
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.torch.composed import composed_interaction

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (x batch, alpha batch, heads, n, D)
CASES = [
    pytest.param((1, 1, 2, 1, 4), id="n1"),
    pytest.param((2, 2, 3, 63, 8), id="n63-H3"),
    pytest.param((2, 2, 4, 100, 6), id="n100-H4"),
    pytest.param((1, 1, 1, 128, 16), id="n128-H1"),
    pytest.param((1, 3, 2, 20, 5), id="x-broadcast-over-alpha-batch"),
    pytest.param((3, 1, 2, 20, 5), id="alpha-broadcast-over-x-batch"),
]


def _sample(case: tuple, seed: int = 0) -> list[np.ndarray]:
    x_batch, alpha_batch, heads, n, dim = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((x_batch, n, dim))
    alpha = rng.standard_normal((alpha_batch, heads, n, n)) / np.sqrt(n)
    u = rng.standard_normal((heads, dim, dim)) / np.sqrt(dim)
    return [x, alpha, u]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_interaction_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    check_vjp("interaction", interaction_vjp, composed_interaction, _sample(case), {}, dtype)


def test_interaction_vjp_rejects_low_rank_maps() -> None:
    x, alpha, _ = _sample((1, 1, 2, 4, 3))
    with pytest.raises(ValueError, match=r"\bu\b.*dense"):
        interaction_vjp(np.ones((1, 4, 3)), x, alpha, w_v=np.ones((2, 3, 2)), w_o=np.ones((2, 2, 3)))


def test_registry_mapping_names_interaction() -> None:
    assert VJPS["interaction"] is interaction_vjp
