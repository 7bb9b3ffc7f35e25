"""Declaration of Hierarchical Self-Attention (HSA; Amizadeh et al. 2025), a reading."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.hsa as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.hsa import PROJECTIONS, hsa_attention
from attnlab.reference.softmax import softmax_attention

OP = "hsa_attention"
TREES = ("random", "balanced", "flat", "chain")


# ---------------------------------------------------------------------------------------------
# trees and their blocks, written again from the definition


def _leaves(tree: Any) -> list[int]:
    return [int(tree)] if isinstance(tree, (int, np.integer)) else [x for child in tree for x in _leaves(child)]


def blocks_of(tree: Any, i: int) -> list[list[int]]:
    """The blocks query ``i`` sees: ``[i]``, then per ancestor (parent first) each other child's tokens."""

    def path_to(node: Any) -> list[tuple[Any, int]] | None:
        if isinstance(node, (int, np.integer)):
            return [] if int(node) == i else None
        for index, child in enumerate(node):
            below = path_to(child)
            if below is not None:
                return [(node, index), *below]
        return None

    path = path_to(tree) or []
    blocks = [[i]]
    for node, index in reversed(path):
        blocks += [_leaves(child) for other, child in enumerate(node) if other != index]
    return blocks


def make_tree(kind: str, n: int, rng: np.random.Generator) -> Any:
    """A tree over tokens ``0 … n − 1``: ``random`` (random splits of a shuffled order), ``balanced``
    (binary, in order), ``flat`` (every token a child of the root) or ``chain`` (one token per level)."""
    tokens = list(range(n))
    if kind == "flat":
        return tuple(tokens)
    if kind == "chain":
        tree: Any = (n - 1,)
        for t in range(n - 2, -1, -1):
            tree = (t, tree)
        return tree
    if kind == "balanced":

        def halve(part: list[int]) -> Any:
            return part[0] if len(part) == 1 else (halve(part[: len(part) // 2]), halve(part[len(part) // 2 :]))

        root = halve(tokens)
        return root if isinstance(root, tuple) else (root,)
    order = [int(t) for t in rng.permutation(n)]

    def split(part: list[int]) -> Any:
        if len(part) == 1:
            return part[0]
        pieces = int(rng.integers(2, min(3, len(part)) + 1))
        cuts = sorted(int(c) for c in rng.choice(np.arange(1, len(part)), size=pieces - 1, replace=False))
        bounds = [0, *cuts, len(part)]
        return tuple(split(part[a:b]) for a, b in itertools.pairwise(bounds))

    root = split(order)
    return root if isinstance(root, tuple) else (root,)


# ---------------------------------------------------------------------------------------------
# oracle and brute force


def oracle(q: Any, k: Any, v: Any, *, tree: Any, scale: float | None = None, projection: str = "forward_kl") -> Any:
    """Token-level block-uniform weights built from the per-query block lists, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n = q.shape[-2]
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    rows = []
    for i in range(n):
        blocks = blocks_of(tree, i)
        row = scores[..., i, :]
        if projection == "forward_kl":
            logits = torch.stack([math.log(len(b)) + row[..., b].mean(-1) for b in blocks], dim=-1)
            mass = torch.softmax(logits, dim=-1)
        else:
            soft = torch.softmax(row, dim=-1)
            mass = torch.stack([soft[..., b].sum(-1) for b in blocks], dim=-1)
        weight = torch.zeros_like(row)
        for index, b in enumerate(blocks):
            weight[..., b] = (mass[..., index] / len(b))[..., None].expand(*row.shape[:-1], len(b))
        rows.append(weight)
    return torch.stack(rows, dim=-2) @ v


def brute_force(
    q: Any, k: Any, v: Any, *, tree: Any, scale: float | None = None, projection: str = "forward_kl"
) -> np.ndarray:
    """Scalar loops over blocks: block-mean scores (forward KL) or block sums of the softmax (reverse KL)."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    n = q.shape[-2]
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        scores = sigma * sh.dot_loop(q[idx], k[idx])
        for i in range(n):
            blocks = blocks_of(tree, i)
            if projection == "forward_kl":
                logits = [math.log(len(b)) + sum(scores[i, j] for j in b) / len(b) for b in blocks]
                top = max(logits)
                raw = [math.exp(x - top) for x in logits]
                mass = [x / sum(raw) for x in raw]
            else:
                top = max(scores[i])
                raw_tok = [math.exp(scores[i, j] - top) for j in range(n)]
                mass = [sum(raw_tok[j] for j in b) / sum(raw_tok) for b in blocks]
            for c in range(v.shape[-1]):
                out[idx][i, c] = sum(p * sum(v[idx][j, c] for j in b) / len(b) for p, b in zip(mass, blocks))
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v)`` of one sequence and a tree of kind ``shape.options['tree']`` (default ``random``)."""
    base = sh.attention_sample(seed, shape)
    kwargs = {k: v for k, v in base.kwargs.items() if k not in ("causal", "tree")}
    kind = shape.option_dict.get("tree", "random")
    kwargs["tree"] = make_tree(kind, shape.n, np.random.default_rng(seed + 3))
    return SampleInput(base.args, kwargs, base.label)


def adapt(shape: Shape) -> Shape:
    return replace(cat.self_attention(shape), causal=False)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = cat.draw_options(draw, {"tree": TREES, "projection": PROJECTIONS})
    if draw(st.booleans()):
        options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
    return options


SHAPES = sh.attention_shapes(max_n=14, cross=False, masks=False, causal=False, options=_options)


# ---------------------------------------------------------------------------------------------
# invariants


def _flat(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    flat = tuple(range(q.shape[-2]))
    want = softmax_attention(q, k, v, scale=s.kwargs.get("scale"))
    for projection in PROJECTIONS:
        got = ops.hsa_attention(q, k, v, **{**s.kwargs, "tree": flat, "projection": projection})
        sh.close(f"flat tree ({projection}) vs softmax attention", got, want)


def _weights(ops: Any, s: SampleInput) -> np.ndarray:
    return cat.weights_of(ops.hsa_attention, s)


def _block_uniform(ops: Any, s: SampleInput) -> None:
    weights = _weights(ops, s)
    n = weights.shape[-1]
    assert np.all(weights >= 0), "negative weight"
    sh.close("row sums", weights.sum(-1), np.ones(weights.shape[:-1]))
    for i in range(n):
        for block in blocks_of(s.kwargs["tree"], i):
            part = weights[..., i, block]
            sh.close(f"weights of query {i} inside block {block}", part, np.broadcast_to(part[..., :1], part.shape))


def _kl(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    safe = np.where(p > 0, p, 1.0)
    return np.sum(np.where(p > 0, p * (np.log(safe) - np.log(np.where(a > 0, a, 1.0))), 0.0), axis=-1)


def _kl_optimal(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    projection = s.kwargs.get("projection", "forward_kl")
    weights = _weights(ops, s)
    soft = softmax_attention(q, k, cat.identity_values(k), scale=s.kwargs.get("scale"))
    objective = (lambda p: _kl(p, soft)) if projection == "forward_kl" else (lambda p: _kl(soft, p))
    best = objective(weights)
    rng = np.random.default_rng(8)
    n = weights.shape[-1]
    for i in range(n):
        blocks = blocks_of(s.kwargs["tree"], i)
        if len(blocks) < 2:
            continue
        masses = np.stack([weights[..., i, b].sum(-1) for b in blocks], axis=-1)
        for _ in range(8):
            direction = rng.standard_normal(len(blocks))
            direction -= direction.mean()
            step = 1e-3 * np.min(masses, axis=-1, keepdims=True) / np.abs(direction).max()
            for sign in (1.0, -1.0):
                moved = np.array(weights)
                for index, b in enumerate(blocks):
                    moved[..., i, b] += (sign * step[..., 0] * direction[index] / len(b))[..., None]
                worse = objective(moved)[..., i] - best[..., i]
                assert np.all(worse >= -1e-13 * (1 + np.abs(best[..., i]))), (
                    f"{projection}: a block-uniform move for query {i} lowers the objective by {-worse.min():.3e}"
                )


def _relabel(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    perm = np.random.default_rng(9).permutation(n)  # new token t is old token perm[t]
    inverse = np.argsort(perm)

    def relabel(node: Any) -> Any:
        return int(inverse[int(node)]) if isinstance(node, (int, np.integer)) else tuple(relabel(c) for c in node)

    moved = ops.hsa_attention(
        q[..., perm, :], k[..., perm, :], v[..., perm, :], **{**s.kwargs, "tree": relabel(s.kwargs["tree"])}
    )
    sh.close("output after relabelling tokens and tree leaves", moved, s.call(ops.hsa_attention)[..., perm, :])


# ---------------------------------------------------------------------------------------------
# mutants


def _no_block_size(original: Any) -> Any:
    def masses(scores: Any, member: Any, sizes: Any, projection: str) -> Any:
        return (
            _mean_softmax(scores, member, sizes)
            if projection == "forward_kl"
            else original(scores, member, sizes, projection)
        )

    return masses


def _mean_softmax(scores: np.ndarray, member: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    used = sizes > 0
    mean = np.einsum("...ij,ijb->...ib", scores, member) / np.where(used, sizes, 1.0)
    logits = np.where(used, mean, -np.inf)
    top = logits.max(axis=-1, keepdims=True)
    e = np.where(used, np.exp(logits - top), 0.0)
    return e / e.sum(-1, keepdims=True)


def _first_token_takes_block(original: Any) -> Any:
    def weights(q: Any, k: Any, *, tree: Any, **kwargs: Any) -> Any:
        out = np.array(original(q, k, tree=tree, **kwargs))
        blocks = module.hsa_blocks(tree, out.shape[-1])
        for i in range(out.shape[-1]):
            for label in np.unique(blocks[i]):
                js = np.flatnonzero(blocks[i] == label)
                total = out[..., i, js].sum(-1)
                out[..., i, js] = 0.0
                out[..., i, js[0]] = total
        return out

    return weights


def _not_spread(original: Any) -> Any:
    def weights(q: Any, k: Any, *, tree: Any, **kwargs: Any) -> Any:
        out = np.array(original(q, k, tree=tree, **kwargs))
        blocks = module.hsa_blocks(tree, out.shape[-1])
        sizes = np.array(
            [[np.sum(blocks[i] == blocks[i, j]) for j in range(out.shape[-1])] for i in range(out.shape[-1])]
        )
        return out * sizes  # each token carries its block's whole mass

    return weights


def _dfs_positions(original: Any) -> Any:
    def blocks(tree: Any, m: int) -> Any:
        counter = iter(range(m))

        def by_position(node: Any) -> Any:
            return next(counter) if isinstance(node, (int, np.integer)) else tuple(by_position(c) for c in node)

        return original(by_position(tree), m)

    return blocks


def _merged_siblings(original: Any) -> Any:
    def blocks(tree: Any, m: int) -> Any:
        labels = np.full((m, m), -1, dtype=np.int64)
        for i in range(m):
            labels[i, i] = 0
            level_of = {}
            for level, block in enumerate(_level_blocks(tree, i), start=1):
                for j in block:
                    level_of[j] = level
            for j, level in level_of.items():
                labels[i, j] = level
        return labels

    return blocks


def _level_blocks(tree: Any, i: int) -> list[list[int]]:
    """Per ancestor of ``i`` (parent first), all other children's tokens merged into one list."""
    merged: list[list[int]] = []

    def walk(node: Any) -> bool:
        if isinstance(node, (int, np.integer)):
            return int(node) == i
        for index, child in enumerate(node):
            if walk(child):
                merged.append([x for other, c in enumerate(node) if other != index for x in _leaves(c)])
                return True
        return False

    walk(tree)
    return [b for b in merged if b]


MUTANTS = (
    cat.wrapping("no_block_size", "forward-KL block logits without log|B|", "block_masses", _no_block_size),
    cat.wrapping(
        "first_token_takes_block",
        "a block's mass goes to its first token, not spread uniformly",
        "hsa_weights",
        _first_token_takes_block,
    ),
    cat.wrapping(
        "mass_not_spread", "every token of a block carries the block's whole mass", "hsa_weights", _not_spread
    ),
    cat.wrapping(
        "dfs_position_blocks",
        "blocks built for tokens in depth-first leaf order, not the tree's labels",
        "hsa_blocks",
        _dfs_positions,
    ),
    cat.wrapping(
        "merged_ancestor_siblings",
        "all other children of an ancestor merged into one block",
        "hsa_blocks",
        _merged_siblings,
    ),
    sh.wrong_default_scale(OP),
    sh.interleaved_gqa(OP, (1, 2)),
)


def _has_tree(s: SampleInput) -> bool:
    return any(len(blocks_of(s.kwargs["tree"], i)) < s.args[0].shape[-2] for i in range(s.args[0].shape[-2]))


INVARIANTS = (
    Invariant(
        "flat_tree_is_softmax",
        "a flat tree (every token a child of the root) gives softmax attention, for both projections",
        _flat,
        ("wrong_scale",),
    ),
    Invariant(
        "block_uniform_rows",
        "weights (output for V = I) are >= 0, rows sum to 1 and are constant inside each block of the query",
        _block_uniform,
        ("first_token_takes_block", "dfs_position_blocks", "mass_not_spread"),
        _has_tree,
    ),
    Invariant(
        "kl_projection_optimal",
        "no block-uniform move lowers KL(P ‖ softmax) (forward) or KL(softmax ‖ P) (reverse)",
        _kl_optimal,
        ("no_block_size", "merged_ancestor_siblings"),
        _has_tree,
    ),
    Invariant(
        "relabel_equivariance",
        "permuting tokens and relabelling the tree's leaves alike permutes the outputs",
        _relabel,
        ("dfs_position_blocks",),
        lambda s: s.args[0].shape[-2] >= 3,
    ),
    sh.convex_hull(OP, mutants=("mass_not_spread",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("no_block_size", "merged_ancestor_siblings", "dfs_position_blocks", "wrong_scale")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=6, d=4, d_v=3))
    q, k, v = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(s, ("scale",)),
        BadInput(
            "tree-missing-token", s.args, {**kw, "tree": (0, 1, (2, 3), 4)}, ValueError, r"\btree\b.*exactly once"
        ),
        BadInput(
            "tree-repeated-token", s.args, {**kw, "tree": (0, 1, (2, 3), 4, 4)}, ValueError, r"\btree\b.*exactly once"
        ),
        BadInput(
            "tree-empty-node", s.args, {**kw, "tree": (0, 1, (), 2, 3, 4, 5)}, ValueError, r"\btree\b.*no children"
        ),
        BadInput("tree-string", s.args, {**kw, "tree": "012345"}, TypeError, r"\btree\b"),
        BadInput("tree-float-leaf", s.args, {**kw, "tree": (0.0, 1, 2, 3, 4, 5)}, TypeError, r"\btree\b"),
        BadInput("projection-unknown", s.args, {**kw, "projection": "js"}, ValueError, r"\bprojection\b"),
        BadInput(
            "cross-attention", (q, k[..., :-1, :], v[..., :-1, :]), kw, ValueError, r"\bq/k\b.*one token sequence"
        ),
        BadInput("k-head-dim", (q, k[..., :-1], v), kw, ValueError, r"\bk\b.*d_k"),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n = q.shape[-2]
    per_query = max(len(blocks_of(s.kwargs["tree"], i)) for i in range(n))
    return 2.0 * lead * n * per_query * (q.shape[-1] + v.shape[-1])


FORM = Form(
    name="hsa",
    title="Hierarchical Self-Attention: softmax projected onto block-uniform weights of a tree (a reading)",
    equation=(
        r"o_i = \sum_{B \in \mathcal B(i)} P_i(B)\, \bar v_B,\quad "
        r"P_i(B) \propto |B|\, e^{\sigma q_i\cdot \bar k_B}\ \ (\text{forward KL})"
    ),
    reference=hsa_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("amizadeh2025hierarchical"),
        "abstract (entropy-minimising attention on nested signals, by DP)",
        abstract_level=True,
    ),
    status="reading",
    note=(
        "Only the abstract was read (no released code known). Reading: for query i the tree splits the keys into "
        "{i} and, per ancestor, one block per other child subtree; the weights are the KL projection of the "
        "softmax row onto block-uniform distributions: forward KL (default; needs only block-mean keys, the "
        "dynamic programme the abstract mentions) or reverse KL (block sums of the softmax). Which direction "
        "the paper uses is not verified. Self-attention over one sequence, no mask or causal option."
    ),
    order=31,
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1, heads=2, kv_heads=1, n=9, d=4, d_v=3, options=(("projection", "reverse_kl"), ("tree", "random"))
        ),
        Shape(batch=1, heads=2, kv_heads=2, n=8, d=3, d_v=2, options=(("scale", 0.7), ("tree", "balanced"))),
        Shape(batch=1, heads=1, kv_heads=1, n=6, d=4, d_v=3, options=(("projection", "reverse_kl"), ("tree", "chain"))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="block-mean scores and values, 2·B·H·n·(blocks per query)·(d_k + d_v), at the largest block count",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, options=(("tree", "balanced"),)), ("tiny",)),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=256, d=64, d_v=64, options=(("tree", "balanced"),)), ("quick",)
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, options=(("tree", "balanced"),)),
            ("full",),
            frozenset({"composed"}),
        ),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, options=(("tree", "balanced"),)),
            ("cuda",),
            frozenset({"numpy", "composed"}),
        ),
    ),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.hsa:hsa_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
