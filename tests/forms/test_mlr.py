"""Sequence-axis MLR checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.core import Shape
from attnlab.forms._shared import attention_sample
from attnlab.reference.mlr import default_block_sizes, mlr_attention
from attnlab.validation import reference_precision


def test_default_blocks_halve_from_the_sequence_length_as_the_released_code() -> None:
    assert default_block_sizes(16, 4) == (16, 8, 4, 2)
    assert default_block_sizes(1024, 4) == (1024, 512, 256, 128)
    assert default_block_sizes(7, 3) == (7, 4, 2)  # beyond the code: a shorter last block


def test_fewer_queries_read_the_last_positions() -> None:
    # bottom-right positions: the last rows of causal self-attention are a decode step against the full cache
    s = attention_sample(
        3, Shape(batch=1, heads=2, kv_heads=1, n=13, d=6, d_v=3, causal=True, options=(("ranks", (2, 2, 2)),))
    )
    q, k, v = s.args
    full = s.call(mlr_attention)
    tail = mlr_attention(q[..., -4:, :], k, v, **s.kwargs)
    np.testing.assert_allclose(tail, full[..., -4:, :], rtol=0, atol=1e-12)


@pytest.mark.parametrize("normalize", ["none", "levels", "coverage"])
def test_the_logits_keep_the_reference_precision(normalize: str) -> None:
    s = attention_sample(
        4,
        Shape(
            batch=1,
            heads=2,
            kv_heads=1,
            n=6,
            m=9,
            d=6,
            d_v=3,
            causal=True,
            options=(("block_sizes", (9, 4, 2)), ("normalize", normalize), ("ranks", (3, 2, 1))),
        ),
    )
    single = [a.astype(np.float32) for a in s.args]
    with reference_precision(np.float32):
        out = mlr_attention(*single, **s.kwargs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, s.call(mlr_attention), atol=1e-5)
