"""DIFF V2: what is specific to its fast paths — the Numba VJP across the softmax kernel's tiles in both
pair layouts, a λ broadcast over the batch (its gradient summed back), and the pair layout itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.fastpath.torch.diff_v2 import diff_v2_attention as torch_diff_v2
from attnlab.forms.diff_v2 import sample
from attnlab.reference.diff_v2 import diff_v2_attention
from attnlab.reference.softmax import softmax_attention
from attnlab.testing import check_path

torch.set_num_threads(1)

#: 2H = 4 query heads: H_kv = 4 gives each pair two KV heads, H_kv = 2 one shared KV head per pair.
CASES = [
    pytest.param(
        Shape(batch=1, heads=4, kv_heads=4, n=130, m=140, d=8, d_v=4, causal=True),
        id="n130-m140-causal-pairs-on-two-kv-heads",
    ),
    pytest.param(
        Shape(batch=2, heads=4, kv_heads=2, n=129, d=8, d_v=4, masked=True), id="n129-mask-pairs-share-a-kv-head"
    ),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", CASES)
def test_numba_vjp_across_kernel_tiles(shape: Shape, dtype: str) -> None:
    check_path("diff_v2", "numba", sample(3, shape), dtype, grad=True)


@pytest.mark.parametrize("path", ["numba", "torch"])
def test_lambda_shared_across_the_batch(path: str) -> None:
    """λ of shape (H, n, 1) broadcast over the batch: forward and (its gradient summed over the batch) backward."""
    s = sample(5, Shape(batch=3, heads=4, kv_heads=2, n=9, m=11, d=4, d_v=3, causal=True))
    q, k, v, lam = s.args
    shared = SampleInput((q, k, v, lam[0]), s.kwargs, s.label)
    check_path("diff_v2", path, shared, "float64", grad=True)


def test_pairs_on_different_kv_heads_use_both_values() -> None:
    """With H_kv = 2H the odd head reads its own value head: changing only the odd heads' values moves the
    output by −sigmoid(λ) times the change of the odd heads' attention (what V1's one value cannot do)."""
    s = sample(6, Shape(batch=1, heads=4, kv_heads=4, n=6, d=3, d_v=2))
    q, k, v, lam = s.args
    moved = np.array(v)
    moved[:, 1::2] += 1.0
    change = diff_v2_attention(q, k, moved, lam) - diff_v2_attention(q, k, v, lam)
    odd_rows_sum_to_one = softmax_attention(q[:, 1::2], k[:, 1::2], np.ones_like(v[:, 1::2, :, :1]))
    np.testing.assert_allclose(change, -(1.0 / (1.0 + np.exp(-lam))) * odd_rows_sum_to_one * np.ones(2), atol=1e-12)


def test_torch_lambda_gets_a_gradient_and_bad_lambda_is_named() -> None:
    s = sample(2, Shape(batch=1, heads=4, kv_heads=2, n=7, d=4, d_v=3, causal=True))
    q, k, v, lam = (torch.tensor(a) for a in s.args)
    lam.requires_grad_(True)
    torch_diff_v2(q, k, v, lam, causal=True).sum().backward()
    assert lam.grad is not None and bool(lam.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match=r"\blam\b.*\(\.\.\., H, n, 1\)"):
        torch_diff_v2(q, k, v, lam.detach()[..., :1, :, :].expand(1, 2, 7, 2))
    with pytest.raises(TypeError, match=r"\blam\b"):
        torch_diff_v2(q, k, v, lam.detach().float())


def test_the_default_is_non_causal() -> None:
    rng = np.random.default_rng(9)
    q, k, v, lam = (rng.standard_normal(s) for s in ((4, 5, 3), (2, 5, 3), (2, 5, 2), (2, 5, 1)))
    np.testing.assert_array_equal(diff_v2_attention(q, k, v, lam), diff_v2_attention(q, k, v, lam, causal=False))
    assert not np.allclose(diff_v2_attention(q, k, v, lam), diff_v2_attention(q, k, v, lam, causal=True))
