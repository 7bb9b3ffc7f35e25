"""SQA: what is specific to it — the H_q / H FLOP ratio against MHA of the same width, the Numba path and
its VJP across the softmax kernel's tiles, and a context batch broadcast against the queries'."""

from __future__ import annotations

import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.forms import get_form
from attnlab.forms.sqa import sample
from attnlab.testing import check_path

torch.set_num_threads(1)


def test_attention_flops_scale_with_the_query_heads() -> None:
    """Same width and head dim, H_q = 2 of H = 8 nominal heads: a quarter of MHA's score/value FLOPs."""
    form = get_form("sqa")
    sparse = sample(0, Shape(batch=1, heads=2, kv_heads=1, n=64, d=16, d_v=16))
    full = sample(0, Shape(batch=1, heads=8, kv_heads=8, n=64, d=16, d_v=16))
    assert form.flops(sparse) / form.flops(full) == pytest.approx(2 / 8)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_path_and_vjp_across_kernel_tiles(dtype: str) -> None:
    s = sample(4, Shape(batch=1, heads=4, kv_heads=2, n=130, m=260, d=8, d_v=4, causal=True))
    check_path("sqa", "numba", s, dtype)
    check_path("sqa", "numba", s, dtype, grad=True)


@pytest.mark.parametrize("path", ["numba", "torch"])
def test_context_batch_broadcasts_against_the_queries(path: str) -> None:
    """One query sequence against three contexts: outputs per context, x's gradient summed over them."""
    s = sample(5, Shape(batch=3, heads=4, kv_heads=2, n=7, m=9, d=4, d_v=3, masked=True))
    x, *rest = s.args
    check_path("sqa", path, SampleInput((x[:1], *rest), s.kwargs, s.label), "float64", grad=True)
