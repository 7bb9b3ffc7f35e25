"""NSA checks beyond the generic declaration-driven suite: the selection helper on its own, tie order, the
default gates, a sequence shorter than one block, and the reference precision."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnlab.forms.nsa import selection_loop
from attnlab.reference.nsa import nsa_attention, nsa_branches, nsa_selection
from attnlab.validation import reference_precision


def _qkv(seed: int, heads: int, kv_heads: int, n: int, d: int = 3, d_v: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((2, heads, n, d)),
        rng.standard_normal((2, kv_heads, n, d)),
        rng.standard_normal((2, kv_heads, n, d_v)),
    )


@pytest.mark.parametrize(("heads", "kv_heads"), [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("block_size", [2, 3, 9])
def test_the_selection_treats_leading_axes_as_batch(heads: int, kv_heads: int, block_size: int) -> None:
    """``nsa_selection`` of one batch element (no batch axis) and of a leading unit axis is the batched result's
    slice; ``block_size = 9 > n`` leaves no complete block to score."""
    q, k, _ = _qkv(1, heads, kv_heads, n=7, d=4)
    opts = {"block_size": block_size, "top_n": 3}
    batched = nsa_selection(q, k, **opts)
    assert batched.shape == (2, heads, 7, -(-7 // min(block_size, 8)))
    for b in range(2):
        assert np.array_equal(nsa_selection(q[b], k[b], **opts), batched[b])
    assert np.array_equal(nsa_selection(q[None], k[None], **opts), batched[None])


def test_arrays_without_a_head_axis_broadcast_over_the_heads() -> None:
    """Without a head axis there are no KV groups: a 2-d ``k, v`` is the same key set for every query head (each
    head selects alone, as with ``H_kv = H``), and a 2-d ``q`` is the same queries for every KV head."""
    q, k, v = _qkv(2, 3, 1, n=9)
    opts = {"block_size": 2, "top_n": 3, "window": 3}
    q, k, v = q[0], k[0, 0], v[0, 0]  # (3, 9, d), (9, d), (9, d_v)
    k_all, v_all = np.broadcast_to(k, (3, *k.shape)), np.broadcast_to(v, (3, *v.shape))
    np.testing.assert_array_equal(nsa_attention(q, k, v, **opts), nsa_attention(q, k_all, v_all, **opts))
    select = {"block_size": 2, "top_n": 3}
    np.testing.assert_array_equal(nsa_selection(q, k, **select), nsa_selection(q, k_all, **select))
    q_all = np.broadcast_to(q[0], (3, *q[0].shape))
    np.testing.assert_array_equal(nsa_attention(q[0], k_all, v_all, **opts), nsa_attention(q_all, k_all, v_all, **opts))
    np.testing.assert_array_equal(nsa_selection(q[0], k_all, **select), nsa_selection(q_all, k_all, **select))


def test_tied_scores_select_the_lowest_blocks() -> None:
    """Equal keys make every complete block's compressed probability equal: after the forced first, previous and
    current blocks, the lowest-indexed visible blocks fill ``top_n`` (a stable ranking)."""
    rng = np.random.default_rng(3)
    n, block_size, top_n = 128, 2, 8
    q = rng.standard_normal((1, 2, n, 4))
    k = np.ones((1, 1, n, 4))
    chosen = nsa_selection(q, k, block_size=block_size, top_n=top_n)
    for t in range(n):
        current = t // block_size
        forced = sorted({0, max(current - 1, 0), current})
        visible = [c for c in range(current - 1) if c not in forced]  # complete blocks before the previous one
        want = set(forced) | set(visible[: top_n - len(forced)])
        for h in range(2):
            assert set(np.flatnonzero(chosen[0, h, t])) == want, (h, t)


def test_default_gates_are_ones_and_gates_broadcast_from_n_by_3() -> None:
    q, k, v = _qkv(4, 2, 2, n=8)
    opts = {"block_size": 2, "top_n": 3, "window": 3}
    o_cmp, o_slc, o_swa = nsa_branches(q, k, v, **opts)
    np.testing.assert_allclose(nsa_attention(q, k, v, **opts), o_cmp + o_slc + o_swa, rtol=1e-15)
    gates = np.random.default_rng(5).uniform(size=(8, 3))
    want = gates[:, 0:1] * o_cmp + gates[:, 1:2] * o_slc + gates[:, 2:3] * o_swa
    np.testing.assert_allclose(nsa_attention(q, k, v, gates, **opts), want, rtol=1e-15)


def test_a_sequence_shorter_than_one_block_has_a_zero_compressed_branch() -> None:
    q, k, v = _qkv(6, 2, 1, n=3, d_v=5)
    o_cmp, o_slc, o_swa = nsa_branches(q, k, v, block_size=4, top_n=2, window=2)
    assert o_cmp.shape == o_slc.shape == o_swa.shape == (2, 2, 3, 5)
    np.testing.assert_array_equal(o_cmp, np.zeros_like(o_cmp))
    np.testing.assert_allclose(nsa_attention(q, k, v, block_size=4, top_n=2, window=2), o_slc + o_swa, rtol=1e-15)


@pytest.mark.parametrize("block_size", [2, 4])
def test_reference_precision_runs_the_same_math_in_float32(block_size: int) -> None:
    """Inside ``reference_precision(float32)`` (the benchmark's NumPy row) the branches stay float32, with or
    without a complete block (``n = 3``)."""
    q, k, v = _qkv(7, 2, 1, n=3)
    opts = {"block_size": block_size, "top_n": 2, "window": 2}
    with reference_precision(np.float32):
        single = [a.astype(np.float32) for a in (q, k, v)]
        out = nsa_attention(*single, **opts)
        branches = nsa_branches(*single, **opts)
    assert out.dtype == np.float32
    assert [b.dtype for b in branches] == [np.float32] * 3
    np.testing.assert_allclose(out, nsa_attention(q, k, v, **opts), atol=1e-5)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"block_size": 0}, ValueError, "block_size: expected a positive int, got 0"),
        ({"top_n": 0}, ValueError, "top_n: expected a positive int, got 0"),
        ({"top_n": 1.5}, TypeError, "top_n: expected a positive int, got float 1.5"),
        (
            {"k": slice(1, None)},
            ValueError,
            "q/k: NSA is causal self-attention over one sequence, got n=7 queries and m=6 keys",
        ),
    ],
)
def test_the_selection_rejects_bad_input_by_name(change: dict, error: type, message: str) -> None:
    q, k, _ = _qkv(8, 2, 2, n=7, d=4)
    q, k = q[0], k[0]  # (H, n, d): a message reading the wrong axis would show d = 4 or H = 2
    opts = {"block_size": 2, "top_n": 3, **change}
    if "k" in opts:
        k = k[..., opts.pop("k"), :]
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        nsa_selection(q, k, **opts)


def test_the_selection_uses_its_scale() -> None:
    """A KV group ranks blocks by the mean of its heads' softmax probabilities, which depends on σ (a temperature
    reorders a mean of softmaxes): the selection at σ = 3 follows the scalar-loop definition and differs here
    from the one at the default σ."""
    q, k, _ = _qkv(0, 4, 2, n=16, d=4)
    opts = {"block_size": 2, "top_n": 4}
    sharp = nsa_selection(q, k, scale=3.0, **opts)
    assert np.array_equal(sharp, selection_loop(q, k, scale=3.0, **opts))
    assert not np.array_equal(sharp, nsa_selection(q, k, **opts))
