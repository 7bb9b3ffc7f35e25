"""Declaration of scaled dot-product softmax attention (MHA, MQA, GQA; causal or masked)."""

from __future__ import annotations

from typing import Any

import numpy as np

import attnlab.reference.softmax as module
from attnlab.core import BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape, Tolerance
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.softmax import softmax_attention

OP = "softmax_attention"


def oracle(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None) -> Any:
    """``softmax_row(σ Q Kᵀ + M) V`` with the scores materialised, in torch."""
    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    return T.masked_softmax(scores, allowed) @ v


# ---------------------------------------------------------------------------------------------
# invariants


def _rows_sum_to_one(ops: Any, sample: SampleInput) -> None:
    q, k = sample.args[:2]
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = ops.softmax_attention(q, k, identity, **sample.kwargs)  # A · I = A
    qe, ke = sh.repeat_kv(q, k)
    has = np.any(sh.visible_of(sample, qe, ke), axis=-1)
    assert np.all(weights >= 0), "negative attention weight"
    sh.close("row sums", weights.sum(-1), has.astype(float))


def _key_shift(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    shift = np.random.default_rng(4).standard_normal(k.shape[-1])
    sh.close(
        "output after K <- K + 1 u^T",
        ops.softmax_attention(q, k + shift, v, **sample.kwargs),
        sample.call(ops.softmax_attention),
        atol=1e-9,
    )


def _blocked_merge(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    qe, ke, ve = sh.repeat_kv(q, k, v)
    visible = np.array(sh.visible_of(sample, qe, ke))
    split = ke.shape[-2] // 2
    opts = {"scale": sample.kwargs["scale"]} if "scale" in sample.kwargs else {}
    o1, l1 = ops.softmax_attention_lse(qe, ke[..., :split, :], ve[..., :split, :], mask=visible[..., :split], **opts)
    o2, l2 = ops.softmax_attention_lse(qe, ke[..., split:, :], ve[..., split:, :], mask=visible[..., split:], **opts)
    merged, _ = ops.merge_partial_attention(o1, l1, o2, l2)
    sh.close("two-block lse merge vs dense", merged, sample.call(ops.softmax_attention))


def _first_causal_row(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    n = q.shape[-2]
    qe, ke, ve = sh.repeat_kv(q, k[..., :n, :], v[..., :n, :])
    out = ops.softmax_attention(qe, ke, ve, causal=True)
    sh.close("first causal row", out[..., 0, :], ve[..., 0, :])


# ---------------------------------------------------------------------------------------------
# mutants specific to softmax


def _key_norm_bias(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, scale: float | None = None, **kwargs: Any) -> Any:
        q, k = np.asarray(q, dtype=float), np.asarray(k, dtype=float)
        sigma = q.shape[-1] ** -0.5 if scale is None else scale
        # an extra coordinate makes the logits q·k − ½|k|²: no longer invariant to K + 1uᵀ
        q_aug = np.concatenate([q, np.full((*q.shape[:-1], 1), -0.5 / sigma)], -1)
        k_aug = np.concatenate([k, sigma * np.sum(k * k, -1, keepdims=True)], -1)
        return original(q_aug, k_aug, v, scale=sigma, **kwargs)

    return mutated


def _merge_equal_weights(original: Any) -> Any:
    def mutated(out_a: Any, lse_a: Any, out_b: Any, lse_b: Any) -> Any:
        both = np.isfinite(lse_a) & np.isfinite(lse_b)
        merged, lse = original(out_a, lse_a, out_b, lse_b)
        return np.where(both[..., None], 0.5 * (out_a + out_b), merged), lse

    return mutated


def _nan_empty_rows(original: Any) -> Any:
    def unguarded(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
        allowed = np.broadcast_to(allowed, x.shape)
        masked = np.where(allowed, x, -np.inf)
        with np.errstate(invalid="ignore"):
            p = np.exp(masked - np.max(masked, axis=axis, keepdims=True))
            return p / np.sum(p, axis=axis, keepdims=True)

    return unguarded


def _unnormalised(original: Any) -> Any:
    def slack(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
        return original(x, allowed, axis) * (1.0 - 1e-6)

    return slack


MUTANTS = (
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.drops_last_key(OP, (1, 2)),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
    sh.no_max_shift(),
    Mutant(
        "nan_empty_rows", "0/0 on rows with no visible key (no empty-row guard)", {"masked_softmax": _nan_empty_rows}
    ),
    Mutant("unnormalised", "weights scaled by 1 − 1e-6 (a denominator slack)", {"masked_softmax": _unnormalised}),
    Mutant("key_norm_bias", "logits q·k − ½|k|² (not invariant to shifting every key)", {OP: _key_norm_bias}),
    Mutant(
        "merge_equal_weights",
        "the lse merge averages the two blocks",
        {"merge_partial_attention": _merge_equal_weights},
    ),
)

INVARIANTS = (
    Invariant(
        "rows_sum_to_one",
        "attention weights (the output for V = I) are >= 0 and each visible row sums to 1",
        _rows_sum_to_one,
        ("unnormalised", "no_max_shift", "nan_empty_rows"),
    ),
    sh.convex_hull(OP, mutants=("no_max_shift", "nan_empty_rows")),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    sh.query_permutation(OP, [0], mutants=("output_nudged",)),
    Invariant(
        "key_shift",
        "K <- K + 1 uᵀ shifts each logit row by a constant: the output is unchanged",
        _key_shift,
        ("key_norm_bias",),
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    Invariant(
        "blocked_merge",
        "two key blocks merged by their log-sum-exp equal dense attention",
        _blocked_merge,
        ("merge_equal_weights",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "first_causal_row",
        "in causal self-attention the first query returns v_0",
        _first_causal_row,
        ("leaky_causal",),
        lambda s: s.args[1].shape[-2] >= max(2, s.args[0].shape[-2]),
    ),
    sh.matches_brute_force(
        OP,
        sh.attention_loop,
        mutants=("top_left_causal", "wrong_scale", "ignores_mask", "output_nudged", "no_max_shift"),
    ),
)

FORM = Form(
    name="softmax",
    order=1,
    title="Scaled dot-product softmax attention (MHA/MQA/GQA)",
    equation=r"O = \operatorname{softmax}_{\text{row}}\!\left(\sigma QK^\top + M\right)V,\quad \sigma = d_k^{-1/2}",
    reference=softmax_attention,
    module=module,
    brute_force=sh.attention_loop,
    oracle=oracle,
    source=Source(paper("vaswani2017attention"), "§3.2.1, Eq. (1)"),
    status="exact",
    note=(
        "GQA/MQA (Ainslie et al. 2023, arXiv 2305.13245; Shazeer 2019, arXiv 1911.02150): query head h reads "
        "KV head h // (H / H_kv). Causal with m != n is aligned bottom-right as in FlashAttention-2 "
        "(Dao 2023, arXiv 2307.08691); PyTorch's is_causal is top-left."
    ),
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sh.attention_sample,
    shapes=sh.attention_shapes(options=sh.positive_scale),
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=2, n=6, m=6, d=4, d_v=3, causal=True, options=(("scale", 0.3),)),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=7, d=8, d_v=2, masked=True, options=(("scale", 1.7),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=lambda: sh.bad_attention_inputs(sh.attention_sample(0, Shape())),
    flops=sh.softmax_flops,
    flop_convention=sh.SOFTMAX_FLOPS,
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64), ("full",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128), ("cuda",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    peers={"sdpa": "attnlab.fastpath.torch.softmax:sdpa_peer"},
    baseline="sdpa",
    diagnoses=sh.attention_diagnoses(softmax_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.softmax:softmax_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.softmax:softmax_vjp",
            differentiable=True,
            tiles=(128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.softmax:softmax_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16", "float16"),
            devices=("cpu", "cuda"),
            differentiable=True,
            tolerance=Tolerance(),
        ),
    ),
)
