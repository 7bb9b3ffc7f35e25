"""Declaration of Hedgehog, softmax-mimicking linear attention (Zhang et al. 2024), with its code variants."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.hedgehog as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.hedgehog import FORMS, VARIANTS, hedgehog_attention
from attnlab.reference.linear import linear_attention

OP = "hedgehog_attention"


def phi(y: np.ndarray, variant: str) -> np.ndarray:
    """The four feature maps, written again from their definitions."""
    if variant == "paper":
        return np.concatenate([np.exp(y), np.exp(-y)], axis=-1)
    if variant == "softmax_dim":
        pos = np.exp(y - y.max(-1, keepdims=True))
        neg = np.exp(-y - (-y).max(-1, keepdims=True))
        return np.concatenate([pos / pos.sum(-1, keepdims=True), neg / neg.sum(-1, keepdims=True)], axis=-1)
    if variant == "exp_dim":
        return np.concatenate([np.exp(y - y.max(-1, keepdims=True)), np.exp(-(y - y.min(-1, keepdims=True)))], axis=-1)
    both = np.concatenate([2 * y, -2 * y], axis=-1)
    e = np.exp(both - both.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _projected(s: SampleInput) -> tuple[np.ndarray, np.ndarray]:
    """``(y_q, y_k)`` after the GQA map, computed from the sample's weights independently of the reference."""
    q, k = s.args[:2]
    qe, ke = sh.repeat_kv(q, k)
    w, b = s.kwargs.get("weight"), s.kwargs.get("bias")
    wk, bk = s.kwargs.get("key_weight", w), s.kwargs.get("key_bias", b)

    def apply(x: np.ndarray, w_: Any, b_: Any) -> np.ndarray:
        y = x if w_ is None else np.einsum("...nd,...de->...ne", x, w_)
        return y if b_ is None else y + np.asarray(b_)[..., None, :]

    return apply(qe, w, b), apply(ke, wk, bk)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    weight: Any = None,
    bias: Any = None,
    key_weight: Any = None,
    key_bias: Any = None,
    variant: str = "paper",
    causal: bool = False,
    eps: float = 1e-12,
    **_: Any,
) -> Any:
    """Features of the projected inputs and the ``(n, m)`` kernel matrix, materialised in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))

    def project(x: Any, w: Any, b: Any) -> Any:
        y = x if w is None else x @ T.tensor(w, x)
        return y if b is None else y + T.tensor(b, x)[..., None, :]

    def features(y: Any) -> Any:
        if variant == "paper":
            return torch.cat([torch.exp(y), torch.exp(-y)], -1)
        if variant == "softmax_dim":
            return torch.cat([torch.softmax(y, -1), torch.softmax(-y, -1)], -1)
        if variant == "exp_dim":
            return torch.cat([torch.exp(y - y.amax(-1, keepdim=True)), torch.exp(y.amin(-1, keepdim=True) - y)], -1)
        return torch.softmax(torch.cat([2 * y, -2 * y], -1), -1)

    tied = key_weight is None and key_bias is None
    fq = features(project(q, weight, bias))
    fk = features(project(k, weight, bias) if tied else project(k, key_weight, key_bias))
    kernel = fq @ fk.transpose(-1, -2)
    if causal:
        kernel = kernel * T.visibility(q.shape[-2], k.shape[-2], causal=True, mask=None, device=q.device)
    return (kernel @ v) / (kernel.sum(-1, keepdim=True) + eps)


def brute_force(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    """Scalar loops over pairs: ``κ_ij = Σ_f φ_f(q_i) φ_f(k_j)``, normalised over the visible keys."""
    s = SampleInput((np.asarray(q, dtype=float), np.asarray(k, dtype=float), np.asarray(v, dtype=float)), kwargs)
    yq, yk = _projected(s)
    variant = kwargs.get("variant", "paper")
    fq, fk = phi(yq, variant), phi(yk, variant)
    ve = sh.repeat_kv(*s.args)[2]
    causal, eps = kwargs.get("causal", False), kwargs.get("eps", 1e-12)
    lead = np.broadcast_shapes(fq.shape[:-2], fk.shape[:-2])
    fq, fk, ve = (np.broadcast_to(x, (*lead, *x.shape[-2:])) for x in (fq, fk, ve))
    n, m = fq.shape[-2], fk.shape[-2]
    out = np.zeros((*lead, n, ve.shape[-1]))
    for idx in np.ndindex(*lead):
        kernel = sh.dot_loop(fq[idx], fk[idx])
        for i in range(n):
            keys = range(i + 1) if causal else range(m)
            total = sum(kernel[i, j] for j in keys) + eps
            for c in range(ve.shape[-1]):
                out[idx][i, c] = sum(kernel[i, j] * ve[idx][j, c] for j in keys) / total
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v)`` with a projection ``W = I + 0.3 N`` ``(d, d')`` and bias (per head when ``per_head``)."""
    s = sh.attention_sample(seed, shape)
    opts = dict(s.kwargs)
    rng = np.random.default_rng(seed + 5)
    d = shape.d
    d_out = opts.pop("feature_dim", d)
    lead = (shape.heads,) if opts.pop("per_head", False) else ()
    eye = np.eye(d, d_out)
    opts["weight"] = eye + 0.3 * rng.standard_normal((*lead, d, d_out))
    opts["bias"] = 0.1 * rng.standard_normal((*lead, d_out))
    if opts.pop("untied", False):
        opts["key_weight"] = eye + 0.3 * rng.standard_normal((*lead, d, d_out))
        opts["key_bias"] = 0.1 * rng.standard_normal((*lead, d_out))
    return SampleInput(s.args, opts, s.label)


def adapt(shape: Shape) -> Shape:
    """Linear attention has no mask; causal calls need one sequence (``m = n``)."""
    if shape.causal:
        return replace(shape, m=None, masked=False)
    return replace(shape, masked=False)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    causal = shape.causal
    options: dict[str, Any] = {"variant": draw(st.sampled_from(VARIANTS))}
    options["form"] = draw(st.sampled_from(FORMS if causal else ("quadratic", "recurrent")))
    if options["form"] == "chunked":
        options["chunk_size"] = draw(st.integers(1, 9))
    if draw(st.booleans()):
        options["feature_dim"] = draw(st.integers(1, 6))
    options["per_head"] = draw(st.booleans())
    options["untied"] = draw(st.booleans())
    return options


@st.composite
def _shapes(draw: Any) -> Shape:
    return adapt(draw(sh.attention_shapes(max_n=16, max_d=6, masks=False, values=False, options=_options)))


SHAPES = _shapes()


# ---------------------------------------------------------------------------------------------
# invariants


def _features(ops: Any, s: SampleInput) -> tuple[np.ndarray, np.ndarray]:
    yq, yk = _projected(s)
    variant = s.kwargs.get("variant", "paper")
    return ops.hedgehog_features(yq, variant=variant), ops.hedgehog_features(yk, variant=variant)


def _equals_linear(ops: Any, s: SampleInput) -> None:
    yq, yk = _projected(s)
    v = sh.repeat_kv(*s.args)[2]
    variant = s.kwargs.get("variant", "paper")
    lead = np.broadcast_shapes(yq.shape[:-2], yk.shape[:-2], v.shape[:-2])
    yq, yk, v = (np.broadcast_to(x, (*lead, *x.shape[-2:])) for x in (yq, yk, v))
    want = linear_attention(
        yq,
        yk,
        v,
        feature_map=lambda y: phi(y, variant),
        causal=s.kwargs.get("causal", False),
        eps=s.kwargs.get("eps", 1e-12),
    )
    sh.close("Hedgehog vs linear attention with the Hedgehog feature map", s.call(ops.hedgehog_attention), want)


def _query_scale(ops: Any, s: SampleInput) -> None:
    fq, fk = _features(ops, s)
    v = sh.repeat_kv(*s.args)[2]
    lead = np.broadcast_shapes(fq.shape[:-2], fk.shape[:-2], v.shape[:-2])
    fq, fk, v = (np.broadcast_to(x, (*lead, *x.shape[-2:])) for x in (fq, fk, v))
    c = np.exp(np.random.default_rng(6).uniform(-2.0, 2.0, fq.shape[:-1]))[..., None]
    # exact with ε = 0 (ε itself is not rescaled with the query)
    got = ops.feature_attention(c * fq, fk, v, causal=s.kwargs.get("causal", False), eps=0.0)
    want = ops.hedgehog_attention(*s.args, **{**s.kwargs, "eps": 0.0})
    sh.close("output with φ(q_i) scaled by c_i > 0 vs the operator (ε = 0)", got, want, atol=1e-9)


def _hull(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    ve = sh.repeat_kv(q, k, v)[2]
    n, m = q.shape[-2], k.shape[-2]
    visible = np.broadcast_to(sh.visibility(n, m, s.kwargs.get("causal", False)), (*ve.shape[:-2], n, m))
    out = ops.hedgehog_attention(*s.args, **{**s.kwargs, "eps": 0.0})
    cat.rows_in_hull(out, ve, visible, "hull of the visible values (ε = 0)")


def _feature_sums(ops: Any, s: SampleInput) -> None:
    yq, _ = _projected(s)
    expected = {"softmax_dim": 2.0, "fla": 1.0}
    for variant in VARIANTS:
        f = ops.hedgehog_features(yq, variant=variant)
        assert f.shape[-1] == 2 * yq.shape[-1], f"{variant}: {f.shape[-1]} features, expected 2d' = {2 * yq.shape[-1]}"
        assert np.all(f > 0), f"{variant}: a feature is not strictly positive"
        if variant in expected:
            sh.close(f"{variant} features' sum per token", f.sum(-1), np.full(f.shape[:-1], expected[variant]))
        sh.close(f"{variant} features vs the definition", f, phi(yq, variant))


def _recurrent(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    base = {key: val for key, val in s.kwargs.items() if key not in ("form", "chunk_size", "causal")}
    parallel = ops.hedgehog_attention(q, k, v, causal=True, form="quadratic", **base)
    sh.close("recurrent vs parallel", ops.hedgehog_attention(q, k, v, causal=True, form="recurrent", **base), parallel)
    sh.close(
        "chunked (3) vs parallel",
        ops.hedgehog_attention(q, k, v, causal=True, form="chunked", chunk_size=3, **base),
        parallel,
    )
    cut = n // 2
    first, state = ops.hedgehog_attention(
        q[..., :cut, :], k[..., :cut, :], v[..., :cut, :], causal=True, form="recurrent", return_state=True, **base
    )
    rest = ops.hedgehog_attention(
        q[..., cut:, :], k[..., cut:, :], v[..., cut:, :], causal=True, form="recurrent", initial_state=state, **base
    )
    sh.close("split recurrent run resumed from its state vs parallel", np.concatenate([first, rest], axis=-2), parallel)


def _variants_differ(ops: Any, s: SampleInput) -> None:
    outs = {variant: ops.hedgehog_attention(*s.args, **{**s.kwargs, "variant": variant}) for variant in VARIANTS}
    # the key-side normalisers re-weight the keys: no two variants are the same operator
    for a_index, a in enumerate(VARIANTS):
        for b in VARIANTS[a_index + 1 :]:
            gap = float(np.abs(outs[a] - outs[b]).max())
            assert gap > 1e-6, f"variants {a} and {b} agree to {gap:.1e} on a generic input"


def _generic(s: SampleInput) -> bool:
    q, k = s.args[:2]
    return k.shape[-2] >= 3 and q.shape[-1] >= 2 and s.kwargs["weight"].shape[-1] >= 2


# ---------------------------------------------------------------------------------------------
# mutants


def _exp_minus_one(original: Any) -> Any:
    def features(y: np.ndarray, *, variant: str = "paper") -> np.ndarray:
        return original(y, variant=variant) - (1.0 if variant == "paper" else 0.0)

    return features


def _positive_half_only(original: Any) -> Any:
    def features(y: np.ndarray, *, variant: str = "paper") -> np.ndarray:
        f = np.array(original(y, variant=variant))
        f[..., y.shape[-1] :] = 1e-3 * f[..., y.shape[-1] :]  # the exp(−y) half all but dropped
        return f

    return features


def _joint_softmax(original: Any) -> Any:
    def features(y: np.ndarray, *, variant: str = "paper") -> np.ndarray:
        if variant != "softmax_dim":
            return original(y, variant=variant)
        both = np.concatenate([y, -y], axis=-1)
        e = np.exp(both - both.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)  # one softmax over 2d' (sums to 1, not 2)

    return features


def _key_norm_like_query(original: Any) -> Any:
    def features(y: np.ndarray, *, variant: str = "paper") -> np.ndarray:
        if variant != "exp_dim":
            return original(y, variant=variant)
        return original(y, variant="paper") * np.exp(-np.abs(y).max(-1, keepdims=True))  # exp_dim as a pure rescaling

    return features


def _eps_large(original: Any) -> Any:
    def attention(fq: Any, fk: Any, v: Any, *, causal: bool, eps: float) -> Any:
        return original(fq, fk, v, causal=causal, eps=eps + 1e-2)

    return attention


def _chunks_forget(original: Any) -> Any:
    def chunked(q: Any, k: Any, v: Any, *, feature_map: Any, chunk_size: int = 64, eps: float = 1e-6) -> Any:
        parts = [
            original(
                q[..., a : a + chunk_size, :],
                k[..., a : a + chunk_size, :],
                v[..., a : a + chunk_size, :],
                feature_map=feature_map,
                chunk_size=chunk_size,
                eps=eps,
            )
            for a in range(0, np.shape(q)[-2], chunk_size)
        ]
        return np.concatenate(parts, axis=-2)

    return chunked


def _resume_ignores_state(original: Any) -> Any:
    def recurrent(*args: Any, initial_state: Any = None, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    return recurrent


def _leaky(original: Any) -> Any:
    def attention(fq: Any, fk: Any, v: Any, *, causal: bool, eps: float) -> Any:
        if not causal:
            return original(fq, fk, v, causal=causal, eps=eps)
        kernel = np.tril(fq @ np.swapaxes(fk, -1, -2), 1)
        return (kernel @ v) / (kernel.sum(-1, keepdims=True) + eps)

    return attention


def _variant_ignored(original: Any) -> Any:
    def features(y: np.ndarray, *, variant: str = "paper") -> np.ndarray:
        return original(y, variant="paper")

    return features


MUTANTS = (
    cat.wrapping(
        "paper_features_minus_one",
        "the paper's features are exp(±y) − 1 (not positive)",
        "hedgehog_features",
        _exp_minus_one,
    ),
    cat.wrapping(
        "negative_half_dropped",
        "the exp(−y) half is scaled down to nearly nothing",
        "hedgehog_features",
        _positive_half_only,
    ),
    cat.wrapping(
        "softmax_dim_joint", "softmax_dim takes one softmax over all 2d' features", "hedgehog_features", _joint_softmax
    ),
    cat.wrapping(
        "exp_dim_as_rescaling",
        "exp_dim implemented as one per-token rescaling of the paper's features",
        "hedgehog_features",
        _key_norm_like_query,
    ),
    cat.wrapping(
        "variant_ignored", "every variant computes the paper's features", "hedgehog_features", _variant_ignored
    ),
    cat.wrapping("eps_large", "ε is 1e-2 larger than asked", "feature_attention", _eps_large),
    cat.wrapping(
        "chunks_forget_state", "each chunk starts from an empty state", "linear_attention_chunked", _chunks_forget
    ),
    cat.wrapping(
        "resume_ignores_state",
        "a resumed recurrent call drops its initial state",
        "linear_attention_recurrent",
        _resume_ignores_state,
    ),
    cat.wrapping("causal_sees_next", "a causal query also sees the next key", "feature_attention", _leaky),
    sh.interleaved_gqa(OP, (1, 2)),
)

INVARIANTS = (
    Invariant(
        "equals_linear_attention",
        "Hedgehog is linear attention (Katharopoulos et al.) of the projected inputs with its feature map",
        _equals_linear,
        ("paper_features_minus_one", "negative_half_dropped", "softmax_dim_joint", "eps_large", "causal_sees_next"),
    ),
    Invariant(
        "query_scale_invariance",
        "the operator is normalised linear attention of its features; φ(q_i) ← c_i φ(q_i) changes nothing (ε = 0)",
        _query_scale,
        ("eps_large",),
    ),
    Invariant(
        "feature_maps",
        "every variant's features are positive with 2d' entries; softmax_dim's sum to 2 per token, fla's to 1",
        _feature_sums,
        ("softmax_dim_joint", "paper_features_minus_one", "exp_dim_as_rescaling"),
        min_samples=1,
    ),
    Invariant(
        "recurrent_equals_parallel",
        "recurrent, chunked and parallel evaluations agree; a split run resumed from its state equals one run",
        _recurrent,
        ("chunks_forget_state", "resume_ignores_state", "causal_sees_next"),
        lambda s: s.args[0].shape[-2] >= 4 and s.args[0].shape[-2] == s.args[1].shape[-2],
    ),
    Invariant(
        "variants_are_different_operators",
        "the key-side normalisers re-weight keys: the four variants give different outputs on generic inputs",
        _variants_differ,
        ("variant_ignored",),
        _generic,
    ),
    Invariant(
        "convex_hull",
        "with ε = 0 the weights are positive and normalised: outputs lie in the hull of the visible values",
        _hull,
        ("paper_features_minus_one",),
    ),
    sh.causal_prefix(
        OP,
        [0],
        [1, 2],
        mutants=("causal_sees_next",),
        applies=lambda s: s.args[0].shape[-2] >= 2 and s.args[0].shape[-2] == s.args[1].shape[-2],
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("paper_features_minus_one", "softmax_dim_joint", "eps_large", "causal_sees_next")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=6, d=4, d_v=3, causal=True))
    q, k, v = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        BadInput("variant-unknown", s.args, {**kw, "variant": "relu"}, ValueError, r"\bvariant\b"),
        BadInput("form-unknown", s.args, {**kw, "form": "scan"}, ValueError, r"\bform\b"),
        BadInput("eps-negative", s.args, {**kw, "eps": -1.0}, ValueError, r"\beps\b"),
        BadInput("causal-string", s.args, {**kw, "causal": "yes"}, TypeError, r"\bcausal\b"),
        BadInput("causal-cross", (q, k[..., :-1, :], v[..., :-1, :]), kw, ValueError, r"\bq/k\b.*equal"),
        BadInput("weight-wrong-d", s.args, {**kw, "weight": np.eye(3)}, ValueError, r"\bweight\b.*d_k"),
        BadInput("weight-nan", s.args, {**kw, "weight": np.full((4, 4), np.nan)}, ValueError, r"\bweight\b.*NaN"),
        BadInput("bias-wrong-size", s.args, {**kw, "bias": np.zeros(3)}, ValueError, r"\bbias\b"),
        BadInput("key-weight-other-d", s.args, {**kw, "key_weight": np.eye(4, 2)}, ValueError, r"\bkey_"),
        BadInput(
            "chunked-non-causal", s.args, {**kw, "causal": False, "form": "chunked"}, ValueError, r"\bform\b.*causal"
        ),
        BadInput("state-without-recurrent", s.args, {**kw, "return_state": True}, ValueError, r"\breturn_state\b"),
        BadInput(
            "weight-heads-mismatch", s.args, {**kw, "weight": np.ones((3, 4, 4))}, ValueError, r"\bweight\b.*broadcast"
        ),
        BadInput("weight-1d", s.args, {**kw, "weight": np.ones(4)}, ValueError, r"\bweight\b"),
        BadInput("bias-heads-mismatch", s.args, {**kw, "bias": np.ones((3, 4))}, ValueError, r"\bbias\b.*broadcast"),
        BadInput("bias-string", s.args, {**kw, "bias": "zero"}, TypeError, r"\bbias\b"),
        BadInput("key-bias-nan", s.args, {**kw, "key_bias": np.full(4, np.nan)}, ValueError, r"\bkey_bias\b.*NaN"),
        # with W = I, b = 0: |y_q| + |y_k| = 400 + 400 puts e^(y_q + y_k) beyond float64 (the paper's map is
        # evaluated unshifted)
        dataclasses.replace(
            sh.too_large("paper-exponents-overflow", s, {0: 400.0, 1: 400.0}, r"\bq\b.*e\^\(y_q \+ y_k\) reach e\^800"),
            kwargs={**kw, "weight": np.eye(4), "bias": np.zeros(4)},
        ),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, m, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    features = 2 * s.kwargs["weight"].shape[-1]
    return lead * (2.0 * (n + m) * d * features / 2 + 4.0 * max(n, m) * features * (dv + 1))


FORM = Form(
    name="hedgehog",
    title="Hedgehog: linear attention with a learnable softmax-mimicking feature map",
    equation=(
        r"o_i = \frac{\sum_j \phi(q_i)\cdot\phi(k_j)\, v_j}{\sum_j \phi(q_i)\cdot\phi(k_j) + \varepsilon},\quad "
        r"\phi(x) = [e^{xW+b}, e^{-(xW+b)}]"
    ),
    reference=hedgehog_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("zhang2024hedgehog"),
        "abstract (trainable MLP feature maps mimicking softmax); variants from lolcats and fla code",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "variant='paper' is the paper's φ = [exp(y), exp(−y)]; softmax_dim and exp_dim are lolcats' code variants "
        "(HazyResearch/lolcats, feature_map.py), fla is softmax([2y, −2y]) (fla HedgehogFeatureMap). The per-token "
        "normalisers cancel for queries but re-weight keys, so the variants are different operators. ε = 1e-12 "
        "(lolcats). The projection W, b is an input (identity/zero by default, the paper's init); key_weight/key_bias "
        "untie the keys' projection. Causal needs n == m; no mask."
    ),
    order=24,
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=9,
            d=4,
            d_v=3,
            causal=True,
            options=(("chunk_size", 4), ("form", "chunked"), ("per_head", True), ("variant", "softmax_dim")),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=8,
            d=3,
            d_v=2,
            causal=True,
            options=(("form", "recurrent"), ("untied", True), ("variant", "exp_dim")),
        ),
        Shape(batch=1, heads=2, kv_heads=1, n=7, m=10, d=4, d_v=3, options=(("feature_dim", 3), ("variant", "fla"))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="projections 2·(n + m)·d_k·d' plus state update and readout 4·max(n, m)·2d'·(d_v + 1), per head",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64, causal=True),
            ("full",),
            frozenset({"numpy", "composed"}),
        ),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=8192, d=128, d_v=128, causal=True),
            ("cuda",),
            frozenset({"numpy", "composed"}),
        ),
    ),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.hedgehog:hedgehog_attention", "numpy", tiles=(64,)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.hedgehog:hedgehog_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
