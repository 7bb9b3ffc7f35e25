"""GNA specifics: NATTEN's window semantics on hand-worked cases (even stride, causal stride groups), and
the Numba kernel on a dilated, partly causal 2-d grid that crosses its row blocks and key tiles."""

from __future__ import annotations

import numpy as np

from attnlab.fastpath.numba.gna import gna_attention as numba_gna
from attnlab.reference.gna import axis_visibility, gna_attention, gna_visibility


def _rows(table: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(row).tolist() for row in table]


def test_even_stride_leader_is_right_of_centre() -> None:
    # L = 6, k = 4, s = 2: leaders 1, 3, 5; centres clamped to [2, 4]; windows [c − 2, c + 1]
    assert _rows(axis_visibility(6, 4, 2, 1, False)) == [[0, 1, 2, 3]] * 2 + [[1, 2, 3, 4]] * 2 + [[2, 3, 4, 5]] * 2


def test_causal_stride_groups_end_at_their_leader() -> None:
    # L = 6, k = 3, s = 2: leaders 1, 3, 5; visible iff j <= i and leader − j < 3
    assert _rows(axis_visibility(6, 3, 2, 1, True)) == [[0], [0, 1], [1, 2], [1, 2, 3], [3, 4], [3, 4, 5]]


def test_dilated_groups_use_their_own_length() -> None:
    # L = 7, δ = 2: residue 0 has 4 positions (0, 2, 4, 6), residue 1 has 3 (1, 3, 5); k = 3 clamps in each
    assert _rows(axis_visibility(7, 3, 1, 2, False)) == [
        [0, 2, 4],
        [1, 3, 5],
        [0, 2, 4],
        [1, 3, 5],
        [2, 4, 6],
        [1, 3, 5],
        [2, 4, 6],
    ]


def test_numba_on_a_dilated_mixed_causal_2d_grid() -> None:
    rng = np.random.default_rng(4)
    spatial = (12, 13)
    n = spatial[0] * spatial[1]
    q, k, v = rng.standard_normal((1, 2, n, 8)), rng.standard_normal((1, 1, n, 8)), rng.standard_normal((1, 1, n, 5))
    opts = {
        "kernel_size": (3, 5),
        "spatial_shape": spatial,
        "stride": (2, 1),
        "dilation": (2, 1),
        "causal": (False, True),
    }
    np.testing.assert_allclose(numba_gna(q, k, v, **opts), gna_attention(q, k, v, **opts), atol=1e-12)


def test_visibility_defaults_are_the_plain_neighbourhood() -> None:
    # stride 1, dilation 1, not causal: each token sees the kernel_size tokens of its clamped window
    np.testing.assert_array_equal(
        gna_visibility((4, 5), kernel_size=3),
        gna_visibility((4, 5), kernel_size=3, stride=1, dilation=1, causal=False),
    )
    row = gna_visibility((7,), kernel_size=3)
    assert [np.flatnonzero(r).tolist() for r in row] == [[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]] + [
        [4, 5, 6]
    ] * 2


def test_an_int_spatial_shape_is_a_one_axis_grid() -> None:
    rng = np.random.default_rng(13)
    q, k, v = (rng.standard_normal((1, 2, 12, 4)) for _ in range(3))
    np.testing.assert_array_equal(
        gna_attention(q, k, v, kernel_size=5, spatial_shape=12),
        gna_attention(q, k, v, kernel_size=5, spatial_shape=(12,)),
    )
