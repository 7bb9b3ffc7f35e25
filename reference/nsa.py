"""NSA-style sparse attention (Yuan et al. 2025): compressed, selected and sliding-window branches, gated.

Source: Jingyang Yuan et al. (DeepSeek), "Native Sparse Attention: Hardware-Aligned and Natively
Trainable Sparse Attention", 2025, arXiv 2502.11089 (method: token compression, token selection by the
compressed attention scores shared across a GQA group, sliding window; ``o_t = Σ_c g_t^c Attn(q_t,
K̃_t^c, Ṽ_t^c)``). The operator follows flash-linear-attention's reference
(``fla/ops/nsa/naive.py``: ``naive_nsa``, ``naive_nsa_compression``, ``naive_nsa_topk``), which fixes
what the paper leaves to learned modules:

* compression: ``K̃_c, Ṽ_c`` are the **means** of the keys/values of block ``c`` (non-overlapping blocks
  of ``block_size``; the paper uses a learned MLP over overlapping blocks). Compressed block ``c`` is
  visible to query ``t`` iff ``(c + 1)·BS − 1 <= t``; a query before the first full block gets 0.
* selection: block scores are the compressed softmax probabilities averaged over the query heads of a
  KV group (so a group shares its blocks); blocks ``0``, ``⌊t/BS⌋`` and ``⌊t/BS⌋ − 1`` are always
  selected; then the highest-scoring visible blocks up to ``top_n`` in all (ties: the lower block
  first). The selected branch attends to the tokens ``j <= t`` of the selected blocks.
* window: the tokens ``t − w < j <= t``.

``o_t = g_cmp o_cmp + g_slc o_slc + g_swa o_swa`` with gates ``(..., H, n, 3)`` (default all ones; the
paper's are sigmoids of an MLP). Causal self-attention; scale ``σ = d_k^{-1/2}``. GQA is part of the
operator (selection is per group), so GQA is not MHA with repeated KV heads here. fla's kernels
require the group size to be a power of two >= 16; the reference takes any group size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.softmax import _prepare_qk, _prepare_scores
from attnlab.validation import as_float_array, check_broadcast_to, check_positive_int, overflow_checked

DEFAULT_BLOCK = 64
DEFAULT_TOP_N = 16
DEFAULT_WINDOW = 512


def mean_pool(x: np.ndarray, block_size: int) -> np.ndarray:
    """Means of the complete blocks of ``block_size`` tokens: ``(..., ⌊n/BS⌋, d)``."""
    blocks = x.shape[-2] // block_size
    return x[..., : blocks * block_size, :].reshape(*x.shape[:-2], blocks, block_size, x.shape[-1]).mean(axis=-2)


def compressed_visible(n: int, blocks: int, block_size: int) -> np.ndarray:
    """``(n, blocks)``: compressed block ``c`` is visible to query ``t`` iff ``(c + 1)·BS − 1 <= t``."""
    t = np.arange(n)[:, None]
    c = np.arange(blocks)[None, :]
    return (c + 1) * block_size - 1 <= t


def _groups(q: Any, k: Any) -> int:
    """Query heads per KV head (1 without a head axis)."""
    if np.ndim(q) < 3 or np.ndim(k) < 3 or np.shape(k)[-3] == np.shape(q)[-3]:
        return 1
    return np.shape(q)[-3] // np.shape(k)[-3]


def group_scores(probs: np.ndarray, group: int) -> np.ndarray:
    """Average ``(..., H, n, C)`` probabilities over each group of ``group`` consecutive heads, repeated back."""
    if group == 1:
        return probs
    lead, heads = probs.shape[:-3], probs.shape[-3]
    grouped = probs.reshape(*lead, heads // group, group, *probs.shape[-2:]).mean(axis=-3, keepdims=True)
    return np.broadcast_to(grouped, (*lead, heads // group, group, *probs.shape[-2:])).reshape(probs.shape)


def select_blocks(scores: np.ndarray, n: int, block_size: int, top_n: int) -> np.ndarray:
    """``(..., n, NB)`` booleans: the selected blocks (forced ones first, then by score, ties to the lower index)."""
    total = -(-n // block_size)
    padded = np.zeros((*scores.shape[:-1], total), dtype=scores.dtype)  # incomplete blocks score 0
    padded[..., : scores.shape[-1]] = scores
    t = np.arange(n)[:, None]
    c = np.arange(total)[None, :]
    current = t // block_size
    forced = (c == 0) | (c == current) | (c == current - 1)
    allowed = forced | ((c + 1) * block_size - 1 <= t)
    key = np.where(forced, np.inf, np.where(allowed, padded, -np.inf))
    order = np.argsort(-key, axis=-1, kind="stable")[..., :top_n]
    chosen = np.zeros(key.shape, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=-1)
    return chosen & np.broadcast_to(allowed, key.shape)


def selected_tokens(chosen: np.ndarray, n: int, block_size: int) -> np.ndarray:
    """``(..., n, n)`` booleans: key ``j`` is in a block selected for query ``t``, and ``j <= t``."""
    t = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    in_block = np.take_along_axis(chosen, np.broadcast_to(j // block_size, (*chosen.shape[:-1], n)), axis=-1)
    return in_block & (j <= t)


def nsa_selection(
    q: Any, k: Any, *, block_size: int = DEFAULT_BLOCK, top_n: int = DEFAULT_TOP_N, scale: float | None = None
) -> np.ndarray:
    """The selected blocks ``(..., H, n, ⌈n/BS⌉)`` of every query (identical across the heads of a group)."""
    qa, ka, sigma, _ = _prepare_scores(q, k, scale=scale, causal=False, mask=None)
    block_size = check_positive_int("block_size", block_size)
    top_n = check_positive_int("top_n", top_n)
    n = qa.shape[-2]
    block_size = min(block_size, n + 1)  # every block size past n leaves one partial block of all tokens
    if ka.shape[-2] != n:
        raise ValueError(
            f"q/k: NSA is causal self-attention over one sequence, got n={n} queries and m={ka.shape[-2]} keys"
        )
    pooled = mean_pool(ka, block_size)
    if pooled.shape[-2]:
        probs = masked_softmax(
            sigma * (qa @ np.swapaxes(pooled, -1, -2)), compressed_visible(n, pooled.shape[-2], block_size)
        )
    else:
        probs = np.zeros((*qa.shape[:-1], 0), dtype=qa.dtype)
    return select_blocks(group_scores(probs, _groups(q, k)), n, block_size, top_n)


def nsa_branches(
    q: Any,
    k: Any,
    v: Any,
    *,
    block_size: int = DEFAULT_BLOCK,
    top_n: int = DEFAULT_TOP_N,
    window: int = DEFAULT_WINDOW,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three branch outputs ``(o_cmp, o_slc, o_swa)``, each ``(..., H, n, d_v)``."""
    qa, ka, va, sigma, _ = _prepare_qk(q, k, v, scale=scale, causal=False, mask=None)
    n, m = qa.shape[-2], ka.shape[-2]
    if n != m:
        raise ValueError(f"q/k: NSA is causal self-attention over one sequence, got n={n} queries and m={m} keys")
    block_size = check_positive_int("block_size", block_size)
    top_n = check_positive_int("top_n", top_n)
    window = check_positive_int("window", window)
    block_size, window = min(block_size, n + 1), min(window, n)  # larger ones select the same tokens
    scores = sigma * (qa @ np.swapaxes(ka, -1, -2))
    pooled_k, pooled_v = mean_pool(ka, block_size), mean_pool(va, block_size)
    blocks = pooled_k.shape[-2]
    if blocks:
        visible = compressed_visible(n, blocks, block_size)
        probs = masked_softmax(sigma * (qa @ np.swapaxes(pooled_k, -1, -2)), visible)
        o_cmp = probs @ pooled_v
    else:
        probs = np.zeros((*qa.shape[:-1], 0), dtype=qa.dtype)
        o_cmp = np.zeros((*qa.shape[:-1], va.shape[-1]), dtype=qa.dtype)
    chosen = select_blocks(group_scores(probs, _groups(q, k)), n, block_size, top_n)
    t = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    o_slc = masked_softmax(scores, selected_tokens(chosen, n, block_size)) @ va
    o_swa = masked_softmax(scores, (j <= t) & (j > t - window)) @ va
    return o_cmp, o_slc, o_swa


@overflow_checked
def nsa_attention(
    q: Any,
    k: Any,
    v: Any,
    gates: Any = None,
    *,
    block_size: int = DEFAULT_BLOCK,
    top_n: int = DEFAULT_TOP_N,
    window: int = DEFAULT_WINDOW,
    scale: float | None = None,
) -> np.ndarray:
    """NSA: ``o_t = g_cmp o_cmp + g_slc o_slc + g_swa o_swa`` (see the module docstring).

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, n, d_k)``; v: ``(..., H_kv, n, d_v)``; query head ``h``
            belongs to KV group ``h // (H / H_kv)``, whose heads share their selected blocks.
        gates: ``(..., H, n, 3)`` weights of the (compressed, selected, window) branches; None: ones.
        block_size: compression and selection block size BS (the paper's l' = 64).
        top_n: blocks selected per query, the forced first/previous/current blocks included (16).
        window: sliding-window width w (512).
        scale: σ, default ``d_k ** -0.5``.

    Returns:
        ``(..., H, n, d_v)`` float64.
    """
    o_cmp, o_slc, o_swa = nsa_branches(q, k, v, block_size=block_size, top_n=top_n, window=window, scale=scale)
    if gates is None:
        return o_cmp + o_slc + o_swa
    g = as_float_array("gates", gates, min_ndim=2)
    target = (*o_cmp.shape[:-1], 3)
    check_broadcast_to("gates", g.shape, target, "an array (..., H, n, 3)")  # gates may not enlarge the output
    g = np.broadcast_to(g, target)
    return g[..., 0:1] * o_cmp + g[..., 1:2] * o_slc + g[..., 2:3] * o_swa
