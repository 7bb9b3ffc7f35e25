"""HSA specifics: both closed-form KL projections agree with a numerical minimisation over block masses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from attnlab.forms.hsa import blocks_of
from attnlab.reference.hsa import MAX_TREE_DEPTH, check_tree, hsa_weights
from attnlab.reference.softmax import attention_weights

TREE = (0, (1, (2, 3)), ((4, 5, 6), 7))


@pytest.mark.parametrize("projection", ["forward_kl", "reverse_kl"])
def test_closed_form_matches_numerical_kl_minimum(projection: str) -> None:
    rng = np.random.default_rng(6)
    q, k = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    soft = attention_weights(q, k)
    weights = hsa_weights(q, k, tree=TREE, projection=projection)
    for i in range(8):
        blocks = blocks_of(TREE, i)

        def spread(logits: np.ndarray, blocks=blocks) -> np.ndarray:
            mass = np.exp(logits - logits.max())
            mass /= mass.sum()
            p = np.zeros(8)
            for b, m in zip(blocks, mass):
                p[b] = m / len(b)
            return p

        def objective(logits: np.ndarray, i=i, spread=spread) -> float:
            p = spread(logits)
            a = soft[i]
            return float(np.sum(p * np.log(p / a))) if projection == "forward_kl" else float(np.sum(a * np.log(a / p)))

        best = minimize(objective, np.zeros(len(blocks)), method="BFGS", options={"gtol": 1e-10})
        np.testing.assert_allclose(weights[i], spread(best.x), atol=1e-6)


def _chain(depth: int) -> list:
    tree: list = [0, 1]
    for _ in range(depth - 1):
        tree = [tree]
    return tree


def test_tree_depth_limit_is_strict_and_a_self_containing_tree_is_refused() -> None:
    # a tree nested exactly MAX_TREE_DEPTH levels deep is a tree; one level more, or a list that contains
    # itself, is refused by name before any recursive walk could exhaust Python's stack
    assert check_tree(_chain(MAX_TREE_DEPTH), 2) == _chain(MAX_TREE_DEPTH)
    with pytest.raises(ValueError, match=rf"^tree: nested more than {MAX_TREE_DEPTH} levels deep"):
        check_tree(_chain(MAX_TREE_DEPTH + 1), 2)
    loop: list = [0]
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        check_tree(loop, 1)
    with pytest.raises(TypeError, match=r"^tree: expected token ints or nested sequences of them, got a bool$"):
        check_tree([0, True], 2)


def test_the_default_projection_is_the_forward_kl_one() -> None:
    rng = np.random.default_rng(16)
    q, k = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    tree = (0, (1, 2), (3, 4))
    np.testing.assert_array_equal(hsa_weights(q, k, tree=tree), hsa_weights(q, k, tree=tree, projection="forward_kl"))
