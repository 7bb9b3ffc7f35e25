"""BTT-specific checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnlab.reference.btt import btt_attention, btt_dense, factor_pair


@pytest.mark.parametrize(
    ("dim", "pair"), [(64, (4, 16)), (768, (24, 32)), (12, (3, 4)), (16, (2, 8)), (7, (1, 7)), (2, (1, 2))]
)
def test_factor_pair_as_the_released_code(dim: int, pair: tuple[int, int]) -> None:
    # the larger factor is the smallest divisor strictly above √D, so perfect squares are not split evenly
    assert factor_pair(dim) == pair


def test_dense_matrix_uses_a_prime_major_rows_and_c_prime_major_columns() -> None:
    dim, heads = 6, 1
    a, b = factor_pair(dim)  # (2, 3)
    w_q = np.zeros((heads * b, a, a))
    w_k = np.zeros((a, b, heads * b))
    w_q[1, 0, 1] = 1.0  # (h, b') = (0, 1), a' = 0, (c', s) = (1, 0)
    w_k[1, 2, 1] = 1.0  # c' = 1, d' = 2, (h, b', s) = (0, 1, 0)
    dense = btt_dense(w_q, w_k, dim, heads)[0]
    expected = np.zeros((dim, dim))
    expected[0 * b + 1, 1 * b + 2] = 1.0  # row a'·b + b', column c'·d + d'
    np.testing.assert_array_equal(dense, expected)


@pytest.mark.parametrize(
    ("dim", "error", "message"),
    [
        (1, ValueError, "dim: expected an int >= 2 (D = a·b with b > √D), got 1"),
        (0, ValueError, "dim: expected an int >= 2 (D = a·b with b > √D), got 0"),
        (6.0, TypeError, "dim: expected an int >= 2 (D = a·b with b > √D), got float 6.0"),
    ],
)
def test_factor_pair_rejects_a_width_without_a_pair(dim: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        factor_pair(dim)  # type: ignore[arg-type]


def _cores(seed: int, dim: int, heads: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = factor_pair(dim)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((heads * b, a, a * rank)), rng.standard_normal((a, b, heads * b * rank))


@pytest.mark.parametrize("v_lead", [(2,), (1, 2)])
def test_the_key_tokens_head_axis_is_optional(v_lead: tuple[int, ...]) -> None:
    """``y`` of shape ``(m, D)`` or ``(1, m, D)``: the same key tokens shared by every head, the same output."""
    rng = np.random.default_rng(9)
    w_q, w_k = _cores(9, 6, 2, 2)
    x, y, v = rng.standard_normal((5, 6)), rng.standard_normal((4, 6)), rng.standard_normal((*v_lead, 4, 3))
    with_axis = btt_attention(x, y[None], v, w_q, w_k)
    assert with_axis.shape == (*v_lead, 5, 3)
    np.testing.assert_array_equal(btt_attention(x, y, v, w_q, w_k), with_axis)


@pytest.mark.parametrize(
    ("core", "bad", "message"),
    [
        ("w_q", (6, 2), "w_q: expected at least 3 dims laid out (..., n, d), got shape (6, 2)"),
        ("w_k", (2, 3), "w_k: expected at least 3 dims laid out (..., n, d), got shape (2, 3)"),
        (
            "w_q",
            (6, 2, 3),
            "w_q: expected shape (H·b, a, c·s) = (6, 2, 2·s) for D = 6 = 2·3 and H = 2 (the heads of v), got (6, 2, 3)",
        ),
    ],
)
def test_the_dense_matrix_checks_its_cores_by_name(core: str, bad: tuple[int, ...], message: str) -> None:
    w_q, w_k = _cores(10, 6, 2, 1)
    cores = {"w_q": w_q, "w_k": w_k, core: np.ones(bad)}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        btt_dense(cores["w_q"], cores["w_k"], 6, 2)
