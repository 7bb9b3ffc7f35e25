"""Declaration of Affine-Scaled Attention (Bae et al. 2026), attnlab's reading of an abstract-level form."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.affine_scaled as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.affine_scaled import affine_scaled_attention
from attnlab.reference.softmax import softmax_attention

OP = "affine_scaled_attention"
#: Positional arguments indexed by query: q, alpha and (when given) beta.
QUERY_ARGS = (0, 3, 4)


def _row_args(sample: SampleInput) -> list[int]:
    return [i for i in QUERY_ARGS if i < len(sample.args) and isinstance(sample.args[i], np.ndarray)]


def oracle(
    q: Any,
    k: Any,
    v: Any,
    alpha: Any,
    beta: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    tie_beta: bool = False,
) -> Any:
    """The weight matrix ``α a + β·[visible]`` formed explicitly, in torch."""
    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    alpha = T.tensor(alpha, q)
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    allowed = allowed.expand(*q.shape[:-2], q.shape[-2], k.shape[-2])
    weights = T.masked_softmax(T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2)), allowed)
    if tie_beta:
        count = allowed.sum(-1, keepdim=True).to(q.dtype)
        beta = (1 - alpha) / count.clamp(min=1)
    else:
        beta = T.tensor(beta, q)
    return (alpha * weights + beta * allowed.to(q.dtype)) @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    alpha: Any,
    beta: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    tie_beta: bool = False,
) -> np.ndarray:
    """Scalar loops: softmax weights of each visible key, then ``Σ_j (α_i a_ij + β_i) v_j``."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    lead, n, m = q.shape[:-2], q.shape[-2], k.shape[-2]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (*lead, n, 1))
    beta_arr = None if beta is None else np.broadcast_to(np.asarray(beta, dtype=np.float64), (*lead, n, 1))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        logits = sigma * sh.dot_loop(q[idx], k[idx])
        sdpa = sh.softmax_rows_loop(logits, vis[idx], v[idx])
        for i in range(n):
            seen = [j for j in range(m) if vis[idx][i, j]]
            if not seen:
                continue
            a = alpha[idx][i, 0]
            b = (1.0 - a) / len(seen) if tie_beta else beta_arr[idx][i, 0]  # type: ignore[index]
            for c in range(v.shape[-1]):
                out[idx][i, c] = a * sdpa[i, c] + b * sum(v[idx][j, c] for j in seen)
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v, α, β)`` with α ∈ [0.2, 1.8] and β ~ N(0, 0.1²) per (head, query); ``tie_beta`` drops β."""
    base = sh.attention_sample(seed, shape)
    rng = cat.rng_for(seed, 31)
    b, h, n = shape.batch, shape.heads, shape.n
    alpha = rng.uniform(0.2, 1.8, (b, h, n, 1))
    if base.kwargs.get("tie_beta"):
        return SampleInput((*base.args, alpha), base.kwargs, base.label)
    beta = 0.1 * rng.standard_normal((b, h, n, 1))
    return SampleInput((*base.args, alpha, beta), base.kwargs, base.label)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = sh.positive_scale(draw, shape)
    if draw(st.booleans()):
        options["tie_beta"] = True
    return options


def _neutral(sample: SampleInput) -> SampleInput:
    q, k, v, alpha = sample.args[:4]
    return SampleInput(
        (q, k, v, np.ones_like(alpha), np.zeros_like(alpha)), sample.without("tie_beta").kwargs, sample.label
    )


# ---------------------------------------------------------------------------------------------
# invariants


def _neutral_is_sdpa(ops: Any, s: SampleInput) -> None:
    neutral = _neutral(s)
    q, k, v = neutral.args[:3]
    sh.close(
        "α = 1, β = 0 vs softmax attention",
        neutral.call(ops.affine_scaled_attention),
        neutral.with_args(q, k, v).call(softmax_attention),
    )


def _superposition(ops: Any, s: SampleInput) -> None:
    q, k, v, alpha = s.args[:4]
    if s.kwargs.get("tie_beta"):
        counts = cat.visible_counts(s, *sh.repeat_kv(q, k))
        beta = np.where(counts > 0, (1.0 - alpha) / np.maximum(counts, 1), 0.0)
    else:
        beta = s.args[4]
    kw = s.without("tie_beta").kwargs
    one, zero = np.ones_like(alpha), np.zeros_like(alpha)
    scaled = ops.affine_scaled_attention(q, k, v, one, zero, **kw)
    summed = ops.affine_scaled_attention(q, k, v, zero, one, **kw)
    sh.close("O(α, β) vs α·O(1, 0) + β·O(0, 1)", s.call(ops.affine_scaled_attention), alpha * scaled + beta * summed)


def _bias_sums_visible_values(ops: Any, s: SampleInput) -> None:
    q, k, v, alpha = s.args[:4]
    qe, ke, ve = sh.repeat_kv(q, k, v)
    want = sh.visible_of(s, qe, ke).astype(float) @ ve
    zero = np.zeros_like(alpha)
    got = ops.affine_scaled_attention(q, k, v, zero, np.ones_like(alpha), **s.without("tie_beta").kwargs)
    sh.close("O(α = 0, β = 1) vs the sum of visible values", got, want)


def _row_sums(ops: Any, s: SampleInput) -> None:
    q, k, _, alpha = s.args[:4]
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = ops.affine_scaled_attention(q, k, identity, *s.args[3:], **s.kwargs)
    counts = cat.visible_counts(s, *sh.repeat_kv(q, k))
    qe = sh.repeat_kv(q, k)[0]
    alpha_e = np.broadcast_to(alpha, (*qe.shape[:-1], 1))
    if s.kwargs.get("tie_beta"):
        want = (counts > 0).astype(float)
    else:
        want = np.where(counts > 0, alpha_e + counts * np.broadcast_to(s.args[4], alpha_e.shape), 0.0)
    sh.close("row sums of the weights vs α + N β", weights.sum(-1, keepdims=True), want)


def _generic(make: Any) -> Any:
    """Run a generic invariant built for this sample's query-indexed arguments (β is absent when tied)."""

    def check(ops: Any, s: SampleInput) -> None:
        make(_row_args(s)).check(ops, s)

    return check


def _causal_prefix(rows: list[int]) -> Invariant:
    return sh.causal_prefix(OP, rows, [1, 2], mutants=("leaky_causal",))


def _query_permutation(rows: list[int]) -> Invariant:
    return sh.query_permutation(OP, rows, mutants=("output_nudged",))


# ---------------------------------------------------------------------------------------------
# mutants


def _beta_scales_weights(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, alpha: Any, beta: Any = None, *, tie_beta: bool = False, **kw: Any) -> Any:
        if tie_beta or beta is None:
            return original(q, k, v, alpha, beta, tie_beta=tie_beta, **kw)
        return original(q, k, v, np.asarray(alpha) + np.asarray(beta), np.zeros_like(beta), **kw)

    return mutated


def _alpha_inside_softmax(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, alpha: Any, beta: Any = None, **kw: Any) -> Any:
        return original(np.asarray(q) * np.asarray(alpha), k, v, np.ones_like(alpha), beta, **kw)

    return mutated


def _tied_counts_all_keys(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, alpha: Any, beta: Any = None, *, tie_beta: bool = False, **kw: Any) -> Any:
        if not tie_beta:
            return original(q, k, v, alpha, beta, **kw)
        return original(q, k, v, alpha, (1.0 - np.asarray(alpha)) / np.shape(k)[-2], **kw)

    return mutated


def _bias_ignores_mask(original: Any) -> Any:
    def every_key(v: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        return original(v, np.ones_like(allowed))

    return every_key


MUTANTS = (
    *cat.attention_mutants(OP),
    Mutant(
        "beta_scales_weights",
        "the bias multiplies the softmax weights (α + β) a instead of adding β",
        {OP: _beta_scales_weights},
    ),
    Mutant(
        "alpha_inside_softmax", "α scales the logits (softmax(α s)) instead of the weights", {OP: _alpha_inside_softmax}
    ),
    Mutant(
        "tied_beta_counts_all_keys",
        "tied β = (1 − α)/m counts every key instead of the visible ones",
        {OP: _tied_counts_all_keys},
    ),
    Mutant(
        "bias_ignores_mask",
        "the bias term sums every value, visible or not",
        {"visible_value_sums": _bias_ignores_mask},
    ),
)

INVARIANTS = (
    Invariant(
        "neutral_is_sdpa",
        "α = 1, β = 0 is softmax attention (attnlab.reference.softmax)",
        _neutral_is_sdpa,
        ("wrong_scale", "top_left_causal", "ignores_mask"),
    ),
    Invariant(
        "superposition",
        "the output is linear in (α, β): O(α, β) = α·O(1, 0) + β·O(0, 1)",
        _superposition,
        ("alpha_inside_softmax",),
    ),
    Invariant(
        "bias_sums_visible_values",
        "α = 0, β = 1 returns the sum of the visible values (the bias spreads over visible keys only)",
        _bias_sums_visible_values,
        ("beta_scales_weights", "bias_ignores_mask"),
    ),
    Invariant(
        "row_sums",
        "the weights (output for V = I) of row i sum to α_i + N_i β_i; to 1 with the tied bias",
        _row_sums,
        ("tied_beta_counts_all_keys", "bias_ignores_mask"),
    ),
    Invariant(
        "causal_prefix",
        "causal: output i is unchanged when q, α, β, k, v after i are perturbed",
        _generic(_causal_prefix),
        ("leaky_causal",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    Invariant(
        "query_permutation",
        "permuting queries with their α, β (and mask rows) permutes the outputs",
        _generic(_query_permutation),
        ("output_nudged",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("top_left_causal", "wrong_scale", "ignores_mask", "output_nudged", "beta_scales_weights"),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=5, m=6))
    q, k, v, alpha, beta = s.args
    generic = cat.with_extra_args(sh.bad_attention_inputs(s.with_args(q, k, v)), (alpha, beta))
    kw = s.kwargs
    return [
        *generic,
        *cat.bad_named_arrays(("q", "k", "v", "alpha", "beta"), s, ("alpha", "beta")),
        BadInput(
            "alpha-per-channel",
            (q, k, v, np.ones((*alpha.shape[:-1], 3)), beta),
            kw,
            ValueError,
            r"\balpha\b.*per query",
        ),
        BadInput("beta-wrong-length", (q, k, v, alpha, beta[..., :-1, :]), kw, ValueError, r"\bbeta\b.*shape"),
        BadInput("beta-missing", (q, k, v, alpha), kw, ValueError, r"\bbeta\b"),
        BadInput("beta-with-tie", (q, k, v, alpha, beta), {**kw, "tie_beta": True}, ValueError, r"\bbeta\b.*tie_beta"),
        BadInput("tie-beta-string", (q, k, v, alpha, beta), {**kw, "tie_beta": "yes"}, TypeError, r"\btie_beta\b"),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args[:3]
    lead = int(np.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])))
    return sh.softmax_flops(s) + 2.0 * lead * q.shape[-2] * k.shape[-2] * v.shape[-1]


FORM = Form(
    order=20,
    name="affine_scaled",
    title="Affine-Scaled Attention (per-query scale and bias on the softmax weights)",
    equation=(
        r"o_i = \sum_{j\ \text{visible}} (\alpha_i a_{ij} + \beta_i) v_j,\quad "
        r"a_i = \operatorname{softmax}_j(\sigma q_i\cdot k_j)"
    ),
    reference=affine_scaled_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("bae2026affine"), "abstract", abstract_level=True),
    status="reading",
    note=(
        "Reading of an abstract-level description: α_i and β_i are per-(head, query) arrays applied to the "
        "softmax weights of the visible keys, O_i = α_i SDPA_i + β_i Σ_visible v_j. The abstract does not say "
        "whether β is free or tied to α; both are offered (beta array, or tie_beta=True for β = (1 − α)/N_i, "
        "which restores unit row sums). How α, β are computed from the hidden state is the model's business."
    ),
    array_args=("q", "k", "v", "alpha", "beta"),
    row_args=(0, 3, 4),
    sample=sample,
    shapes=sh.attention_shapes(options=_options),
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=2, n=6, m=9, d=4, d_v=3, causal=True, options=(("tie_beta", True),)),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=7,
            m=5,
            d=5,
            d_v=2,
            masked=True,
            options=(("scale", 0.7), ("tie_beta", True)),
        ),
        Shape(batch=2, heads=2, kv_heads=1, n=5, d=3, d_v=4, causal=True, options=(("scale", 1.3),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention=sh.SOFTMAX_FLOPS + ", plus 2·B·H·n·m·d_v for the visible-value sums",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(affine_scaled_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.affine_scaled:affine_scaled_attention",
            "numpy",
            tiles=(128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.affine_scaled:affine_scaled_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
