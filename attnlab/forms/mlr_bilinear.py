"""Declaration of feature-axis (bilinear) Multi-Level Low-Rank attention (Kuang et al. 2025)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.mlr_bilinear as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.forms import _structured as sm
from attnlab.papers import Source, paper
from attnlab.reference.mlr_bilinear import bilinear_mlr_attention

OP = "bilinear_mlr_attention"
ARRAYS = ("x", "y", "v", "w_q", "w_k")


def _level_blocks(weight: np.ndarray, ranks: tuple[int, ...], heads: int) -> list[np.ndarray]:
    """Each level's weights as ``(p_l, D/p_l, H, r_l)``, read from the packed ``(D, H·Σr)`` columns."""
    blocks, start, dim = [], 0, weight.shape[0]
    for level, rank in enumerate(ranks):
        chunks = 2**level
        blocks.append(weight[:, start : start + heads * rank].reshape(chunks, dim // chunks, heads, rank))
        start += heads * rank
    return blocks


def _coefficient(rank: int, chunks: int, mup: bool) -> float:
    return (8.0 / (rank * chunks)) if mup else (rank * chunks) ** -0.5


def oracle(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    ranks: Any,
    mup: bool = False,
    layer_norm_features: bool = True,
    normalize_weights: bool = True,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Level features chunk by chunk, layer norm, scaled level products summed, then the link, in torch."""
    import torch
    import torch.nn.functional as F

    from attnlab.forms import _torch as T

    x, y, v, w_q, w_k = (T.tensor(t) for t in (x, y, v, w_q, w_k))
    x, y = (t[..., 0, :, :] if t.ndim >= 3 else t for t in (x, y))
    dim, heads = x.shape[-1], v.shape[-3]
    scores: Any = 0.0
    start = 0
    for level, rank in enumerate(int(r) for r in ranks):
        chunks, width = 2**level, dim // 2**level
        pair = []
        for tokens, weight in ((x, w_q), (y, w_k)):
            block = weight[:, start : start + heads * rank]
            if normalize_weights:
                rms = torch.sqrt((block * block).mean() + 1e-8)
                block = block / torch.clamp(rms / math.sqrt(min(width, heads * rank) / width**2), min=1.0)
            parts = [
                tokens[..., p * width : (p + 1) * width] @ block[p * width : (p + 1) * width] for p in range(chunks)
            ]
            feats = torch.stack([part.unflatten(-1, (heads, rank)) for part in parts], dim=-1)  # (..., n, H, r, p)
            feats = feats.flatten(-2).movedim(-2, -3)
            pair.append(F.layer_norm(feats, (feats.shape[-1],), eps=1e-5) if layer_norm_features else feats)
        scores = scores + _coefficient(rank, chunks, mup) * (pair[0] @ pair[1].transpose(-1, -2))
        start += heads * rank
    if normalize == "levels":
        scores = scores / len(ranks)
    allowed = T.visibility(x.shape[-2], y.shape[-2], causal=causal, mask=mask, device=x.device)
    weights = (
        T.masked_softmax(scores, allowed)
        if link == "softmax"
        else scores.masked_fill(~allowed.expand(scores.shape), 0.0)
    )
    return weights @ v


def brute_force(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    ranks: Any,
    mup: bool = False,
    layer_norm_features: bool = True,
    normalize_weights: bool = True,
    normalize: str = "none",
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Loops: per head and level, each chunk's projection entry by entry, layer norm, the scaled sum, the link."""
    x, y, v, w_q, w_k = (np.asarray(t, dtype=np.float64) for t in (x, y, v, w_q, w_k))
    ranks = tuple(int(r) for r in ranks)
    dim, heads = x.shape[-1], v.shape[-3]
    blocks_q, blocks_k = _level_blocks(w_q, ranks, heads), _level_blocks(w_k, ranks, heads)
    if normalize_weights:
        blocks_q = [sm.rms_cap(b, dim // 2**lv, heads * ranks[lv]) for lv, b in enumerate(blocks_q)]
        blocks_k = [sm.rms_cap(b, dim // 2**lv, heads * ranks[lv]) for lv, b in enumerate(blocks_k)]
    lead = np.broadcast_shapes(x.shape[:-2], y.shape[:-2], v.shape[:-2])
    xs, ys, vs = (np.broadcast_to(t, (*lead, *t.shape[-2:])) for t in (x, y, v))
    n, m = x.shape[-2], y.shape[-2]
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, v.shape[-1]))

    def feature(token: np.ndarray, block: np.ndarray, h: int) -> np.ndarray:
        chunks, width, _, rank = block.shape
        return np.array(
            [
                sum(token[p * width + t] * block[p, t, h, r] for t in range(width))
                for r in range(rank)
                for p in range(chunks)
            ]
        )

    for idx in np.ndindex(*lead):
        h = idx[-1]
        logits = np.zeros((n, m))
        for lv, rank in enumerate(ranks):
            fq = np.array([feature(xs[idx][i], blocks_q[lv], h) for i in range(n)])
            fk = np.array([feature(ys[idx][j], blocks_k[lv], h) for j in range(m)])
            if layer_norm_features:
                fq, fk = sm.layer_norm(fq), sm.layer_norm(fk)
            logits += _coefficient(rank, 2**lv, mup) * sh.dot_loop(fq, fk)
        if normalize == "levels":
            logits /= len(ranks)
        out[idx] = (
            sh.softmax_rows_loop(logits, vis[idx], vs[idx])
            if link == "softmax"
            else np.where(vis[idx], logits, 0.0) @ vs[idx]
        )
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``x (B, 1, n, D)``, ``y (B, 1, m, D)`` (``y = x`` for self-attention), per-head ``v`` and packed level
    weights for the option ``ranks``: N(0, 1) entries as the released code's init (above the RMS cap), or with
    ``weights = "small"`` scaled to half the cap."""
    rng = np.random.default_rng(seed)
    options = shape.option_dict
    weights = options.pop("weights", "random")
    ranks = tuple(options["ranks"])
    dim, heads = shape.d, shape.heads
    x = sh.qk_values(rng, (shape.batch, 1, shape.n, dim), shape.values)
    y = x.copy() if shape.m is None else sh.qk_values(rng, (shape.batch, 1, shape.keys, dim), shape.values)
    v = sh.value_values(rng, (shape.batch, heads, shape.keys, shape.d_v), shape.values)
    w_q, w_k = (rng.standard_normal((dim, heads * sum(ranks))) for _ in range(2))
    if weights == "small":
        start = 0
        for level, rank in enumerate(ranks):
            width = dim // 2**level
            cap = math.sqrt(min(width, heads * rank) / width**2)
            for w in (w_q, w_k):
                block = w[:, start : start + heads * rank]
                block *= 0.5 * cap / math.sqrt(float((block**2).mean()))
            start += heads * rank
    kwargs: dict[str, Any] = {"causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((x, y, v, w_q, w_k), kwargs, shape.label())


def adapt(shape: Shape) -> Shape:
    """No GQA (one set of weights per head); ``D = 4d`` so three levels fit; levels ``1 + n mod 3``, ranks
    alternating 2 and 3 (a rank-1 level at p = 1 is all zeros after the layer norm); weight size,
    normalisation and link by a rule of the length."""
    levels = 1 + shape.n % 3
    rule: dict[str, Any] = {
        "ranks": tuple(2 + (shape.n + level) % 2 for level in range(levels)),
        "weights": "small" if shape.n % 2 == 0 else "random",
    }
    if shape.n % 4 == 1:
        rule["normalize"] = "levels"
    if shape.n % 5 == 4:
        rule["link"] = "identity"
    return replace(shape, kv_heads=shape.heads, d=4 * shape.d).with_options(**{**rule, **shape.option_dict})


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ranks": tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))),
        "weights": draw(st.sampled_from(["random", "small"])),
        "normalize": draw(st.sampled_from(["none", "levels"])),
    }
    for flag in ("mup", "layer_norm_features"):
        if draw(st.booleans()):
            options[flag] = flag == "mup"
    if draw(st.booleans()):
        options["link"] = "identity"
    return options


SHAPES = sh.attention_shapes(max_d=12, max_n=16, gqa=False, options=_options).map(
    lambda s: replace(s, kv_heads=s.heads, d=4 * max(1, s.d // 3))
)


# ---------------------------------------------------------------------------------------------
# invariants


def _one_level(ops: Any, sample: SampleInput) -> None:
    x, y, v, w_q, w_k = sample.args
    kw = sample.kwargs
    heads, rank = v.shape[-3], kw["ranks"][0]
    cols = slice(0, heads * rank)
    got = ops.bilinear_mlr_attention(
        x, y, v, w_q[:, cols], w_k[:, cols], **{**kw, "ranks": (rank,), "normalize_weights": False, "normalize": "none"}
    )
    fq = np.einsum("bnd,dhr->bhnr", x[:, 0], w_q[:, cols].reshape(-1, heads, rank))
    fk = np.einsum("bnd,dhr->bhnr", y[:, 0], w_k[:, cols].reshape(-1, heads, rank))
    if kw.get("layer_norm_features", True):
        fq, fk = sm.layer_norm(fq), sm.layer_norm(fk)
    scale = _coefficient(rank, 1, kw.get("mup", False))
    sh.close("one level vs standard attention on LN(x W_Q), LN(y W_K)", got, sm.attend(sample, fq, fk, v, scale))


def _dense_block_diagonal(ops: Any, sample: SampleInput) -> None:
    x, y, v, w_q, w_k = sample.args
    kw = sample.kwargs
    ranks, heads, dim = tuple(kw["ranks"]), v.shape[-3], x.shape[-1]
    dense = np.zeros((heads, dim, dim))
    for level, (bq, bk) in enumerate(zip(_level_blocks(w_q, ranks, heads), _level_blocks(w_k, ranks, heads))):
        chunks, width = bq.shape[0], bq.shape[1]
        c = _coefficient(ranks[level], chunks, kw.get("mup", False)) / (
            len(ranks) if kw.get("normalize") == "levels" else 1
        )
        for h in range(heads):
            for p in range(chunks):
                rows = slice(p * width, (p + 1) * width)
                dense[h, rows, rows] += c * bq[p, :, h, :] @ bk[p, :, h, :].T
    got = ops.bilinear_mlr_attention(*sample.args, **{**kw, "layer_norm_features": False, "normalize_weights": False})
    keys = np.einsum("hij,bmj->bhmi", dense, y[:, 0])  # k_j = W_h y_j, so q·k_j = x_iᵀ W_h y_j
    sh.close(
        "bilinear MLR vs x_iᵀ W_h y_j with W_h the scaled sum of block-diagonal levels",
        got,
        sm.attend(sample, x, keys, v, 1.0),
    )


def _below_cap(sample: SampleInput) -> bool:
    _, _, v, w_q, w_k = sample.args
    ranks, heads = tuple(sample.kwargs["ranks"]), v.shape[-3]
    for level, (bq, bk) in enumerate(zip(_level_blocks(w_q, ranks, heads), _level_blocks(w_k, ranks, heads))):
        width = bq.shape[1]
        cap = math.sqrt(min(width, heads * ranks[level]) / width**2)
        if max(math.sqrt(float((b**2).mean()) + 1e-8) for b in (bq, bk)) > cap:
            return False
    return True


def _cap_inactive(ops: Any, sample: SampleInput) -> None:
    capped = sample.with_args(*sample.args, normalize_weights=True).call(ops.bilinear_mlr_attention)
    plain = sample.with_args(*sample.args, normalize_weights=False).call(ops.bilinear_mlr_attention)
    sh.close("RMS cap on level weights below the init scale vs no cap", capped, plain)


# ---------------------------------------------------------------------------------------------
# mutants


def _chunks_reversed(original: Any) -> Any:
    def mutated(x: np.ndarray, weight: np.ndarray, heads: int, rank: int) -> np.ndarray:
        return original(x, weight[::-1], heads, rank)

    return mutated


def _mup_ignored(original: Any) -> Any:
    def mutated(*args: Any, mup: bool = False, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    return mutated


MUTANTS = (
    Mutant(
        "chunks_reversed",
        "chunk p of a token meets the weights of chunk p_l − 1 − p",
        {"level_features": _chunks_reversed},
    ),
    Mutant(
        "scale_rank_only",
        "level scale 1/√r_l instead of 1/√(r_l p_l)",
        {"level_scale": lambda original: lambda rank, chunks, mup: original(rank, 1, mup)},
    ),
    Mutant("mup_ignored", "the μP flag is ignored", {OP: _mup_ignored}),
    Mutant(
        "features_not_normalised",
        "the level features skip the layer norm",
        {"layer_norm": lambda original: lambda x, eps=1e-5: x},
    ),
    sm.cap_always("the RMS cap rescales every level, also those below the init scale"),
    sm.weights_leak(),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.drops_last_key(OP, (1, 2)),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "one_level_is_standard_attention",
        "one level (p = 1) is standard attention of LN(x W_Q^h) against LN(y W_K^h) at scale 1/√r (μP: 8/r)",
        _one_level,
        ("features_not_normalised", "mup_ignored"),
    ),
    Invariant(
        "dense_block_diagonal",
        "without layer norm and cap, the scores are x_iᵀ W_h y_j with W_h = Σ_l c_l blockdiag_p(W_Q^(l,p) W_K^(l,p)ᵀ) "
        "built chunk by chunk (÷ L for normalize = levels)",
        _dense_block_diagonal,
        ("chunks_reversed", "scale_rank_only"),
    ),
    Invariant(
        "cap_inactive_below_init",
        "level weights whose RMS is below the init scale pass the RMS cap unchanged",
        _cap_inactive,
        ("cap_always",),
        _below_cap,
    ),
    sm.rows_sum_to_one(OP),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    sh.query_permutation(OP, [0], key_arg=1, mutants=("output_nudged",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("top_left_causal", "ignores_mask", "output_nudged", "scale_rank_only"), max_n=24
    ),
)


def bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, m=4, d=8, d_v=3, options=(("ranks", (2, 1)),)))
    x, y, v, w_q, w_k = base.args
    kw = base.kwargs
    return [
        *sh.bad_arrays(ARRAYS, base),
        *sh.bad_options(base, ("causal", "mask")),
        BadInput(
            "ranks-missing", base.args, {k: val for k, val in kw.items() if k != "ranks"}, TypeError, r"\branks\b"
        ),
        BadInput(
            "ranks-too-many-levels", base.args, {**kw, "ranks": (1, 1, 1, 1, 1)}, ValueError, r"\branks\b.*divide D"
        ),
        BadInput("ranks-zero", base.args, {**kw, "ranks": (2, 0)}, ValueError, r"\branks\[1\]"),
        BadInput("ranks-empty", base.args, {**kw, "ranks": ()}, TypeError, r"\branks\b.*non-empty"),
        BadInput("ranks-string", base.args, {**kw, "ranks": "21"}, TypeError, r"\branks\b.*sequence"),
        BadInput("w_q-columns", (x, y, v, w_q[:, :-1], w_k), kw, ValueError, r"\bw_q\b.*packed"),
        BadInput("w_k-3d", (x, y, v, w_q, w_k[None]), kw, ValueError, r"\bw_k\b.*2-d"),
        BadInput("x-per-head", (np.concatenate([x, x], -3), y, v, w_q, w_k), kw, ValueError, r"\bx\b.*shared"),
        BadInput("yv-length", (x, y, v[..., :-1, :], w_q, w_k), kw, ValueError, r"\by\b.*\bv\b"),
        BadInput("normalize-coverage", base.args, {**kw, "normalize": "coverage"}, ValueError, r"\bnormalize\b"),
        BadInput("mup-string", base.args, {**kw, "mup": "yes"}, TypeError, r"\bmup\b"),
        BadInput("link-unknown", base.args, {**kw, "link": "relu"}, ValueError, r"\blink\b"),
        BadInput("v-no-head-axis", (x, y, v[0, 0], w_q, w_k), kw, ValueError, r"\bv\b.*head axis"),
        BadInput("y-width", (x, y[..., :-1], v, w_q, w_k), kw, ValueError, r"\by\b.*last axis of x"),
        BadInput("y-per-head", (x, np.concatenate([y, y], -3), v, w_q, w_k), kw, ValueError, r"\by\b.*shared"),
        BadInput("x-3d-per-head", (np.concatenate([x, x], -3)[0], y, v, w_q, w_k), kw, ValueError, r"\bx\b.*shared"),
        BadInput("w_k-columns", (x, y, v, w_q, w_k[:, :-1]), kw, ValueError, r"\bw_k\b.*packed"),
        BadInput(
            "batch-mismatch",
            (np.concatenate([x, x]), np.concatenate([y, y, y]), v, w_q, w_k),
            kw,
            ValueError,
            r"\bv/x/y\b",
        ),
    ]


FLOP_CONVENTION = (
    "per (batch, head): level features 2·(n + m)·D·r_l per level, logits 2·n·m·Σ_l r_l p_l, values 2·n·m·d_v; "
    "halved logits and values when causal"
)


def flops(sample: SampleInput) -> float:
    x, y, v = sample.args[:3]
    ranks = tuple(sample.kwargs["ranks"])
    heads, dim = v.shape[-3], x.shape[-1]
    batch = math.prod(np.broadcast_shapes(x.shape[:-2], y.shape[:-2], v.shape[:-2])) // heads
    n, m = x.shape[-2], y.shape[-2]
    width = sum(r * 2**level for level, r in enumerate(ranks))
    features = 2.0 * (n + m) * dim * sum(ranks)
    attend = 2.0 * n * m * (width + v.shape[-1]) * (0.5 if sample.kwargs.get("causal") else 1.0)
    return batch * heads * (features + attend)


FORM = Form(
    name="mlr_bilinear",
    order=14.5,
    title="Bilinear Multi-Level Low-Rank attention on the feature axis (MLR, high-dimensional inputs)",
    equation=(
        r"s^h_{ij} = \sum_l \tfrac{1}{\sqrt{r_l p_l}}\,\mathrm{LN}(q^{(l)}_h(x_i))\cdot\mathrm{LN}(k^{(l)}_h(y_j)),\ "
        r"q^{(l)}_h(x) = \big[x^{(p)} W_Q^{(l,p)}\big]_{p < 2^{l-1}},\quad O = \operatorname{softmax}(S + M)V"
    ),
    reference=bilinear_mlr_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("kuang2025customizing"),
        "abstract; operator as in YilunKuang/structured-attention@4895ad5 (BilinearMLRAttention)",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator is the released code's BilinearMLRAttention (YilunKuang/structured-attention@4895ad5, "
        "src/model.py): level l with p_l = 2^(l−1) feature chunks, per-chunk projections, layer norm over the "
        "r_l·p_l level features (no affine parameters, the init), scale 1/√(r_l p_l) (μP: 8/(r_l p_l)), the "
        "per-call RMS cap of each level's weights, optional division by L; the code has no coverage variant here. "
        "Weights are packed as (D, H·Σr) per side (level l's columns reshape to the code's (p_l, D/p_l, H·r_l)). "
        "Bottom-right causal for m != n and boolean masks are extensions; W_V and W_O stay outside (values are "
        "inputs)."
    ),
    array_args=ARRAYS,
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=6,
            d=16,
            d_v=3,
            causal=True,
            options=(("link", "identity"), ("mup", True), ("ranks", (2, 1, 1))),
        ),
        Shape(
            batch=2,
            heads=3,
            kv_heads=3,
            n=5,
            m=7,
            d=8,
            d_v=2,
            masked=True,
            options=(("layer_norm_features", False), ("normalize", "levels"), ("ranks", (2, 2)), ("weights", "small")),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention=FLOP_CONVENTION,
    bench=(
        BenchCase(
            Shape(batch=1, heads=2, kv_heads=2, n=16, d=16, d_v=8, causal=True, options=(("ranks", (2, 2)),)), ("tiny",)
        ),
        BenchCase(
            Shape(batch=1, heads=4, kv_heads=4, n=512, d=128, d_v=16, causal=True, options=(("ranks", (8, 4, 2, 1)),)),
            ("quick",),
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=2048, d=256, d_v=32, causal=True, options=(("ranks", (8, 4, 2, 1)),)),
            ("full",),
        ),
        BenchCase(
            Shape(
                batch=4, heads=12, kv_heads=12, n=2048, d=768, d_v=64, causal=True, options=(("ranks", (16, 8, 4, 2)),)
            ),
            ("cuda",),
        ),
    ),
    diagnoses=tuple(d for d in sh.attention_diagnoses(bilinear_mlr_attention) if "scale" not in d.message),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.mlr_bilinear:bilinear_mlr_attention", "numpy", tiles=(128,)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.mlr_bilinear:bilinear_mlr_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
