"""Declaration of NSA-style sparse attention: compression + group-shared top-n block selection + window."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.nsa as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.nsa import nsa_attention
from attnlab.reference.softmax import softmax_attention

OP = "nsa_attention"
KEYS = ("block_size", "top_n", "window", "scale")


def _opts(s: SampleInput, **changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in s.kwargs.items() if k in KEYS}, **changes}


def _group(q: np.ndarray, k: np.ndarray) -> int:
    return 1 if k.shape[-3] == q.shape[-3] else q.shape[-3] // k.shape[-3]


def selection_loop(q: np.ndarray, k: np.ndarray, *, block_size: int, top_n: int, scale: float | None) -> np.ndarray:
    """The selected blocks ``(B, H, n, NB)`` from scalar loops: block means, group-mean probabilities, forced
    first/previous/current blocks, then the best visible blocks (ties to the lower index)."""
    group = _group(q, k)
    qe, ke = sh.repeat_kv(q, k)
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    n, d = q.shape[-2], q.shape[-1]
    full, total = n // block_size, -(-n // block_size)
    out = np.zeros((*qe.shape[:-2], n, total), dtype=bool)
    for b in range(qe.shape[0]):
        means = [
            [
                [sum(ke[b, h, c * block_size + r, e] for r in range(block_size)) / block_size for e in range(d)]
                for c in range(full)
            ]
            for h in range(qe.shape[1])
        ]
        for h in range(qe.shape[1]):
            heads = range((h // group) * group, (h // group + 1) * group)
            for t in range(n):
                scores = [0.0] * total
                for head in heads:
                    logits = {
                        c: sigma * sum(qe[b, head, t, e] * means[head][c][e] for e in range(d))
                        for c in range(full)
                        if (c + 1) * block_size - 1 <= t
                    }
                    if logits:
                        top = max(logits.values())
                        norm = sum(math.exp(x - top) for x in logits.values())
                        for c, x in logits.items():
                            scores[c] += math.exp(x - top) / norm / group
                current = t // block_size
                forced = [c for c in range(total) if c in (0, current, current - 1)]
                ranked = sorted(
                    (c for c in range(total) if c not in forced and (c + 1) * block_size - 1 <= t),
                    key=lambda c: (-scores[c], c),
                )
                for c in (forced + ranked)[:top_n]:
                    out[b, h, t, c] = True
    return out


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    gates: Any = None,
    *,
    block_size: int = 64,
    top_n: int = 16,
    window: int = 512,
    scale: float | None = None,
) -> np.ndarray:
    """The three branches as scalar softmax loops over their key sets, gated."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    chosen = selection_loop(q, k, block_size=block_size, top_n=top_n, scale=scale)
    qe, ke, ve = sh.repeat_kv(q, k, v)
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    n = q.shape[-2]
    full = n // block_size
    g = np.ones((*qe.shape[:-1], 3)) if gates is None else np.broadcast_to(gates, (*qe.shape[:-1], 3))
    out = np.zeros((*qe.shape[:-1], ve.shape[-1]))
    for b in range(qe.shape[0]):
        for h in range(qe.shape[1]):
            kc = np.array(
                [
                    [ke[b, h, c * block_size : (c + 1) * block_size, e].sum() / block_size for e in range(ke.shape[-1])]
                    for c in range(full)
                ]
            ).reshape(full, ke.shape[-1])
            vc = np.array(
                [
                    [ve[b, h, c * block_size : (c + 1) * block_size, e].sum() / block_size for e in range(ve.shape[-1])]
                    for c in range(full)
                ]
            ).reshape(full, ve.shape[-1])
            cmp_vis = np.array([[(c + 1) * block_size - 1 <= t for c in range(full)] for t in range(n)]).reshape(
                n, full
            )
            slc_vis = np.array([[chosen[b, h, t, j // block_size] and j <= t for j in range(n)] for t in range(n)])
            swa_vis = np.array([[t - window < j <= t for j in range(n)] for t in range(n)])
            scores = sigma * sh.dot_loop(qe[b, h], ke[b, h])
            o_cmp = (
                sh.softmax_rows_loop(sigma * sh.dot_loop(qe[b, h], kc), cmp_vis, vc)
                if full
                else np.zeros((n, ve.shape[-1]))
            )
            o_slc = sh.softmax_rows_loop(scores, slc_vis, ve[b, h])
            o_swa = sh.softmax_rows_loop(scores, swa_vis, ve[b, h])
            out[b, h] = g[b, h, :, 0:1] * o_cmp + g[b, h, :, 1:2] * o_slc + g[b, h, :, 2:3] * o_swa
    return out


def oracle(
    q: Any,
    k: Any,
    v: Any,
    gates: Any = None,
    *,
    block_size: int = 64,
    top_n: int = 16,
    window: int = 512,
    scale: float | None = None,
) -> Any:
    """The three branches with dense masks in torch, the selection by a stable sort of the group means."""
    import torch

    from attnlab.forms import _torch as T

    group = 1 if k.shape[-3] == q.shape[-3] else q.shape[-3] // k.shape[-3]
    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, sigma = q.shape[-2], T.default_scale(scale, q.shape[-1])
    full, total = n // block_size, -(-n // block_size)
    t = torch.arange(n, device=q.device)[:, None]
    j = torch.arange(n, device=q.device)[None, :]
    c = torch.arange(total, device=q.device)[None, :]
    scores = sigma * (q @ k.transpose(-1, -2))
    probs = torch.zeros(*q.shape[:-1], total, dtype=q.dtype, device=q.device)
    o_cmp = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    if full:
        kc = k[..., : full * block_size, :].unflatten(-2, (full, block_size)).mean(-2)
        vc = v[..., : full * block_size, :].unflatten(-2, (full, block_size)).mean(-2)
        p = T.masked_softmax(sigma * (q @ kc.transpose(-1, -2)), (c[:, :full] + 1) * block_size - 1 <= t)
        o_cmp = p @ vc
        grouped = p.detach().unflatten(-3, (q.shape[-3] // group, group)).mean(-3, keepdim=True)
        probs[..., :full] = grouped.expand(*grouped.shape[:-3], group, *grouped.shape[-2:]).flatten(-4, -3)
    current = t // block_size
    forced = (c == 0) | (c == current) | (c == current - 1)
    allowed = forced | ((c + 1) * block_size - 1 <= t)
    key = torch.where(forced, torch.inf, torch.where(allowed, probs, -torch.inf))
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices[..., :top_n]
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter(-1, order, True) & allowed
    tokens = torch.gather(chosen, -1, (j // block_size).expand(*chosen.shape[:-1], n)) & (j <= t)
    o_slc = T.masked_softmax(scores, tokens) @ v
    o_swa = T.masked_softmax(scores, (j <= t) & (j > t - window)) @ v
    if gates is None:
        return o_cmp + o_slc + o_swa
    g = T.tensor(gates, q)
    return g[..., 0:1] * o_cmp + g[..., 1:2] * o_slc + g[..., 2:3] * o_swa


# ---------------------------------------------------------------------------------------------
# samples


def _defaults(n: int) -> dict[str, Any]:
    # top_n > 3: the forced first/previous/current blocks leave room for blocks chosen by score
    return {"block_size": 2, "top_n": 4, "window": max(1, n // 3)}


def adapt(shape: Shape) -> Shape:
    base = replace(cat.self_attention(shape), causal=True)
    missing = {k: v for k, v in _defaults(shape.n).items() if k not in shape.option_dict}
    return base.with_options(**missing) if missing else base


def sample(seed: int, shape: Shape) -> SampleInput:
    s = sh.attention_sample(seed, shape)
    q = s.args[0]
    rng = np.random.default_rng(seed + 9)
    gates = 1.0 / (1.0 + np.exp(-rng.standard_normal((*q.shape[:-1], 3))))
    kwargs = {k: v for k, v in s.kwargs.items() if k != "causal"}
    for name, value in _defaults(shape.n).items():
        kwargs.setdefault(name, value)
    return SampleInput((*s.args, gates), kwargs, s.label)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = {
        "block_size": draw(st.integers(1, 5)),
        "top_n": draw(st.integers(1, 7)),
        "window": draw(st.integers(1, 20)),
    }
    if draw(st.booleans()):
        options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
    return options


SHAPES = sh.attention_shapes(max_n=16, max_d=6, cross=False, masks=False, causal=False, options=_options)


# ---------------------------------------------------------------------------------------------
# invariants


def _one_hot(s: SampleInput, branch: int) -> np.ndarray:
    g = np.zeros_like(s.args[3])
    g[..., branch] = 1.0
    return g


def _select_all(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args[:3]
    n = q.shape[-2]
    got = ops.nsa_attention(q, k, v, _one_hot(s, 1), **_opts(s, top_n=-(-n // s.kwargs["block_size"])))
    sh.close(
        "selected branch with every block selected vs causal attention",
        got,
        softmax_attention(q, k, v, causal=True, scale=s.kwargs.get("scale")),
    )


def _full_window(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args[:3]
    got = ops.nsa_attention(q, k, v, _one_hot(s, 2), **_opts(s, window=q.shape[-2]))
    sh.close(
        "window branch with w = n vs causal attention",
        got,
        softmax_attention(q, k, v, causal=True, scale=s.kwargs.get("scale")),
    )


def _compressed(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args[:3]
    bs = s.kwargs["block_size"]
    n = q.shape[-2]
    full = n // bs
    got = ops.nsa_attention(q, k, v, _one_hot(s, 0), **_opts(s))
    if not full:
        sh.close("compressed branch without a complete block", got, np.zeros_like(got))
        return
    kc = np.stack([k[..., c * bs : (c + 1) * bs, :].mean(-2) for c in range(full)], axis=-2)
    vc = np.stack([v[..., c * bs : (c + 1) * bs, :].mean(-2) for c in range(full)], axis=-2)
    visible = (np.arange(full)[None, :] + 1) * bs - 1 <= np.arange(n)[:, None]
    want = softmax_attention(q, kc, vc, mask=visible, scale=s.kwargs.get("scale"))
    sh.close("compressed branch vs softmax over the mean-pooled blocks", got, want)
    sh.close("queries before the first complete block", got[..., : bs - 1, :], np.zeros_like(got[..., : bs - 1, :]))


def _selection(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    opts = {key: s.kwargs[key] for key in ("block_size", "top_n") if key in s.kwargs}
    got = ops.nsa_selection(q, k, scale=s.kwargs.get("scale"), **opts)
    want = selection_loop(q, k, scale=s.kwargs.get("scale"), **opts)
    assert np.array_equal(got, want), f"selected blocks differ at {np.argwhere(got != want)[0].tolist()}"
    group = _group(q, k)
    grouped = got.reshape(*got.shape[:-3], got.shape[-3] // group, group, *got.shape[-2:])
    assert np.all(grouped == grouped[..., :1, :, :]), "the heads of a KV group selected different blocks"


def _gates_linear(ops: Any, s: SampleInput) -> None:
    q, k, v, g = s.args
    opts = _opts(s)
    parts = [ops.nsa_attention(q, k, v, _one_hot(s, c), **opts) for c in range(3)]
    want = sum(g[..., c : c + 1] * parts[c] for c in range(3))
    sh.close("gated output vs Σ_c g_c o_c", s.call(ops.nsa_attention), want)


def _causal_prefix(ops: Any, s: SampleInput) -> None:
    q, k, v, g = s.args
    cut = (q.shape[-2] - 1) // 2
    rng = np.random.default_rng(1)
    moved = [np.array(a) for a in (q, k, v, g)]
    for a in moved:
        a[..., cut + 1 :, :] += rng.standard_normal(a[..., cut + 1 :, :].shape)
    base = s.call(ops.nsa_attention)
    sh.close(
        "outputs at positions <= cut", ops.nsa_attention(*moved, **s.kwargs)[..., : cut + 1, :], base[..., : cut + 1, :]
    )


# ---------------------------------------------------------------------------------------------
# mutants


def _sees_future(original: Any) -> Any:
    def tokens(chosen: np.ndarray, n: int, block_size: int) -> np.ndarray:
        j = np.arange(n)[None, :]
        return np.take_along_axis(chosen, np.broadcast_to(j // block_size, (*chosen.shape[:-1], n)), axis=-1)

    return tokens


def _next_block(original: Any) -> Any:
    def select(scores: np.ndarray, n: int, block_size: int, top_n: int) -> np.ndarray:
        chosen = original(scores, n, block_size, top_n)
        nxt = np.minimum(np.arange(n) // block_size + 1, chosen.shape[-1] - 1)
        out = chosen.copy()
        out[..., np.arange(n), nxt] = True  # the block after the query's own is selected too
        return out

    return select


def _per_head(original: Any) -> Any:
    def scores(probs: np.ndarray, group: int) -> np.ndarray:
        return probs

    return scores


def _bottom_n(original: Any) -> Any:
    def select(scores: np.ndarray, n: int, block_size: int, top_n: int) -> np.ndarray:
        return original(1.0 - scores, n, block_size, top_n)

    return select


def _no_forced(original: Any) -> Any:
    def select(scores: np.ndarray, n: int, block_size: int, top_n: int) -> np.ndarray:
        total = -(-n // block_size)
        padded = np.zeros((*scores.shape[:-1], total))
        padded[..., : scores.shape[-1]] = scores
        visible = (np.arange(total)[None, :] + 1) * block_size - 1 <= np.arange(n)[:, None]
        key = np.where(visible, padded, -np.inf)
        order = np.argsort(-key, axis=-1, kind="stable")[..., :top_n]
        chosen = np.zeros(key.shape, dtype=bool)
        np.put_along_axis(chosen, order, True, axis=-1)
        return chosen & np.broadcast_to(visible, key.shape)

    return select


def _early(original: Any) -> Any:
    def visible(n: int, blocks: int, block_size: int) -> np.ndarray:
        return (np.arange(blocks)[None, :] + 1) * block_size - 2 <= np.arange(n)[:, None]

    return visible


def _sum_pool(original: Any) -> Any:
    def pool(x: np.ndarray, block_size: int) -> np.ndarray:
        return original(x, block_size) * block_size

    return pool


def _gates_softmaxed(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, gates: Any = None, **kwargs: Any) -> Any:
        if gates is None:
            return original(q, k, v, None, **kwargs)
        e = np.exp(np.asarray(gates) - np.max(gates, axis=-1, keepdims=True))
        return original(q, k, v, e / e.sum(-1, keepdims=True), **kwargs)

    return mutated


def _window_short(original: Any) -> Any:
    def mutated(*args: Any, window: int = 512, **kwargs: Any) -> Any:
        return original(*args, window=max(1, window - 1), **kwargs)

    return mutated


MUTANTS = (
    cat.wrapping(
        "selection_sees_future", "the selected branch lacks the token mask j <= t", "selected_tokens", _sees_future
    ),
    cat.wrapping(
        "selects_next_block", "the block after the query's own is selected as well", "select_blocks", _next_block
    ),
    cat.wrapping(
        "per_head_selection",
        "each head selects from its own probabilities, not its group's mean",
        "group_scores",
        _per_head,
    ),
    cat.wrapping("bottom_n", "the lowest-scoring blocks are selected", "select_blocks", _bottom_n),
    cat.wrapping("no_forced_blocks", "the first/previous/current blocks are not forced", "select_blocks", _no_forced),
    cat.wrapping(
        "block_visible_early",
        "a compressed block is visible one token before it completes",
        "compressed_visible",
        _early,
    ),
    cat.wrapping("sum_pooling", "compressed keys/values are block sums, not means", "mean_pool", _sum_pool),
    cat.wrapping("gates_softmaxed", "the three gates are normalised by a softmax", OP, _gates_softmaxed),
    cat.wrapping("window_short", "the window holds w − 1 tokens", OP, _window_short),
    sh.wrong_default_scale(OP),
)


def _group_differs(s: SampleInput) -> bool:
    q, k = s.args[:2]
    return _group(q, k) > 1 and q.shape[-2] >= 2 * s.kwargs["block_size"] + 1


INVARIANTS = (
    Invariant(
        "select_all_is_causal_attention",
        "with every block selected the selected branch is causal softmax attention",
        _select_all,
        ("selection_sees_future", "wrong_scale"),
    ),
    Invariant(
        "full_window_is_causal_attention",
        "with w = n the window branch is causal softmax attention",
        _full_window,
        ("window_short",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "compressed_branch",
        "the compressed branch is softmax over mean-pooled blocks visible once complete; 0 before the first",
        _compressed,
        ("block_visible_early", "sum_pooling"),
    ),
    Invariant(
        "selection_matches_definition",
        "selected = forced first/previous/current blocks + top group-mean compressed probabilities, shared by a group",
        _selection,
        ("per_head_selection", "bottom_n", "no_forced_blocks", "selects_next_block"),
    ),
    Invariant(
        "gates_are_linear",
        "the output is Σ_c g_c o_c over the three branches",
        _gates_linear,
        ("gates_softmaxed",),
    ),
    Invariant(
        "causal_prefix",
        "output t is unchanged when inputs after t are perturbed (selection, compression and window are causal)",
        _causal_prefix,
        ("selection_sees_future", "block_visible_early"),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    sh.matches_brute_force(
        OP, brute_force, mutants=("per_head_selection", "bottom_n", "sum_pooling", "wrong_scale"), max_n=12
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, adapt(Shape(n=8, d=4, d_v=3)))
    q, k, v, g = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v", "gates"), s),
        *sh.bad_options(s, ("scale",)),
        BadInput("block-size-zero", s.args, {**kw, "block_size": 0}, ValueError, r"\bblock_size\b"),
        BadInput("top-n-float", s.args, {**kw, "top_n": 2.0}, TypeError, r"\btop_n\b"),
        BadInput("window-negative", s.args, {**kw, "window": -3}, ValueError, r"\bwindow\b"),
        BadInput("gates-wrong-branches", (q, k, v, g[..., :2]), kw, ValueError, r"\bgates\b.*broadcastable"),
        BadInput("cross-attention", (q, k[..., :-1, :], v[..., :-1, :], g), kw, ValueError, r"\bq/k\b.*one sequence"),
        BadInput("k-head-dim", (q, k[..., :-1], v, g), kw, ValueError, r"\bk\b.*d_k"),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args[:3]
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, d = q.shape[-2], (q.shape[-1] + v.shape[-1]) / 2
    bs, top, w = s.kwargs.get("block_size", 64), s.kwargs.get("top_n", 16), s.kwargs.get("window", 512)
    keys = n / bs + min(n, top * bs) + min(n, w)
    return 4.0 * lead * n * keys * d / 2


FORM = Form(
    name="nsa",
    title="NSA-style sparse attention: compressed + group-shared top-n selected blocks + sliding window",
    equation=(
        r"o_t = \sum_{c\in\{\mathrm{cmp},\mathrm{slc},\mathrm{swa}\}} g_t^c\,"
        r"\operatorname{Attn}(q_t, \tilde K_t^c, \tilde V_t^c)"
    ),
    reference=nsa_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("yuan2025native"),
        "abstract and method (compression, selection, sliding window; gated sum); fla's reference",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator of fla's NSA reference (fla/ops/nsa/naive.py): mean-pooled compression over non-overlapping "
        "blocks of block_size (the paper: a learned MLP over overlapping blocks of stride 16), selection blocks of "
        "the same size, forced first/previous/current blocks, group-mean compressed probabilities ranked (ties to the "
        "lower block), window (i − w, i]. Gates are inputs. fla's kernels need a group size 2^k >= 16; the reference "
        "takes any. GQA is not MHA with repeated KV heads: selection is shared per group."
    ),
    order=27,
    array_args=("q", "k", "v", "gates"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=1, n=13, d=4, d_v=3, options=(("block_size", 3), ("top_n", 4), ("window", 4))),
        Shape(batch=1, heads=4, kv_heads=1, n=12, d=2, d_v=2, options=(("block_size", 2), ("top_n", 4), ("window", 3))),
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=11,
            d=3,
            d_v=2,
            options=(("block_size", 2), ("scale", 0.7), ("top_n", 5), ("window", 2)),
        ),
        Shape(
            batch=2,
            heads=2,
            kv_heads=2,
            n=9,
            d=4,
            d_v=3,
            values="large",
            options=(("block_size", 4), ("top_n", 1), ("window", 9)),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="two GEMMs over each branch's keys: 4·B·H·n·(n/BS + min(n, top_n·BS) + min(n, w))·(d_k + d_v)/4",
    bench=(
        BenchCase(
            Shape(
                batch=1, heads=4, kv_heads=1, n=32, d=8, d_v=8, options=(("block_size", 4), ("top_n", 3), ("window", 8))
            ),
            ("tiny",),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=16,
                kv_heads=1,
                n=512,
                d=64,
                d_v=64,
                options=(("block_size", 32), ("top_n", 4), ("window", 64)),
            ),
            ("quick",),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=16,
                kv_heads=1,
                n=2048,
                d=64,
                d_v=64,
                options=(("block_size", 64), ("top_n", 16), ("window", 512)),
            ),
            ("full",),
            frozenset({"numpy"}),
        ),
        BenchCase(
            Shape(
                batch=2,
                heads=16,
                kv_heads=1,
                n=4096,
                d=128,
                d_v=128,
                options=(("block_size", 64), ("top_n", 16), ("window", 512)),
            ),
            ("cuda",),
            frozenset({"composed", "numpy"}),
        ),
    ),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.nsa:nsa_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
