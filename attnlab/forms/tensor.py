"""Declaration of tensor (Kronecker) attention over all key pairs."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.tensor as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.softmax import softmax_attention
from attnlab.reference.tensor import tensor_attention

OP = "tensor_attention"
NAMES = ("q", "k1", "k2", "v1", "v2")


def pair_loop(
    q: np.ndarray, k1: np.ndarray, k2: np.ndarray, v1: np.ndarray, v2: np.ndarray, scale: float, visible: Any = None
) -> np.ndarray:
    """``o_i = Σ_{(j,k) visible} softmax(σ Σ_l q_il k1_jl k2_kl) (v1_j ∘ v2_k)`` one scalar at a time (2-d slices)."""
    n, d = q.shape
    out = np.zeros((n, v1.shape[1]))
    for i in range(n):
        logits = {}
        for j in range(k1.shape[0]):
            for kk in range(k2.shape[0]):
                if visible is None or visible(i, j, kk):
                    logits[j, kk] = scale * sum(q[i, t] * k1[j, t] * k2[kk, t] for t in range(d))
        if not logits:
            continue
        top = max(logits.values())
        weights = {jk: math.exp(s - top) for jk, s in logits.items()}
        total = sum(weights.values())
        for (j, kk), w in weights.items():
            out[i] += (w / total) * v1[j] * v2[kk]
    return out


def brute_force(
    q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False
) -> np.ndarray:
    sigma = 1.0 / np.shape(q)[-1] if scale is None else scale
    visible = (lambda i, j, kk: j <= i and kk <= i) if causal else None
    return sh.over_batch(
        pair_loop, *(np.asarray(a, dtype=np.float64) for a in (q, k1, k2, v1, v2)), scale=sigma, visible=visible
    )


def pair_oracle(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, scale: float, allowed: Any) -> Any:
    """Softmax over all pairs of the full ``(n, m1, m2)`` logit cube (``allowed``: None or booleans)."""
    import torch

    from attnlab.forms import _torch as T

    q, k1, k2, v1, v2 = (T.tensor(a) for a in (q, k1, k2, v1, v2))
    lead = torch.broadcast_shapes(*(t.shape[:-2] for t in (q, k1, k2, v1, v2)))
    q, k1, k2, v1, v2 = (t.expand(*lead, *t.shape[-2:]) for t in (q, k1, k2, v1, v2))
    logits = scale * torch.einsum("...il,...jl,...kl->...ijk", q, k1, k2)
    n, m1, m2 = logits.shape[-3:]
    flat = logits.reshape(*logits.shape[:-2], m1 * m2)
    mask = torch.ones_like(flat, dtype=torch.bool) if allowed is None else allowed.reshape(n, m1 * m2).to(q.device)
    probs = T.masked_softmax(flat, mask).reshape(logits.shape)
    return torch.einsum("...ijk,...jc,...kc->...ic", probs, v1, v2)


def oracle(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False) -> Any:
    import torch

    n, m1, m2 = q.shape[-2], k1.shape[-2], k2.shape[-2]
    allowed = None
    if causal:
        i = torch.arange(n)
        allowed = (torch.arange(m1)[None, :, None] <= i[:, None, None]) & (
            torch.arange(m2)[None, None, :] <= i[:, None, None]
        )
    return pair_oracle(q, k1, k2, v1, v2, 1.0 / q.shape[-1] if scale is None else float(scale), allowed)


def adapt(shape: Shape) -> Shape | None:
    n = min(shape.n, 9)
    m = None if shape.causal or shape.m is None else min(shape.m, 9)
    return replace(
        shape,
        n=n,
        m=m,
        heads=min(shape.heads, 2),
        kv_heads=min(shape.heads, 2),
        d=min(shape.d, 6),
        d_v=min(shape.d_v, 4),
        masked=False,
    )


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    b, h, n = shape.batch, shape.heads, shape.n
    m = n if shape.causal else shape.keys
    m2 = m if shape.causal else max(1, m - 1)
    d, dv = shape.d, shape.d_v
    q = sh.qk_values(rng, (b, h, n, d), shape.values)
    k1 = sh.qk_values(rng, (b, h, m, d), shape.values)
    k2 = sh.qk_values(rng, (b, h, m2, d), "normal")
    v1, v2 = sh.value_values(rng, (b, h, m, dv), shape.values), rng.standard_normal((b, h, m2, dv))
    return SampleInput((q, k1, k2, v1, v2), {"causal": shape.causal, **shape.option_dict}, shape.label())


@st.composite
def shapes(draw: Any, max_n: int = 9) -> Shape:
    causal = draw(st.booleans())
    n = draw(st.integers(1, max_n))
    m = None if causal or draw(st.booleans()) else draw(st.integers(1, max_n))
    heads = draw(st.integers(1, 2))
    shape = Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=heads,
        n=n,
        m=m,
        d=draw(st.integers(1, 6)),
        d_v=draw(st.integers(1, 4)),
        causal=causal,
        values=draw(st.sampled_from(["normal", "large", "shifted", "tied"])),
    )
    return shape.with_options(**sh.positive_scale(draw, shape))


def _pair_visibility(n: int, m1: int, m2: int, causal: bool) -> np.ndarray:
    i = np.arange(n)[:, None, None]
    if not causal:
        return np.ones((n, m1 * m2), bool)
    return ((np.arange(m1)[None, :, None] <= i) & (np.arange(m2)[None, None, :] <= i)).reshape(n, m1 * m2)


def khatri_rao_own(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...jl,...kl->...jkl", a, b).reshape(*a.shape[:-2], a.shape[-2] * b.shape[-2], a.shape[-1])


def _reduces_to_softmax(ops: Any, sample: SampleInput) -> None:
    q, k1, _, v1, _ = sample.args
    causal = sample.kwargs["causal"]
    scale = sample.kwargs.get("scale", 1.0 / q.shape[-1])
    got = ops.tensor_attention(
        q, k1, np.ones_like(k1), v1, np.ones_like(v1), causal=causal, **sample.without("causal").kwargs
    )
    sh.close("tensor(K2 = 1, V2 = 1) vs softmax", got, sh.attention_loop(q, k1, v1, scale=scale, causal=causal))


def _factor_swap(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    sh.close(
        "swapped factors", ops.tensor_attention(q, k2, k1, v2, v1, **sample.kwargs), sample.call(ops.tensor_attention)
    )


def _kronecker(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    vis = _pair_visibility(q.shape[-2], k1.shape[-2], k2.shape[-2], sample.kwargs["causal"])
    scale = sample.kwargs.get("scale", 1.0 / q.shape[-1])
    got = softmax_attention(q, khatri_rao_own(k1, k2), khatri_rao_own(v1, v2), scale=scale, mask=vis)
    sh.close("explicit Kronecker construction", got, sample.call(ops.tensor_attention))


def _pair_permutation(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    rng = np.random.default_rng(6)
    p1, p2 = rng.permutation(k1.shape[-2]), rng.permutation(k2.shape[-2])
    got = ops.tensor_attention(q, k1[..., p1, :], k2[..., p2, :], v1[..., p1, :], v2[..., p2, :], **sample.kwargs)
    sh.close("independently permuted factors", got, sample.call(ops.tensor_attention))


def _first_factor_bias(original: Any) -> Any:
    def mutated(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, **kwargs: Any) -> Any:
        # an extra feature couples q to the first factor only: the pair logit gains 0.3 q_0 k1_j0
        q, k1, k2 = (np.asarray(a, dtype=float) for a in (q, k1, k2))
        q_aug = np.concatenate([q, q[..., :1]], -1)
        k1_aug = np.concatenate([k1, k1[..., :1]], -1)
        k2_aug = np.concatenate([k2, np.full((*k2.shape[:-1], 1), 0.3)], -1)
        kwargs.setdefault("scale", 1.0 / q.shape[-1])
        return original(q_aug, k1_aug, k2_aug, v1, v2, **kwargs)

    return mutated


def _drops_last_first_key(original: Any) -> Any:
    def mutated(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, **kwargs: Any) -> Any:
        if np.shape(k1)[-2] < 2 or kwargs.get("causal"):
            return original(q, k1, k2, v1, v2, **kwargs)
        return original(q, k1[..., :-1, :], k2, v1[..., :-1, :], v2, **kwargs)

    return mutated


def _leaky_pairs(original: Any) -> Any:
    def mutated(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False) -> Any:
        if not causal:
            return original(q, k1, k2, v1, v2, scale=scale)
        qa, k1a, k2a, v1a, v2a = module._prepare(q, k1, k2, v1, v2)
        n = qa.shape[-2]
        j = np.arange(n)
        sigma = 1.0 / qa.shape[-1] if scale is None else scale

        def leaky(rows: np.ndarray) -> np.ndarray:
            return (j[None, :, None] <= rows[:, None, None] + 1) & (j[None, None, :] <= rows[:, None, None])

        return module._pair_attention(qa, k1a, k2a, v1a, v2a, sigma, leaky)

    return mutated


MUTANTS = (
    Mutant("first_factor_bias", "the pair logits gain a term of the first factor alone", {OP: _first_factor_bias}),
    Mutant("drops_last_first_key", "the last key of the first factor never contributes", {OP: _drops_last_first_key}),
    Mutant("leaky_pairs", "a causal query also sees the next key of the first factor", {OP: _leaky_pairs}),
    sh.wrong_default_scale(OP, factor=2.0),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "reduces_to_softmax",
        "K2 = 1, V2 = 1 gives softmax attention softmax(σ Q K1ᵀ) V1",
        _reduces_to_softmax,
        ("wrong_scale", "first_factor_bias"),
    ),
    Invariant(
        "factor_swap",
        "swapping (K1, V1) with (K2, V2) leaves the output unchanged",
        _factor_swap,
        ("first_factor_bias",),
    ),
    Invariant(
        "kronecker_construction",
        "streaming evaluation equals D⁻¹ exp(σ Q (K1 ⊘ K2)ᵀ)(V1 ⊘ V2)",
        _kronecker,
        ("output_nudged", "wrong_scale"),
    ),
    Invariant(
        "pair_permutation",
        "independent key permutations of each factor leave the output unchanged",
        _pair_permutation,
        ("drops_last_first_key",),
        lambda s: not s.kwargs["causal"] and s.args[1].shape[-2] >= 2,
    ),
    sh.causal_prefix(
        OP,
        [0],
        [1, 2, 3, 4],
        mutants=("leaky_pairs",),
        force_causal=False,
        applies=lambda s: sh.is_causal(s) and s.args[0].shape[-2] >= 2,
    ),
    sh.matches_brute_force(OP, brute_force, mutants=("wrong_scale", "output_nudged", "leaky_pairs"), max_n=8),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(n=4))
    q, k1, k2, v1, v2 = base.args
    return [
        *sh.bad_arrays(NAMES, base),
        *sh.bad_options(base, ("scale", "causal")),
        BadInput("k2-head-dim", (q, k1, np.ones((1, 2, 3, 2)), v1, v2), {}, ValueError, r"\bk2\b"),
        BadInput("v1-length", (q, k1, k2, np.ones((1, 2, 9, 8)), v2), {}, ValueError, r"\bk1/v1\b"),
        BadInput("k1-head-dim", (q, k1[..., :-1], k2, v1, v2), {}, ValueError, r"\bk1\b.*last axis of q"),
        BadInput("v2-width", (q, k1, k2, v1, v2[..., :-1]), {}, ValueError, r"\bv2\b.*last axis of v1"),
        BadInput("v2-length", (q, k1, k2, v1, v2[..., :-1, :]), {}, ValueError, r"\bk2/v2\b"),
        BadInput(
            "batch-mismatch", (q, k1, np.concatenate([k2, k2, k2], -3), v1, v2), {}, ValueError, r"\bq/k1/k2/v1/v2\b"
        ),
        BadInput(
            "causal-cross-lengths",
            (q, k1, k2[..., :2, :], v1, v2[..., :2, :]),
            {"causal": True},
            ValueError,
            r"\bq/k1/k2\b",
        ),
        # σ·d·max|q|·max|k1|·max|k2| = (1/8)·8·2e103·1e102·1e102 = 2e307 reaches float64's max / 16
        sh.too_large(
            "pair-logits-overflow", base, {0: 2e103, 1: 1e102, 2: 1e102}, r"\bq\b.*pair logit.*can reach 2e\+307"
        ),
        # max|v1|·max|v2| = 1e154·1e154 = 1e308
        sh.too_large("outputs-overflow", base, {3: 1e154, 4: 1e154}, r"\bv1\b.*output.*can reach 1e\+308"),
    ]


def _flops(s: SampleInput) -> float:
    q, k1, k2 = s.args[:3]
    lead = math.prod(q.shape[:-2])
    return (
        4.0 * lead * q.shape[-2] * k1.shape[-2] * k2.shape[-2] * q.shape[-1] / (3.0 if s.kwargs.get("causal") else 1.0)
    )


FORM = Form(
    name="tensor",
    order=4,
    title="Tensor (Kronecker) attention over all key pairs",
    equation=(
        r"\mathrm{Att} = D^{-1}\exp\!\left(\sigma\, Q (K_1 \oslash "
        r"K_2)^\top\right)(V_1 \oslash V_2),\quad \sigma = 1/d"
    ),
    reference=tensor_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("alman2024tensor"), "§1, Definition 1.2 (tensor attention)"),
    status="exact",
    note=(
        "⊘ is the column-wise Kronecker (Khatri–Rao) product; causal keeps pairs "
        "with j, k <= i and needs n == m1 == m2."
    ),
    array_args=NAMES,
    row_args=(0,),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=6, d=3, d_v=2, options=(("scale", 0.5),)),
        Shape(batch=1, heads=1, kv_heads=1, n=6, d=4, d_v=3, causal=True, options=(("scale", 0.2),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="4·B·H·n·m1·m2·d (a third of it when causal)",
    bench=(
        BenchCase(Shape(batch=1, heads=1, kv_heads=1, n=6, d=4, d_v=4, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=48, d=16, d_v=16), ("quick",)),
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=96, d=16, d_v=16), ("full",)),
    ),
    scaling={
        "numpy": "attnlab.reference.tensor_poly:tensor_attention_poly",
        "numba": "attnlab.fastpath.numba.tensor:tensor_attention_poly",
    },
    scaling_options={"degree": 2},
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.tensor:tensor_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.tensor:tensor_vjp",
            differentiable=True,
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.tensor:tensor_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
