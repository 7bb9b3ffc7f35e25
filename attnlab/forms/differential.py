"""Declaration of differential attention (the DIFF Transformer core, v1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.differential as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.differential import differential_attention

OP = "differential_attention"


def brute_force(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    first = sh.attention_loop(q1, k1, v, scale=scale, causal=causal, mask=mask)
    return first - np.asarray(lam) * sh.attention_loop(q2, k2, v, scale=scale, causal=causal, mask=mask)


def oracle(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """``softmax(σQ1K1ᵀ + M)V − λ softmax(σQ2K2ᵀ + M)V`` with both score matrices materialised."""
    from attnlab.forms import _torch as T
    from attnlab.forms.softmax import oracle as softmax

    first = softmax(q1, k1, v, scale=scale, causal=causal, mask=mask)
    second = softmax(q2, k2, v, scale=scale, causal=causal, mask=mask)
    lam_t = T.tensor(lam, first) if not isinstance(lam, (int, float)) else lam
    return first - lam_t * second


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    q1, k1, v = sh.qkv(rng, shape)
    q2, k2, _ = sh.qkv(rng, shape)
    options = shape.option_dict
    lam: Any = float(rng.uniform(0.0, 1.0))
    if options.pop("lam_per_token", False):  # DIFF v2-style lambda, one per (head, query)
        lam = rng.uniform(0.0, 1.0, (shape.batch, shape.heads, shape.n, 1))
    kwargs: dict[str, Any] = {"lam": lam, "causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((q1, k1, q2, k2, v), kwargs, shape.label())


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = sh.positive_scale(draw, shape)
    if draw(st.booleans()):
        options["lam_per_token"] = True
    return options


def _no_lam(sample: SampleInput) -> dict[str, Any]:
    return sample.without("lam").kwargs


def _lambda_zero(ops: Any, sample: SampleInput) -> None:
    q1, k1, _, _, v = sample.args
    sh.close(
        "lambda = 0 vs softmax",
        ops.differential_attention(*sample.args, **{**sample.kwargs, "lam": 0.0}),
        sh.attention_loop(q1, k1, v, **_no_lam(sample)),
    )


def _same_maps(ops: Any, sample: SampleInput) -> None:
    q1, k1, _, _, v = sample.args
    lam = sample.kwargs["lam"]
    want = (1 - np.asarray(lam)) * sh.attention_loop(q1, k1, v, **_no_lam(sample))
    sh.close(
        "Q2 = Q1, K2 = K1 vs (1 - lambda) softmax", ops.differential_attention(q1, k1, q1, k1, v, **sample.kwargs), want
    )


def _value_split(ops: Any, sample: SampleInput) -> None:
    q1, k1, q2, k2, v = sample.args
    cut = v.shape[-1] // 2
    halves = [
        ops.differential_attention(q1, k1, q2, k2, part, **sample.kwargs) for part in (v[..., :cut], v[..., cut:])
    ]
    sh.close(
        "two value halves concatenated vs one call", np.concatenate(halves, -1), sample.call(ops.differential_attention)
    )


def _row_mass(ops: Any, sample: SampleInput) -> None:
    q1, k1, q2, k2, v = sample.args
    ones = np.ones((*v.shape[:-1], 1))
    qe, ke = sh.repeat_kv(q1, k1)
    has = np.any(sh.visible_of(sample, qe, ke), axis=-1)[..., None]
    want = np.broadcast_to(np.where(has, 1 - np.asarray(sample.kwargs["lam"]), 0.0), (*has.shape[:-1], 1))
    sh.close("row sums of A1 - lambda A2", ops.differential_attention(q1, k1, q2, k2, ones, **sample.kwargs), want)


def _swapped_maps(original: Any) -> Any:
    def mutated(q1: Any, k1: Any, q2: Any, k2: Any, v: Any, **kwargs: Any) -> Any:
        return original(q1, k2, q2, k1, v, **kwargs)  # keys of the two maps exchanged

    return mutated


def _lambda_squared(original: Any) -> Any:
    def mutated(*args: Any, lam: Any, **kwargs: Any) -> Any:
        return original(*args, lam=np.asarray(lam) ** 2 if not isinstance(lam, float) else lam**2, **kwargs)

    return mutated


def _value_cross_talk(original: Any) -> Any:
    def mutated(q1: Any, k1: Any, q2: Any, k2: Any, v: Any, **kwargs: Any) -> Any:
        out = np.array(original(q1, k1, q2, k2, v, **kwargs))
        return out + 1e-6 * np.sum(out, axis=-1, keepdims=True)  # channels leak into each other

    return mutated


def _unnormalised_second(original: Any) -> Any:
    def mutated(q1: Any, k1: Any, q2: Any, k2: Any, v: Any, **kwargs: Any) -> Any:
        return original(q1, k1, q2, k2, v, **kwargs) - 1e-3 * np.asarray(kwargs["lam"])  # a stray mass on row sums

    return mutated


MUTANTS = (
    Mutant("swapped_keys", "the second map uses K1 and the first K2", {OP: _swapped_maps}),
    Mutant("lambda_squared", "lambda enters squared", {OP: _lambda_squared}),
    Mutant("value_cross_talk", "value channels leak into each other", {OP: _value_cross_talk}),
    Mutant(
        "row_mass_offset",
        "every output shifted by 1e-3 lambda (the rows no longer sum to 1 - lambda)",
        {OP: _unnormalised_second},
    ),
    sh.leaky_causal(OP, key_arg=1),
    sh.interleaved_gqa(OP, (1, 3, 4)),
    sh.top_left_causal(OP, key_arg=1),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "lambda_zero_is_softmax", "lambda = 0 gives softmax attention with (Q1, K1)", _lambda_zero, ("swapped_keys",)
    ),
    Invariant(
        "same_maps_scale", "Q2 = Q1, K2 = K1 gives (1 - lambda) softmax attention", _same_maps, ("lambda_squared",)
    ),
    Invariant(
        "value_split_linearity",
        "splitting V into halves and concatenating equals one call",
        _value_split,
        ("value_cross_talk",),
        lambda s: s.args[4].shape[-1] >= 2,
    ),
    Invariant(
        "row_mass", "the combined weights of each visible row sum to 1 - lambda", _row_mass, ("row_mass_offset",)
    ),
    sh.causal_prefix(OP, [0, 2], [1, 3, 4], mutants=("leaky_causal",)),
    sh.gqa_equals_mha(OP, [1, 3, 4], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("top_left_causal", "ignores_mask", "output_nudged", "swapped_keys")
    ),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape())
    q1, k1, q2, k2, v = base.args
    return [
        *sh.bad_arrays(("q1", "k1", "q2", "k2", "v"), base),
        *sh.bad_options(base, ("scale", "causal", "mask")),
        BadInput("lam-missing-none", base.args, {"lam": None}, TypeError, r"\blam\b"),
        BadInput("lam-nan", base.args, {"lam": float("nan")}, ValueError, r"\blam\b"),
        BadInput("lam-bad-shape", base.args, {"lam": np.ones((5, 3, 7))}, ValueError, r"\blam\b"),
        BadInput("lam-enlarges-output", base.args, {"lam": np.ones((5, 1, 1, 1, 1))}, ValueError, r"^lam\b"),
        BadInput("k1-length", (q1, k1[..., :-1, :], q2, k2, v), base.kwargs, ValueError, r"^k1/.*length"),
        BadInput("q2-queries", (q1, k1, q2[..., :-1, :], k2, v), base.kwargs, ValueError, r"^q1/q2: .*length"),
        *(
            BadInput(f"{name}-head-dim", args, base.kwargs, ValueError, rf"^{name}: expected last axis of size 8\b")
            for name, args in (
                ("k1", (q1, k1[..., :-1], q2, k2, v)),
                ("q2", (q1, k1, q2[..., :-1], k2, v)),
                ("k2", (q1, k1, q2, k2[..., :-1], v)),
            )
        ),
        # K1, K2 and V share 3 KV heads: 2 query heads of q1 do not divide into them, nor 4 of q2 next to 6 of q1
        BadInput(
            "q1-kv-heads-not-dividing",
            (
                q1,
                np.concatenate([k1[:, :1]] * 3, -3),
                q2,
                np.concatenate([k2[:, :1]] * 3, -3),
                np.concatenate([v[:, :1]] * 3, -3),
            ),
            base.kwargs,
            ValueError,
            r"^k1: .*2 query heads of q1",
        ),
        BadInput(
            "q2-kv-heads-not-dividing",
            (
                np.concatenate([q1] * 3, -3),
                np.concatenate([k1[:, :1]] * 3, -3),
                np.concatenate([q2] * 2, -3),
                np.concatenate([k2[:, :1]] * 3, -3),
                np.concatenate([v[:, :1]] * 3, -3),
            ),
            base.kwargs,
            ValueError,
            r"^k2: .*4 query heads of q2",
        ),
        BadInput(
            "q1-q2-batch-mismatch",
            (np.concatenate([q1, q1]), k1, np.concatenate([q2, q2, q2]), k2, v),
            base.kwargs,
            ValueError,
            r"^q1/q2: .*broadcast",
        ),
        BadInput("lam-string", base.args, {**base.kwargs, "lam": "half"}, TypeError, r"^lam: "),
    ]


FORM = Form(
    name="differential",
    order=9,
    title="Differential attention (DIFF Transformer core)",
    equation=(
        r"O = \operatorname{softmax}(\sigma Q_1K_1^\top + M)V - \lambda\, "
        r"\operatorname{softmax}(\sigma Q_2K_2^\top + M)V"
    ),
    reference=differential_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("ye2025differential"), "§2.1, Eq. (1)"),
    status="exact",
    note=(
        "v1 operator: lambda a float; an array broadcastable to (..., H, n, 1) gives token- and head-dependent lambda."
    ),
    array_args=("q1", "k1", "q2", "k2", "v"),
    row_args=(0, 2),
    sample=sample,
    shapes=sh.attention_shapes(options=_options),
    extra_shapes=(
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=6,
            d=4,
            d_v=4,
            causal=True,
            options=(("lam_per_token", True), ("scale", 0.5)),
        ),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=8, d=3, d_v=2, masked=True, options=(("scale", 1.3),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=lambda s: sh.softmax_flops(s, value_arg=4, maps=2),
    flop_convention="two softmax maps: 2 x 4·B·H·n·m·d with d = (d_k + d_v)/2, halved when causal",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(differential_attention, kv_args=(1, 3, 4)),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.differential:differential_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.differential:differential_vjp",
            differentiable=True,
            tiles=(128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.differential:differential_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
