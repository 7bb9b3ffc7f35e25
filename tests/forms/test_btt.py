"""BTT-specific checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference.btt import btt_dense, factor_pair


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
