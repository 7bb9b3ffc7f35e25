"""Declaration of sequence-axis Multi-Level Low-Rank (MLR) attention (Kuang et al. 2025)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.mlr as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.forms import _structured as sm
from attnlab.papers import Source, paper
from attnlab.reference.mlr import mlr_attention
from attnlab.reference.softmax import softmax_attention

OP = "mlr_attention"


def _levels(ranks: Any, block_sizes: Any, n: int, m: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ranks = tuple(int(r) for r in ranks)
    if block_sizes is None:
        block_sizes = tuple(max(1, -(-max(n, m) // 2**level)) for level in range(len(ranks)))
    return ranks, tuple(int(b) for b in block_sizes)


def _same_block(n: int, m: int, size: int) -> np.ndarray:
    """Query ``i`` at position ``i + T − n`` and key ``j`` at ``j + T − m`` (``T = max(n, m)``) share a block."""
    span = max(n, m)
    i = np.arange(n)[:, None] + (span - n)
    j = np.arange(m)[None, :] + (span - m)
    return np.floor_divide(i, size) == np.floor_divide(j, size)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    ranks: Any,
    block_sizes: Any = None,
    scale: float | None = None,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Level logits on block-diagonal masks, summed and normalised, then the link, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    ranks, sizes = _levels(ranks, block_sizes, n, m)
    scores = torch.zeros(*q.shape[:-1], m, dtype=q.dtype, device=q.device)
    count = torch.zeros(n, m, dtype=q.dtype, device=q.device)
    start = 0
    for r, size in zip(ranks, sizes):
        inside = torch.from_numpy(_same_block(n, m, size)).to(q.device)
        c = 1.0 / r if scale is None else scale
        scores = scores + torch.where(
            inside, c * (q[..., start : start + r] @ k[..., start : start + r].transpose(-1, -2)), 0.0
        )
        count = count + inside.to(q.dtype)
        start += r
    if normalize == "levels":
        scores = scores / len(ranks)
    elif normalize == "coverage":
        scores = scores / torch.clamp(count, min=1.0)
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device)
    weights = (
        T.masked_softmax(scores, allowed)
        if link == "softmax"
        else scores.masked_fill(~allowed.expand(scores.shape), 0.0)
    )
    return weights @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    ranks: Any,
    block_sizes: Any = None,
    scale: float | None = None,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops: for each pair, the levels whose blocks hold both positions, their scaled chunk products."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    n, m = q.shape[-2], k.shape[-2]
    ranks, sizes = _levels(ranks, block_sizes, n, m)
    vis = sh.visibility(n, m, causal, mask, q.shape[:-2])
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        logits = np.zeros((n, m))
        for i in range(n):
            for j in range(m):
                total, levels, start = 0.0, 0, 0
                for r, size in zip(ranks, sizes):
                    if (i + max(n, m) - n) // size == (j + max(n, m) - m) // size:
                        c = 1.0 / r if scale is None else scale
                        total += c * sum(q[idx][i, t] * k[idx][j, t] for t in range(start, start + r))
                        levels += 1
                    start += r
                if normalize == "levels":
                    total /= len(ranks)
                elif normalize == "coverage" and levels:
                    total /= levels
                logits[i, j] = total
        if link == "softmax":
            out[idx] = sh.softmax_rows_loop(logits, vis[idx], v[idx])
        else:
            out[idx] = np.where(vis[idx], logits, 0.0) @ v[idx]
    return out


# ---------------------------------------------------------------------------------------------
# samples


def split_ranks(d: int, levels: int) -> tuple[int, ...]:
    """``d`` split into ``min(levels, d)`` near-equal positive ranks (larger ranks first)."""
    levels = max(1, min(levels, d))
    return tuple(d // levels + (1 if i < d % levels else 0) for i in range(levels))


def adapt(shape: Shape) -> Shape:
    """Levels ``1 + n mod 3`` (at most d), normalisation and link by a rule of the length."""
    rule: dict[str, Any] = {"ranks": split_ranks(shape.d, 1 + shape.n % 3)}
    if shape.n % 4 == 1:
        rule["normalize"] = "levels"
    elif shape.n % 4 == 3:
        rule["normalize"] = "coverage"
    if shape.n % 5 == 4:
        rule["link"] = "identity"
    return shape.with_options(**{**rule, **shape.option_dict})


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    levels = draw(st.integers(1, min(4, shape.d)))
    cuts = (
        sorted(draw(st.lists(st.integers(1, shape.d - 1), min_size=levels - 1, max_size=levels - 1, unique=True)))
        if levels > 1
        else []
    )
    bounds = [0, *cuts, shape.d]
    options: dict[str, Any] = {"ranks": tuple(b - a for a, b in pairwise(bounds))}
    if draw(st.booleans()):
        options["block_sizes"] = tuple(draw(st.integers(1, shape.keys)) for _ in options["ranks"])
    options["normalize"] = draw(st.sampled_from(["none", "none", "levels", "coverage"]))
    if draw(st.booleans()):
        options["link"] = "identity"
    if draw(st.booleans()):
        options["scale"] = draw(st.floats(0.05, 2.0))
    return options


# ---------------------------------------------------------------------------------------------
# invariants


def _logits(ops: Any, q: np.ndarray, k: np.ndarray, **options: Any) -> np.ndarray:
    """The raw logits ``S``: the identity link on ``V = I`` with nothing hidden."""
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    return ops.mlr_attention(q, k, identity, link="identity", **options)


def _single_level(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kw = sample.kwargs
    d, span = q.shape[-1], max(q.shape[-2], k.shape[-2])
    sigma = kw.get("scale", 1.0 / d)
    plain = {key: kw[key] for key in ("causal", "mask") if key in kw}
    got = ops.mlr_attention(
        q, k, v, ranks=(d,), block_sizes=(span,), **{key: kw[key] for key in ("scale", "link") if key in kw}, **plain
    )
    if kw.get("link", "softmax") == "softmax":
        want = softmax_attention(q, k, v, scale=sigma, **plain)
    else:
        qe, ke, ve = sh.repeat_kv(q, k, v)
        want = np.where(sh.visible_of(sample, qe, ke), sigma * qe @ np.swapaxes(ke, -1, -2), 0.0) @ ve
    sh.close("one global level vs softmax attention at scale 1/d", got, want)


def _block_locality(ops: Any, sample: SampleInput) -> None:
    q, k, _ = sample.args
    rank = sample.kwargs["ranks"][0]
    n, m = q.shape[-2], k.shape[-2]
    size = max(1, max(n, m) // 3)
    got = _logits(ops, q[..., :rank], k[..., :rank], ranks=(rank,), block_sizes=(size,))
    qe, ke = sh.repeat_kv(q[..., :rank], k[..., :rank])
    want = np.where(_same_block(n, m, size), qe @ np.swapaxes(ke, -1, -2) / rank, 0.0)
    sh.close(f"one level of blocks of {size}: logits vanish across blocks", got, want)


def _levels_add(ops: Any, sample: SampleInput) -> None:
    q, k, _ = sample.args
    kw = sample.kwargs
    n, m = q.shape[-2], k.shape[-2]
    ranks, sizes = _levels(kw["ranks"], kw.get("block_sizes"), n, m)
    scale = {"scale": kw["scale"]} if "scale" in kw else {}
    total = _logits(ops, q, k, ranks=ranks, block_sizes=sizes, normalize=kw.get("normalize", "none"), **scale)
    parts, start = [], 0
    for r, size in zip(ranks, sizes):
        parts.append(
            _logits(ops, q[..., start : start + r], k[..., start : start + r], ranks=(r,), block_sizes=(size,), **scale)
        )
        start += r
    summed = np.sum(parts, axis=0)
    if kw.get("normalize") == "levels":
        summed = summed / len(ranks)
    elif kw.get("normalize") == "coverage":
        summed = summed / np.maximum(np.sum([_same_block(n, m, size) for size in sizes], axis=0), 1)
    sh.close("logits of all levels vs the (normalised) sum of one-level logits", total, summed)


def _slice_by_slice(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kw = sample.kwargs
    batch, heads, n, m = q.shape[0], q.shape[1], q.shape[-2], k.shape[-2]
    group = heads // k.shape[1]
    # a different mask for every (batch, head) slice, so that each slice must read its own
    own = np.random.default_rng(5).random((batch, heads, n, m)) < 0.8
    mask = own & sh.visibility(n, m, kw.get("causal", False), kw.get("mask"), (batch, heads))
    options = {**kw, "causal": False, "mask": mask}
    whole = ops.mlr_attention(q, k, v, **options)
    for b in range(batch):
        got = ops.mlr_attention(q[b], k[b], v[b], **{**options, "mask": mask[b]})
        sh.close(f"batch {b} alone as (H, n, d) arrays", got, whole[b])
        for h in range(heads):
            one = (q[b, h], k[b, h // group], v[b, h // group])
            got = ops.mlr_attention(*one, **{**options, "mask": mask[b, h]})
            sh.close(f"slice ({b}, {h}) alone as 2-d arrays", got, whole[b, h])


# ---------------------------------------------------------------------------------------------
# mutants


def _mask_of_first_head(original: Any) -> Any:
    def mutated(n: int, m: int, *, causal: bool, mask: Any, lead: tuple[int, ...] = ()) -> np.ndarray:
        if mask is not None and np.ndim(mask) >= 3:
            mask = np.asarray(mask)[..., :1, :, :]
        return original(n, m, causal=causal, mask=mask, lead=lead)

    return mutated


def _blocks_off_by_one(original: Any) -> Any:
    def mutated(n: int, m: int, size: int) -> np.ndarray:
        rows, cols = module.positions(n, m)
        return ((rows[:, None] + 1) // size) == (cols[None, :] // size)

    return mutated


def _last_level_dropped(original: Any) -> Any:
    def mutated(ranks: tuple[int, ...], scale: float | None) -> tuple[float, ...]:
        scales = original(ranks, scale)
        return (*scales[:-1], 0.0) if len(scales) > 1 else scales

    return mutated


MUTANTS = (
    Mutant(
        "rank_scale_sqrt",
        "level scale 1/√r_l instead of 1/r_l",
        {
            "level_scales": lambda original: (
                lambda ranks, scale: tuple(r**-0.5 if scale is None else scale for r in ranks)
            )
        },
    ),
    Mutant(
        "blocks_top_left",
        "positions aligned top-left (query i at i, key j at j)",
        {"positions": lambda original: lambda n, m: (np.arange(n), np.arange(m))},
    ),
    Mutant("blocks_off_by_one", "query block index ⌊(p_i + 1)/b⌋", {"same_block": _blocks_off_by_one}),
    Mutant(
        "coverage_counts_all",
        "the coverage normalisation divides every entry by L",
        {"coverage": lambda original: lambda n, m, sizes: np.full((n, m), float(len(sizes)))},
    ),
    Mutant("last_level_dropped", "the finest level never contributes", {"level_scales": _last_level_dropped}),
    Mutant(
        "mask_of_first_head",
        "a per-head mask is read from its first head for every head",
        {"allowed_positions": _mask_of_first_head},
    ),
    sm.weights_leak(),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "single_level_is_softmax",
        "one global level (ranks = (d,), block = max(n, m)) is softmax attention at scale 1/d (or the given σ)",
        _single_level,
        ("rank_scale_sqrt",),
    ),
    Invariant(
        "block_locality",
        "a level with blocks of b positions gives zero logits to pairs in different blocks (positions aligned "
        "bottom-right) and q·k / r inside a block",
        _block_locality,
        ("blocks_top_left", "blocks_off_by_one"),
    ),
    Invariant(
        "levels_add",
        "the logits are the sum over levels of one-level logits, then divided by L (levels) or by the number of "
        "covering levels (coverage)",
        _levels_add,
        ("coverage_counts_all", "last_level_dropped"),
    ),
    Invariant(
        "slice_by_slice",
        "each (batch, head) slice computes alone: one batch element as (H, n, d) arrays and one slice as 2-d "
        "arrays give that slice of the batched output, with a different mask per slice",
        _slice_by_slice,
        ("mask_of_first_head",),
    ),
    sm.rows_sum_to_one(OP),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("top_left_causal", "ignores_mask", "output_nudged", "rank_scale_sqrt")
    ),
)


def bad_inputs() -> list[BadInput]:
    base = sh.attention_sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3, options=(("ranks", (2, 2)),)))
    kw = base.kwargs
    no_ranks = {key: val for key, val in kw.items() if key != "ranks"}
    return [
        *sh.bad_attention_inputs(base),
        BadInput("ranks-missing", base.args, no_ranks, TypeError, r"\branks\b"),
        BadInput("ranks-sum", base.args, {**kw, "ranks": (2, 1)}, ValueError, r"\branks\b.*d = 4"),
        BadInput("ranks-zero", base.args, {**kw, "ranks": (4, 0)}, ValueError, r"\branks\[1\]"),
        # anchored at the start: a string must be refused whole, not read as a sequence of bad ranks
        BadInput("ranks-string", base.args, {**kw, "ranks": "2|2"}, TypeError, r"^ranks: .*non-empty sequence"),
        BadInput("ranks-empty", base.args, {**kw, "ranks": ()}, TypeError, r"^ranks: .*non-empty sequence"),
        BadInput("block-sizes-empty", base.args, {**kw, "block_sizes": []}, TypeError, r"^block_sizes: .*non-empty"),
        BadInput(
            "block-sizes-length", base.args, {**kw, "block_sizes": (5,)}, ValueError, r"\bblock_sizes\b.*per level"
        ),
        BadInput("block-size-zero", base.args, {**kw, "block_sizes": (5, 0)}, ValueError, r"\bblock_sizes\[1\]"),
        BadInput("normalize-unknown", base.args, {**kw, "normalize": "rms"}, ValueError, r"\bnormalize\b"),
        BadInput("link-unknown", base.args, {**kw, "link": "relu"}, ValueError, r"\blink\b"),
    ]


FLOP_CONVENTION = (
    "per (batch, head): 2·n·m·d for the level logits (each level's chunk on every pair) and 2·n·m·d_v for the "
    "values, halved when causal"
)


def flops(sample: SampleInput) -> float:
    return sh.softmax_flops(sample)


FORM = Form(
    name="mlr",
    order=14,
    title="Multi-Level Low-Rank attention on the sequence axis (MLR)",
    equation=(
        r"S_{ij} = \sum_l [\lfloor p_i/b_l\rfloor = \lfloor p'_j/b_l\rfloor]\,"
        r"\tfrac{1}{r_l}\,q^{(l)}_i\cdot k^{(l)}_j,\ "
        r"b_l = \lceil T/2^{l-1}\rceil,\quad O = \operatorname{softmax}_{\text{row}}(S + M)V"
    ),
    reference=mlr_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("kuang2025customizing"),
        "abstract; operator as in YilunKuang/structured-attention@4895ad5 (AttentionMLR)",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator is the released code's AttentionMLR (YilunKuang/structured-attention@4895ad5, src/model.py): "
        "head dims split into level chunks of the given ranks, level l on contiguous blocks of b_l = T/2^(l−1) "
        "positions, per-level scale 1/r_l, optional division by L (mlr_divide_by_num_levels) or by the number of "
        "covering levels (mlr_block_divide_by_num_levels), softmax or identity link. The code supports only the "
        "square training shape with block sizes dividing T; here blocks are ⌈T/2^(l−1)⌉ (T = max(n, m)) with a "
        "shorter last block, positions are aligned bottom-right (query i at i + T − n, key j at j + T − m, as "
        "causal) and masks are extensions. The code's "
        "optional QK layer norm acts on q and k before the operator."
    ),
    array_args=("q", "k", "v"),
    row_args=(),
    sample=sh.attention_sample,
    adapt=adapt,
    shapes=sh.attention_shapes(max_d=12, options=_options),
    extra_shapes=(
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=6,
            m=10,
            d=6,
            d_v=3,
            causal=True,
            options=(("block_sizes", (10, 3, 2)), ("normalize", "coverage"), ("ranks", (3, 2, 1))),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=1,
            n=8,
            d=8,
            d_v=2,
            masked=True,
            options=(("link", "identity"), ("normalize", "levels"), ("ranks", (2, 2, 2, 2)), ("scale", 0.4)),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention=FLOP_CONVENTION,
    bench=(
        BenchCase(
            Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True, options=(("ranks", (4, 4)),)), ("tiny",)
        ),
        BenchCase(
            Shape(
                batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, causal=True, options=(("ranks", (16, 16, 16, 16)),)
            ),
            ("quick",),
        ),
        BenchCase(
            Shape(
                batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True, options=(("ranks", (16, 16, 16, 16)),)
            ),
            ("full",),
        ),
        BenchCase(
            Shape(
                batch=4,
                heads=12,
                kv_heads=12,
                n=4096,
                d=64,
                d_v=64,
                causal=True,
                options=(("ranks", (16, 16, 16, 16)),),
            ),
            ("cuda",),
        ),
    ),
    diagnoses=tuple(d for d in sh.attention_diagnoses(mlr_attention) if "scale" not in d.message),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.mlr:mlr_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
