"""Declaration of bilinear Block Tensor-Train (BTT) attention (Kuang et al. 2025)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

import attnlab.reference.btt as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.forms import _structured as sm
from attnlab.papers import Source, paper
from attnlab.reference.btt import btt_attention

OP = "btt_attention"
ARRAYS = ("x", "y", "v", "w_q", "w_k")


def _pair(dim: int) -> tuple[int, int]:
    for f in range(1, dim + 1):
        if dim % f == 0 and f * f > dim:
            return dim // f, f
    raise ValueError(f"no factor pair of {dim}")


def dense_cores(w_q: np.ndarray, w_k: np.ndarray, dim: int, heads: int) -> np.ndarray:
    """``W_h[a'·b + b', c'·d + d'] = Σ_s W_Q[h·b + b', a', c'·s + s] · W_K[c', d', h·b·s + b'·s + s]``, by index."""
    a, b = _pair(dim)
    c, d = a, b
    s = w_q.shape[-1] // c
    dense = np.zeros((heads, dim, dim))
    for h in range(heads):
        for ai in range(a):
            for bi in range(b):
                for ci in range(c):
                    for di in range(d):
                        dense[h, ai * b + bi, ci * d + di] = sum(
                            w_q[h * b + bi, ai, ci * s + si] * w_k[ci, di, h * b * s + bi * s + si] for si in range(s)
                        )
    return dense


def oracle(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    scale: float | None = None,
    layer_norm_keys: bool = True,
    normalize_weights: bool = True,
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Dense ``W_h`` from the cores, keys ``LN(W_h y_j)``, then the link, in torch."""
    import torch
    import torch.nn.functional as F

    from attnlab.forms import _torch as T

    x, y, v, w_q, w_k = (T.tensor(t) for t in (x, y, v, w_q, w_k))
    dim, heads = x.shape[-1], v.shape[-3]
    a, b = _pair(dim)
    s = w_q.shape[-1] // a
    if normalize_weights:

        def cap(w: Any, fan_in: int, fan_out: int) -> Any:
            rms = torch.sqrt((w * w).mean() + 1e-8)
            return w / torch.clamp(rms / math.sqrt(min(fan_in, fan_out) / fan_in**2), min=1.0)

        w_q, w_k = cap(w_q, a * s, a), cap(w_k, b, heads * b * s)
    left = w_q.reshape(heads, b, a, a, s)
    right = w_k.reshape(a, b, heads, b, s)
    dense = torch.einsum("hbacs,cdhbs->habcd", left, right).reshape(heads, dim, dim)
    keys = torch.einsum("hij,...mj->...hmi", dense, y[..., 0, :, :] if y.ndim >= 3 else y)
    if layer_norm_keys:
        keys = F.layer_norm(keys, (dim,), eps=1e-5)
    sigma = dim**-0.5 if scale is None else scale
    scores = sigma * (x @ keys.transpose(-1, -2))
    allowed = T.visibility(x.shape[-2], keys.shape[-2], causal=causal, mask=mask, device=x.device)
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
    scale: float | None = None,
    layer_norm_keys: bool = True,
    normalize_weights: bool = True,
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Loops: cap the cores, build each ``W_h`` entry by entry, key features, layer norm, scores, link."""
    x, y, v, w_q, w_k = (np.asarray(t, dtype=np.float64) for t in (x, y, v, w_q, w_k))
    dim, heads = x.shape[-1], v.shape[-3]
    a, b = _pair(dim)
    s = w_q.shape[-1] // a
    if normalize_weights:
        w_q, w_k = sm.rms_cap(w_q, a * s, a), sm.rms_cap(w_k, b, heads * b * s)
    dense = dense_cores(w_q, w_k, dim, heads)
    lead = np.broadcast_shapes(x.shape[:-2], y.shape[:-2], v.shape[:-2])
    xs, ys, vs = (np.broadcast_to(t, (*lead, *t.shape[-2:])) for t in (x, y, v))
    n, m = x.shape[-2], y.shape[-2]
    sigma = dim**-0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        h = idx[-1]
        keys = np.array(
            [[sum(dense[h, i, j] * ys[idx][t, j] for j in range(dim)) for i in range(dim)] for t in range(m)]
        )
        if layer_norm_keys:
            keys = sm.layer_norm(keys)
        logits = sigma * sh.dot_loop(xs[idx], keys)
        if link == "softmax":
            out[idx] = sh.softmax_rows_loop(logits, vis[idx], vs[idx])
        else:
            out[idx] = np.where(vis[idx], logits, 0.0) @ vs[idx]
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``x (B, 1, n, D)``, ``y (B, 1, m, D)`` (``y = x`` for self-attention), per-head ``v``, and cores of rank
    ``rank`` (option, default 2): N(0, 1) entries as the released code's init (above the RMS cap), or with the
    option ``weights = "small"`` scaled to half the cap (the cap leaves them alone)."""
    rng = np.random.default_rng(seed)
    options = shape.option_dict
    rank, weights = int(options.pop("rank", 2)), options.pop("weights", "random")
    dim, heads = shape.d, shape.heads
    a, b = _pair(dim)
    x = sh.qk_values(rng, (shape.batch, 1, shape.n, dim), shape.values)
    y = x.copy() if shape.m is None else sh.qk_values(rng, (shape.batch, 1, shape.keys, dim), shape.values)
    v = sh.value_values(rng, (shape.batch, heads, shape.keys, shape.d_v), shape.values)
    w_q = rng.standard_normal((heads * b, a, a * rank))
    w_k = rng.standard_normal((a, b, heads * b * rank))
    if weights == "small":
        w_q *= 0.5 * math.sqrt(min(a * rank, a) / (a * rank) ** 2) / math.sqrt(float((w_q**2).mean()))
        w_k *= 0.5 * math.sqrt(min(b, heads * b * rank) / b**2) / math.sqrt(float((w_k**2).mean()))
    kwargs: dict[str, Any] = {"causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((x, y, v, w_q, w_k), kwargs, shape.label())


def adapt(shape: Shape) -> Shape:
    """No GQA (one core per head); ``D = 2d`` so the standard shapes get ``a > 1`` (6 → (2, 3), 8 → (2, 4),
    10 → (2, 5), 12 → (3, 4)); rank, weight size and link by a rule of the length."""
    adapted = replace(shape, kv_heads=shape.heads, d=max(2, 2 * shape.d))
    rule: dict[str, Any] = {"rank": 1 + shape.n % 3, "weights": "small" if shape.n % 2 == 0 else "random"}
    if shape.n % 5 == 2:
        rule["link"] = "identity"
    return adapted.with_options(**{**rule, **shape.option_dict})


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    from hypothesis import strategies as st

    options: dict[str, Any] = {"rank": draw(st.integers(1, 3)), "weights": draw(st.sampled_from(["random", "small"]))}
    if draw(st.booleans()):
        options["scale"] = draw(st.sampled_from([1.0 / shape.d, 0.3]))
    if draw(st.booleans()):
        options["link"] = "identity"
    if draw(st.booleans()):
        options["layer_norm_keys"] = False
    return options


SHAPES = sh.attention_shapes(max_d=12, max_n=16, gqa=False, options=_options).map(
    lambda s: replace(s, kv_heads=s.heads, d=max(2, s.d))
)


# ---------------------------------------------------------------------------------------------
# invariants


def _scale(sample: SampleInput) -> float:
    return float(sample.kwargs.get("scale", sample.args[0].shape[-1] ** -0.5))


def _identity_cores(ops: Any, sample: SampleInput) -> None:
    x, y, v = sample.args[:3]
    dim, heads = x.shape[-1], v.shape[-3]
    a, b = _pair(dim)
    w_q = np.zeros((heads * b, a, a))
    w_k = np.zeros((a, b, heads * b))
    for h in range(heads):
        for bi in range(b):
            w_q[h * b + bi] = np.eye(a)  # W_Q[(h, b'), a', c'] = δ_a'c'
            w_k[:, bi, h * b + bi] = 1.0  # W_K[c', d', (h, b')] = δ_d'b'
    got = ops.btt_attention(x, y, v, w_q, w_k, **{**sample.kwargs, "normalize_weights": False})
    keys = y if not sample.kwargs.get("layer_norm_keys", True) else sm.layer_norm(y)
    sh.close(
        "identity cores (W_h = I) vs standard attention on x and LN(y)",
        got,
        sm.attend(sample, x, keys, v, sample.kwargs.get("scale", x.shape[-1] ** -0.5)),
    )


def _dense_bilinear(ops: Any, sample: SampleInput) -> None:
    x, y, v, w_q, w_k = sample.args
    dense = dense_cores(w_q, w_k, x.shape[-1], v.shape[-3])
    keys = np.einsum("hij,bmj->bhmi", dense, y[:, 0])
    got = ops.btt_attention(*sample.args, **{**sample.kwargs, "layer_norm_keys": False, "normalize_weights": False})
    sh.close(
        "BTT scores vs the dense bilinear form x_iᵀ W_h y_j",
        got,
        sm.attend(sample, x, keys, v, sample.kwargs.get("scale", x.shape[-1] ** -0.5)),
    )


def _below_cap(sample: SampleInput) -> bool:
    x, _, v, w_q, w_k = sample.args
    a, b = _pair(x.shape[-1])
    s = w_q.shape[-1] // a
    rms_q, rms_k = math.sqrt(float((w_q**2).mean()) + 1e-8), math.sqrt(float((w_k**2).mean()) + 1e-8)
    return rms_q <= math.sqrt(min(a * s, a) / (a * s) ** 2) and rms_k <= math.sqrt(min(b, v.shape[-3] * b * s) / b**2)


def _cap_inactive(ops: Any, sample: SampleInput) -> None:
    capped = sample.with_args(*sample.args, normalize_weights=True).call(ops.btt_attention)
    sh.close(
        "RMS cap on cores below the init scale vs no cap",
        capped,
        sample.with_args(*sample.args, normalize_weights=False).call(ops.btt_attention),
    )


# ---------------------------------------------------------------------------------------------
# mutants


def _keys_b_major(original: Any) -> Any:
    def mutated(z: np.ndarray) -> np.ndarray:
        return z.reshape(*z.shape[:-2], -1)

    return mutated


def _rank_index_swapped(original: Any) -> Any:
    def mutated(w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        a, b, c, _, s = sizes
        _, right = original(w_q, w_k, heads, sizes)
        return w_q.reshape(heads, b, a, s, c).swapaxes(-1, -2), right

    return mutated


def _ln_unbiased(original: Any) -> Any:
    def mutated(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        centred = x - x.mean(-1, keepdims=True)
        width = max(x.shape[-1] - 1, 1)
        return centred / np.sqrt((centred * centred).sum(-1, keepdims=True) / width + eps)

    return mutated


def _cap_wrong_fans(original: Any) -> Any:
    def mutated(w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        a, b, c, d, s = sizes
        return module.rms_cap(w_q, fan_in=a, fan_out=c * s), module.rms_cap(w_k, fan_in=d, fan_out=heads * b * s)

    return mutated


MUTANTS = (
    Mutant("keys_b_major", "structured keys flattened b'-major instead of a'-major", {"flatten_keys": _keys_b_major}),
    Mutant(
        "rank_index_swapped", "W_Q's last axis read as (s, c) instead of (c, s)", {"core_blocks": _rank_index_swapped}
    ),
    Mutant("ln_unbiased", "layer norm with the unbiased variance (n − 1)", {"layer_norm": _ln_unbiased}),
    sm.cap_always("the RMS cap rescales every core, also those below the init scale"),
    Mutant("cap_wrong_fans", "W_Q's cap with fan-in and fan-out swapped", {"capped_cores": _cap_wrong_fans}),
    sm.weights_leak(),
    sh.wrong_default_scale(OP),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.drops_last_key(OP, (1, 2)),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "identity_cores",
        "rank-1 identity cores give W_h = I: BTT attention is standard attention of x against LN(y) at scale σ",
        _identity_cores,
        ("keys_b_major", "ln_unbiased", "wrong_scale"),
    ),
    Invariant(
        "dense_bilinear",
        "without layer norm and cap, the scores equal x_iᵀ W_h y_j with W_h built entry by entry from the cores",
        _dense_bilinear,
        ("keys_b_major", "rank_index_swapped"),
    ),
    Invariant(
        "cap_inactive_below_init",
        "cores whose RMS is below the init scale pass the RMS cap unchanged",
        _cap_inactive,
        ("cap_always",),
        _below_cap,
    ),
    sm.rows_sum_to_one(OP),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    sh.query_permutation(OP, [0], key_arg=1, mutants=("output_nudged",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("cap_wrong_fans", "top_left_causal", "ignores_mask", "output_nudged", "wrong_scale"),
        max_n=9,
    ),
)


def bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, m=4, d=6, d_v=3))
    x, y, v, w_q, w_k = base.args
    kw = base.kwargs
    return [
        *sh.bad_arrays(ARRAYS, base),
        *sh.bad_options(base, ("scale", "causal", "mask")),
        BadInput("width-one", (x[..., :1], y[..., :1], v, w_q, w_k), kw, ValueError, r"\bx\b.*D >= 2"),
        BadInput("y-width", (x, y[..., :-1], v, w_q, w_k), kw, ValueError, r"\by\b.*D"),
        BadInput("yv-length", (x, y, v[..., :-1, :], w_q, w_k), kw, ValueError, r"\by\b.*\bv\b"),
        BadInput("v-no-head-axis", (x, y, v[0, 0], w_q, w_k), kw, ValueError, r"\bv\b.*head"),
        BadInput("y-per-head", (x, np.concatenate([y, y], -3), v, w_q, w_k), kw, ValueError, r"\by\b.*shared"),
        BadInput(
            "y-per-head-unbatched", (x, np.concatenate([y[0], y[0]]), v, w_q, w_k), kw, ValueError, r"\by\b.*shared"
        ),
        BadInput(
            "batch-mismatch",
            (np.concatenate([x] * 3), y, np.concatenate([v] * 2), w_q, w_k),
            kw,
            ValueError,
            r"\bv/x/y\b.*broadcast",
        ),
        BadInput("w_q-shape", (x, y, v, w_q[:-1], w_k), kw, ValueError, r"\bw_q\b.*H·b"),
        BadInput("w_q-a-axis", (x, y, v, w_q[:, :-1], w_k), kw, ValueError, r"\bw_q\b.*H·b"),
        BadInput("w_k-rank", (x, y, v, w_q, w_k[..., :-1]), kw, ValueError, r"\bw_k\b.*rank"),
        BadInput("link-unknown", base.args, {**kw, "link": "relu"}, ValueError, r"\blink\b"),
        BadInput("layer-norm-string", base.args, {**kw, "layer_norm_keys": "yes"}, TypeError, r"\blayer_norm_keys\b"),
        BadInput("normalize-int", base.args, {**kw, "normalize_weights": 1}, TypeError, r"\bnormalize_weights\b"),
    ]


FLOP_CONVENTION = (
    "per (batch, head): keys 2·m·b·s·c·(d + a) (the two core contractions), logits 2·n·m·D and values 2·n·m·d_v; "
    "halved logits and values when causal"
)


def flops(sample: SampleInput) -> float:
    x, y, v, w_q, _ = sample.args
    dim, heads = x.shape[-1], v.shape[-3]
    a, b = _pair(dim)
    s = w_q.shape[-1] // a
    batch = math.prod(np.broadcast_shapes(x.shape[:-2], y.shape[:-2], v.shape[:-2])) // heads
    n, m = x.shape[-2], y.shape[-2]
    keys = 2.0 * m * b * s * a * (b + a)
    attend = 2.0 * n * m * (dim + v.shape[-1]) * (0.5 if sample.kwargs.get("causal") else 1.0)
    return batch * heads * (keys + attend)


FORM = Form(
    name="btt",
    order=13,
    title="Bilinear attention with Block Tensor-Train scoring matrices (BTT)",
    equation=(
        r"s^h_{ij} = \sigma\, x_i^\top \mathrm{LN}(W_h y_j),\ "
        r"W_h[(a',b'),(c',d')] = \sum_{s'} W_Q[(h,b'),a',(c',s')]\,W_K[c',d',(h,b',s')],\ "
        r"O = \operatorname{softmax}(S + M)V"
    ),
    reference=btt_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("kuang2025customizing"),
        "abstract; operator as in YilunKuang/structured-attention@4895ad5",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator is the released code's BilinearBTTAttention (YilunKuang/structured-attention@4895ad5, "
        "src/model.py): raw queries x_i, structured keys LN(W_h y_j) with (a, b) = (c, d) = the factor pair of D "
        "whose larger factor is the smallest divisor above √D, cores in the code's layouts (H·b, a, c·s) and "
        "(c, d, H·b·s), the per-call RMS cap on both cores, scale 1/√D (μP: pass scale = 1/D), link softmax or "
        "identity. The layer norm has no affine parameters (its init); the code's optional extra LN on x, and W_V "
        "and W_O, are outside the operator (values are inputs). Bottom-right causal for m != n and boolean masks "
        "are extensions (the code is causal, square)."
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
            d=12,
            d_v=3,
            causal=True,
            options=(("link", "identity"), ("rank", 3), ("scale", 1.0 / 12)),
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
            options=(("layer_norm_keys", False), ("rank", 2), ("weights", "small")),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention=FLOP_CONVENTION,
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=16, d_v=8, causal=True), ("tiny",)),
        BenchCase(
            Shape(batch=1, heads=4, kv_heads=4, n=512, d=64, d_v=16, causal=True, options=(("rank", 2),)), ("quick",)
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=2048, d=256, d_v=32, causal=True, options=(("rank", 2),)), ("full",)
        ),
        BenchCase(
            Shape(batch=4, heads=12, kv_heads=12, n=2048, d=768, d_v=64, causal=True, options=(("rank", 2),)), ("cuda",)
        ),
    ),
    diagnoses=sh.attention_diagnoses(btt_attention, kv_args=(1, 2)),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.btt:btt_attention", "numpy", tiles=(128,)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.btt:btt_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
