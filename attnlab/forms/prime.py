"""Declaration of prime attention (dynamic relational priming, Lee & Clark 2025), a reading."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import attnlab.reference.prime as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.prime import prime_attention
from attnlab.reference.softmax import softmax_attention

OP = "prime_attention"


def oracle(
    q: Any,
    k: Any,
    v: Any,
    key_filter: Any = None,
    value_filter: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Per-pair modulated keys and values materialised as ``(..., n, m, d)`` tensors, in torch."""
    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    keys = k[..., None, :, :].expand(*k.shape[:-2], n, m, k.shape[-1])
    values = v[..., None, :, :].expand(*v.shape[:-2], n, m, v.shape[-1])
    if key_filter is not None:
        keys = T.tensor(key_filter, q) * keys
    if value_filter is not None:
        values = T.tensor(value_filter, q) * values
    scores = T.default_scale(scale, q.shape[-1]) * (q[..., :, None, :] * keys).sum(-1)
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device)
    return (T.masked_softmax(scores, allowed)[..., None] * values).sum(-2)


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    key_filter: Any = None,
    value_filter: Any = None,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops: every modulated key and value written out per pair."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    n, m, dk, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    lead = q.shape[:-2]
    f = np.broadcast_to(1.0 if key_filter is None else key_filter, (*lead, n, m, dk))
    g = np.broadcast_to(1.0 if value_filter is None else value_filter, (*lead, n, m, dv))
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, dv))
    for idx in np.ndindex(*lead):
        for i in range(n):
            seen = [j for j in range(m) if vis[idx][i, j]]
            if not seen:
                continue
            logits = {j: sigma * sum(q[idx][i, c] * f[idx][i, j, c] * k[idx][j, c] for c in range(dk)) for j in seen}
            top = max(logits.values())
            weights = {j: math.exp(s - top) for j, s in logits.items()}
            total = sum(weights.values())
            for c in range(dv):
                out[idx][i, c] = sum(w * g[idx][i, j, c] * v[idx][j, c] for j, w in weights.items()) / total
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v, F, G)`` with per-head filters ``1 + 0.5·N(0, 1)`` (``neutral`` option: all ones)."""
    base = sh.attention_sample(seed, shape)
    q, k, v = base.args
    rng = np.random.default_rng(seed + 7)
    lead = (*np.broadcast_shapes(q.shape[:-3], k.shape[:-3]), q.shape[-3])
    n, m = q.shape[-2], k.shape[-2]
    kwargs = dict(base.kwargs)
    if kwargs.pop("neutral", False):
        return SampleInput(
            (q, k, v, np.ones((*lead, n, m, q.shape[-1])), np.ones((*lead, n, m, v.shape[-1]))), kwargs, base.label
        )
    f = 1.0 + 0.5 * rng.standard_normal((*lead, n, m, q.shape[-1]))
    g = 1.0 + 0.5 * rng.standard_normal((*lead, n, m, v.shape[-1]))
    return SampleInput((q, k, v, f, g), kwargs, base.label)


SHAPES = sh.attention_shapes(max_n=12, max_d=8, options=sh.positive_scale)


# ---------------------------------------------------------------------------------------------
# invariants


def _neutral(ops: Any, s: SampleInput) -> None:
    q, k, v, f, g = s.args
    want = softmax_attention(q, k, v, **s.kwargs)
    sh.close(
        "F = G = 1 vs softmax attention",
        ops.prime_attention(q, k, v, np.ones_like(f), np.ones_like(g), **s.kwargs),
        want,
    )
    sh.close("no filters vs softmax attention", ops.prime_attention(q, k, v, **s.kwargs), want)


def _separable(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args[:3]
    rng = np.random.default_rng(5)
    n, m = q.shape[-2], k.shape[-2]
    qe, ke, ve = sh.repeat_kv(q, k, v)
    a = rng.uniform(0.5, 1.5, (*qe.shape[:-2], n, 1, q.shape[-1]))
    b = rng.uniform(0.5, 1.5, (*qe.shape[:-2], 1, m, q.shape[-1]))
    e = rng.uniform(0.5, 1.5, (*qe.shape[:-2], n, 1, v.shape[-1]))
    c = rng.uniform(0.5, 1.5, (*qe.shape[:-2], 1, m, v.shape[-1]))
    got = ops.prime_attention(q, k, v, a * b, e * c, **s.kwargs)
    sigma = s.kwargs.get("scale") or q.shape[-1] ** -0.5
    opts = {**s.kwargs, "scale": sigma}
    want = e[..., 0, :] * softmax_attention(qe * a[..., 0, :], ke * b[..., 0, :, :], ve * c[..., 0, :, :], **opts)
    sh.close("F = a_i ⊙ b_j, G = e_i ⊙ c_j vs e_i ⊙ SDPA(q ⊙ a, k ⊙ b, v ⊙ c)", got, want)


def _pair_locality(ops: Any, s: SampleInput) -> None:
    q, k, v, f, g = s.args
    n, m = q.shape[-2], k.shape[-2]
    i0, j0 = n // 2, m - 1  # the row a masked sample hides entirely, and the last key
    f2, g2 = np.array(f), np.array(g)
    f2[..., i0, j0, :] *= 1.7
    g2[..., i0, j0, :] += 0.9
    base = s.call(ops.prime_attention)
    moved = ops.prime_attention(q, k, v, f2, g2, **s.kwargs)
    others = [i for i in range(n) if i != i0]
    sh.close("rows other than i0 after changing F, G at (i0, j0)", moved[..., others, :], base[..., others, :])
    visible = sh.visible_of(s, *sh.repeat_kv(q, k))[..., i0, j0]
    changed = np.abs(moved[..., i0, :] - base[..., i0, :]).max(axis=-1) > 0.0
    assert not np.any(changed & ~visible), "row i0 responded to a pair (i0, j0) it cannot see"


def _token_permutation(ops: Any, s: SampleInput) -> None:
    q, k, v, f, g = s.args
    explicit = sh.as_mask_sample(s, q, k)
    rng = np.random.default_rng(6)
    pi, rho = rng.permutation(q.shape[-2]), rng.permutation(k.shape[-2])
    mask = explicit.kwargs["mask"][..., pi, :][..., rho]
    moved = ops.prime_attention(
        q[..., pi, :],
        k[..., rho, :],
        v[..., rho, :],
        f[..., pi, :, :][..., rho, :],
        g[..., pi, :, :][..., rho, :],
        **{**explicit.kwargs, "mask": mask},
    )
    sh.close(
        "output after permuting queries (π) and keys (ρ) with F[π, ρ], G[π, ρ]",
        moved,
        s.call(ops.prime_attention)[..., pi, :],
    )


def _rows_sum_to_one(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    weights = cat.weights_of(ops.prime_attention, SampleInput((q, k, None, s.args[3], None), s.kwargs))
    has = np.any(sh.visible_of(s, *sh.repeat_kv(q, k)), axis=-1)
    assert np.all(weights >= 0), "negative attention weight"
    sh.close("row sums", weights.sum(-1), has.astype(float))


def _filtered_hull(ops: Any, s: SampleInput) -> None:
    q, k, v, _, g = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    values = np.broadcast_to(g, (*qe.shape[:-2], q.shape[-2], k.shape[-2], v.shape[-1])) * ve[..., None, :, :]
    cat.rows_in_hull(s.call(ops.prime_attention), values, np.array(sh.visible_of(s, qe, ke)), "filtered-value hull")


# ---------------------------------------------------------------------------------------------
# mutants


def _transposed(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, key_filter: Any = None, value_filter: Any = None, **kwargs: Any) -> Any:
        if key_filter is None or np.shape(key_filter)[-2] != np.shape(key_filter)[-3]:
            return original(q, k, v, key_filter, value_filter, **kwargs)
        return original(
            q,
            k,
            v,
            np.swapaxes(key_filter, -2, -3),
            None if value_filter is None else np.swapaxes(value_filter, -2, -3),
            **kwargs,
        )

    return mutated


def _value_filter_ignored(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, key_filter: Any = None, value_filter: Any = None, **kwargs: Any) -> Any:
        return original(q, k, v, key_filter, None, **kwargs)

    return mutated


def _filter_on_query(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, key_filter: Any = None, value_filter: Any = None, **kwargs: Any) -> Any:
        if key_filter is None:
            return original(q, k, v, None, value_filter, **kwargs)
        # the key filter averaged over keys and applied to the query instead of per pair
        q_mod = np.asarray(q) * np.mean(key_filter, axis=-2)
        return original(q_mod, k, v, None, value_filter, **kwargs)

    return mutated


def _unnormalised(original: Any) -> Any:
    def slack(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
        return original(x, allowed, axis) * (1.0 - 1e-6)

    return slack


MUTANTS = (
    cat.wrapping("transposed_filters", "the filters are read as F[j, i] instead of F[i, j]", OP, _transposed),
    cat.wrapping("value_filter_ignored", "the value filter G is not applied", OP, _value_filter_ignored),
    cat.wrapping(
        "filter_on_query",
        "the key filter modulates the query (averaged over keys), not each pair",
        OP,
        _filter_on_query,
    ),
    cat.wrapping("unnormalised", "weights scaled by 1 − 1e-6 (a denominator slack)", "masked_softmax", _unnormalised),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.drops_last_key(OP, (1, 2)),
)

INVARIANTS = (
    Invariant(
        "neutral_filters",
        "F = G = 1 (or no filters) is softmax attention exactly",
        _neutral,
        ("wrong_scale", "ignores_mask", "top_left_causal"),
    ),
    Invariant(
        "separable_filters",
        "F_ij = a_i ⊙ b_j and G_ij = e_i ⊙ c_j give e_i ⊙ SDPA(q ⊙ a, k ⊙ b, v ⊙ c)_i",
        _separable,
        ("transposed_filters", "value_filter_ignored", "filter_on_query"),
    ),
    Invariant(
        "pair_locality",
        "changing F_ij, G_ij of one pair changes no output row but i, and row i only where the pair is visible",
        _pair_locality,
        ("transposed_filters", "ignores_mask"),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "token_permutation",
        "permuting queries by π and keys by ρ, with F[π, ρ] and G[π, ρ], permutes the outputs by π",
        _token_permutation,
        ("drops_last_key",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "rows_sum_to_one",
        "the weights (output for V = I, G = 1) are >= 0 and each visible row sums to 1",
        _rows_sum_to_one,
        ("unnormalised",),
    ),
    Invariant(
        "filtered_value_hull",
        "each output coordinate lies in the hull of its row's visible filtered values G_ij ⊙ v_j",
        _filtered_hull,
        ("value_filter_ignored",),
    ),
    sh.causal_prefix(OP, [0], [1, 2, 3, 4], mutants=("leaky_causal",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("transposed_filters", "value_filter_ignored", "wrong_scale", "top_left_causal")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=5, d=4, d_v=3))
    q, k, v, f, g = s.args
    return [
        *sh.bad_arrays(("q", "k", "v", "key_filter", "value_filter"), s),
        *sh.bad_options(s, ("scale", "causal", "mask")),
        BadInput(
            "key-filter-wrong-d", (q, k, v, f[..., :-1], g), s.kwargs, ValueError, r"\bkey_filter\b.*broadcastable"
        ),
        BadInput(
            "value-filter-wrong-m",
            (q, k, v, f, g[..., :-1, :]),
            s.kwargs,
            ValueError,
            r"\bvalue_filter\b.*broadcastable",
        ),
        # a filter is a map per (query, key) pair: (m, d) has no query axis and is not broadcast into one
        BadInput("key-filter-2d", (q, k, v, f[0, 0, 0], g), s.kwargs, ValueError, r"\bkey_filter\b.*3 dims"),
        BadInput("k-head-dim", (q, k[..., :-1], v, f, g), s.kwargs, ValueError, r"\bk\b.*d_k"),
        BadInput("kv-length-mismatch", (q, k, v[..., :-1, :], f, g), s.kwargs, ValueError, r"\bk\b.*\bv\b"),
        # σ·d·max|q|·max|F|·max|k| = 0.5·4·1e153·8·1e153 = 1.6e307 reaches float64's max / 16
        sh.too_large("logits-overflow", s, {0: 1e153, 1: 1e153, 3: 8.0}, r"\bq\b.*logit σ Σ q F k can reach 1.6e\+307"),
        # m·max|G|·max|v| = 5·8·1e306 = 4e307
        sh.too_large("outputs-overflow", s, {2: 1e306, 4: 8.0}, r"\bv\b.*output Σ_j P_j G_j v_j can reach 4e\+307"),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args[:3]
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, m = q.shape[-2], k.shape[-2]
    return lead * n * m * (3.0 * q.shape[-1] + 3.0 * v.shape[-1])


FORM = Form(
    name="prime",
    title="Prime attention: per-pair relational priming of keys and values (a reading)",
    equation=(
        r"s_{ij} = \sigma \sum_c q_{ic} F_{ijc} k_{jc},\quad "
        r"o_i = \sum_j \operatorname{softmax}_j(s_i + M_i)\, (G_{ij} \odot v_j)"
    ),
    reference=prime_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("lee2025dynamic"), "abstract (per-interaction learnable modulations)", abstract_level=True),
    status="reading",
    note=(
        "Only the abstract was read: 'each token is tailored dynamically (per interaction) through learnable "
        "modulations'. The reading modulates key and value of token j per pair by element-wise filters F_ij, G_ij "
        "(inputs, shape (..., H, n, m, d)); the paper's parameterisation and any sparsity of the filters are not "
        "reproduced. F = G = 1 is softmax attention."
    ),
    order=28,
    array_args=("q", "k", "v", "key_filter", "value_filter"),
    row_args=(),
    sample=sample,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=6, d=4, d_v=3, causal=True, options=(("scale", 0.6),)),
        Shape(batch=1, heads=2, kv_heads=2, n=4, m=6, d=3, d_v=2, masked=True, options=(("neutral", True),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention=(
        "per pair: the filtered score (3·d_k) and the filtered value accumulation (3·d_v), B·H·n·m·3·(d_k + d_v)"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8), ("tiny",)),
        BenchCase(Shape(batch=1, heads=4, kv_heads=4, n=128, d=32, d_v=32), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=256, d=32, d_v=32), ("full",)),
        BenchCase(Shape(batch=2, heads=8, kv_heads=8, n=512, d=64, d_v=64), ("cuda",), frozenset({"numpy"})),
    ),
    diagnoses=sh.attention_diagnoses(prime_attention),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.prime:prime_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
