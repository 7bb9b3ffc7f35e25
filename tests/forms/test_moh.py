"""MoH: what is specific to it — unselected heads are exact zeros, the released code's gates reduce to
multi-head SDPA at a larger size, and gradients reach the router inputs and every router."""

from __future__ import annotations

import numpy as np
import torch

from attnlab.core import Shape
from attnlab.fastpath.torch.moh import moh_attention as torch_moh
from attnlab.fastpath.torch.softmax import softmax_attention as torch_softmax
from attnlab.forms.moh import sample
from attnlab.reference.moh import moh_attention, router_scores, top_k_mask

torch.set_num_threads(1)


def test_unselected_heads_are_exact_zeros() -> None:
    s = sample(
        1,
        Shape(
            batch=2,
            heads=6,
            kv_heads=3,
            n=9,
            m=12,
            d=4,
            d_v=3,
            causal=True,
            options=(("gating", "paper"), ("shared_heads", 2), ("top_k", 1)),
        ),
    )
    out = s.call(moh_attention)
    torch_out = torch_moh(*(torch.tensor(a) for a in s.args), **s.kwargs).numpy()
    for got in (out, torch_out):
        silent = np.all(got[:, 2:] == 0.0, axis=-1)  # (batch, routed heads, n)
        assert np.all(silent.sum(axis=1) == 3), "each token must silence exactly h_r − K = 3 routed heads"


def test_code_gates_with_uniform_routers_are_sdpa_at_a_larger_size() -> None:
    s = sample(
        2,
        Shape(
            batch=1,
            heads=8,
            kv_heads=2,
            n=257,
            d=16,
            d_v=8,
            causal=True,
            options=(("gating", "code"), ("shared_heads", 3), ("top_k", 5)),
        ),
    )
    q, k, v, x, w_s, w_r, w_m = (torch.tensor(a) for a in s.args)
    zeros = (torch.zeros_like(w_s), torch.zeros_like(w_r), torch.zeros_like(w_m))
    got = torch_moh(q, k, v, x, *zeros, top_k=5, gating="code", causal=True)
    torch.testing.assert_close(got, torch_softmax(q, k, v, causal=True), rtol=0, atol=1e-13)


def test_gradients_reach_both_routers() -> None:
    """Through the selected routed scores and the mixing weights, every input gets a finite gradient
    (two shared heads: a single one has the constant score softmax = 1 and no router gradient)."""
    s = sample(
        3,
        Shape(
            batch=1,
            heads=4,
            kv_heads=4,
            n=6,
            d=4,
            d_v=3,
            options=(("gating", "paper"), ("shared_heads", 2), ("top_k", 1)),
        ),
    )
    args = [torch.tensor(a, requires_grad=True) for a in s.args]
    torch_moh(*args, **s.kwargs).sum().backward()
    grads = [a.grad for a in args]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert all(bool(g.abs().sum() > 0) for g in grads[3:])


def test_router_scores_are_a_softmax_per_token_at_any_logit_size() -> None:
    # each token's scores are its own softmax: a token with logits near ±1000 next to one near 0 changes
    # neither, and no score overflows or underflows to 0/0
    rng = np.random.default_rng(14)
    x, w = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    x[0] *= 1000.0 / np.abs(x[0] @ w.T).max()
    scores = router_scores(x, w)
    assert np.isfinite(scores).all()
    for t in range(3):
        z = x[t] @ w.T
        np.testing.assert_allclose(scores[t], np.exp(z - z.max()) / np.exp(z - z.max()).sum(), rtol=1e-12)


def test_top_k_keeps_the_lower_index_among_ties() -> None:
    # ties are common in gate scores (equal routers): of equal scores the lower head index is kept
    rng = np.random.default_rng(15)
    scores = rng.integers(0, 3, (200, 8)).astype(float)
    mask = top_k_mask(scores, 3)
    assert mask.dtype == bool
    for row, picked in zip(scores, mask):
        expected = sorted(range(8), key=lambda e: (-row[e], e))[:3]
        assert np.flatnonzero(picked).tolist() == sorted(expected)
