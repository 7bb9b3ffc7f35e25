"""Declaration of Sparse Query Attention (SQA): a GQA layer with fewer query heads than H = D / d_h."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.sqa as module
from attnlab.core import BadInput, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _heads as hd
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.softmax import softmax_attention
from attnlab.reference.sqa import sqa_attention

OP = "sqa_attention"


def oracle(
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Projections, GQA softmax attention with the scores materialised and the output projection, in torch."""
    import torch

    from attnlab.forms import _torch as T

    x, context = T.tensor(x), T.tensor(context)
    w_q, w_k, w_v, w_o = (T.tensor(w, like=x) for w in (w_q, w_k, w_v, w_o))
    q = torch.einsum("...nd,hde->...hne", x, w_q)
    k = torch.einsum("...md,hde->...hme", context, w_k)
    v = torch.einsum("...md,hde->...hme", context, w_v)
    q, k, v = T.repeat_kv(q, k, v)
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    if allowed.ndim > 2:
        allowed = allowed.unsqueeze(-3)  # a mask over the batch dims of x serves every head
    heads = T.masked_softmax(scores, allowed) @ v
    return torch.einsum("...hne,hed->...nd", heads, w_o)


def brute_force(
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops: projections as explicit sums, query head ``h`` on KV head ``h // (H_q / H_kv)``."""
    x, context, w_q, w_k, w_v, w_o = (np.asarray(a, dtype=np.float64) for a in (x, context, w_q, w_k, w_v, w_o))
    batch, n, _ = x.shape
    m = context.shape[-2]
    h_q, h_kv = w_q.shape[0], w_k.shape[0]
    group = h_q // h_kv
    sigma = w_q.shape[-1] ** -0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, (batch,))
    out = np.zeros((batch, n, w_o.shape[-1]))
    for b in range(batch):
        for h in range(h_q):
            g = h // group
            q = sh.dot_loop(x[b], w_q[h].T)
            k = sh.dot_loop(context[b], w_k[g].T)
            v = sh.dot_loop(context[b], w_v[g].T)
            o = sh.softmax_rows_loop(sigma * sh.dot_loop(q, k), vis[b], v)
            out[b] += sh.dot_loop(o, w_o[h].T)
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """Tokens of width ``D = d_h + 3`` (``shape.d`` is ``d_h``; self-attention when ``m`` is None), per-head
    weights ``N(0, 1/D)`` (``W_O``: ``N(0, 1/(H_q d_v))``); ``shape.heads`` is ``H_q``.

    ``large`` scales ``W_Q`` and ``W_K`` (logits by 1e2 … 1e3, values unchanged, as in the softmax
    samples); the other distributions shape the tokens (shifted by a constant, tied rows)."""
    rng = np.random.default_rng(seed)
    width = shape.d + 3
    h_q, h_kv = shape.heads, sh.kv_heads_of(shape)
    tokens = "normal" if shape.values == "large" else shape.values
    x = sh.qk_values(rng, (shape.batch, shape.n, width), tokens)
    if shape.values in ("tied", "near_tied"):
        x[..., ::3, :] = 0.0  # queries of exactly equal logits
    context = np.array(x) if shape.m is None else sh.qk_values(rng, (shape.batch, shape.m, width), tokens)
    gain = math.sqrt(10 ** rng.uniform(2.0, 3.0)) if shape.values == "large" else 1.0
    w_q = gain * rng.standard_normal((h_q, width, shape.d)) / math.sqrt(width)
    w_k = gain * rng.standard_normal((h_kv, width, shape.d)) / math.sqrt(width)
    w_v = rng.standard_normal((h_kv, width, shape.d_v)) / math.sqrt(width)
    w_o = rng.standard_normal((h_q, shape.d_v, width)) / math.sqrt(h_q * shape.d_v)
    kwargs: dict[str, Any] = {"causal": shape.causal, **shape.option_dict}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((x, context, w_q, w_k, w_v, w_o), kwargs, shape.label())


@st.composite
def shapes(draw: Any) -> Shape:
    """The attention shapes with ``H_q`` in 1 … 6 (non-powers of two included) and ``H_kv | H_q``."""
    base = draw(sh.attention_shapes(options=sh.positive_scale))
    heads = draw(st.sampled_from([1, 2, 3, 4, 6]))
    return replace(
        base, heads=heads, kv_heads=draw(st.sampled_from([g for g in range(1, heads + 1) if heads % g == 0]))
    )


# ---------------------------------------------------------------------------------------------
# invariants


def _options(sample: SampleInput) -> dict[str, Any]:
    return {key: sample.kwargs[key] for key in ("scale", "causal") if key in sample.kwargs}


def _equals_projected_softmax(ops: Any, sample: SampleInput) -> None:
    x, context, w_q, w_k, w_v, w_o = sample.args
    q, k, v = (np.einsum("bnd,hde->bhne", a, w) for a, w in ((x, w_q), (context, w_k), (context, w_v)))
    mask = sample.kwargs.get("mask")
    heads = softmax_attention(q, k, v, **_options(sample), mask=None if mask is None else mask[..., None, :, :])
    want = np.einsum("bhne,hed->bnd", heads, w_o)
    sh.close(
        "SQA vs GQA softmax attention (H_q query heads) between the projections", sample.call(ops.sqa_attention), want
    )


def _query_head_pruning(ops: Any, sample: SampleInput) -> None:
    x, context, w_q, w_k, w_v, w_o = sample.args
    h_q, h_kv = w_q.shape[0], w_k.shape[0]
    group = h_q // h_kv
    rng = np.random.default_rng(8)
    wide_q = rng.standard_normal((2 * h_q, *w_q.shape[1:]))  # the added query heads attend, but W_O^h = 0 drops them
    wide_o = np.zeros((2 * h_q, *w_o.shape[1:]))
    for g in range(h_kv):
        wide_q[2 * g * group : 2 * g * group + group] = w_q[g * group : (g + 1) * group]
        wide_o[2 * g * group : 2 * g * group + group] = w_o[g * group : (g + 1) * group]
    got = ops.sqa_attention(x, context, wide_q, w_k, w_v, wide_o, **sample.kwargs)
    sh.close(
        "GQA layer with 2 H_q query heads, half of them with W_O = 0, vs SQA with H_q",
        got,
        sample.call(ops.sqa_attention),
    )


def _head_group_permutation(ops: Any, sample: SampleInput) -> None:
    x, context, w_q, w_k, w_v, w_o = sample.args
    h_q, h_kv = w_q.shape[0], w_k.shape[0]
    group = h_q // h_kv
    perm = np.roll(np.arange(h_kv), 1)
    q_perm = np.concatenate([np.arange(p * group, (p + 1) * group) for p in perm])
    got = ops.sqa_attention(x, context, w_q[q_perm], w_k[perm], w_v[perm], w_o[q_perm], **sample.kwargs)
    sh.close("output after permuting KV heads together with their query groups", got, sample.call(ops.sqa_attention))


# ---------------------------------------------------------------------------------------------
# mutants specific to SQA


def _scale_from_width(original: Any) -> Any:
    def mutated(x: Any, *args: Any, scale: Any = None, **kwargs: Any) -> Any:
        return original(x, *args, scale=np.shape(x)[-1] ** -0.5 if scale is None else scale, **kwargs)

    return mutated


MUTANTS = (
    *hd.attention_mutants(OP, key_args=(1,), gqa_args=(3, 4), gqa_q_arg=2, scale=False),
    Mutant(
        "scale_from_model_width", "default scale D^-1/2 (the model width) instead of d_h^-1/2", {OP: _scale_from_width}
    ),
    Mutant(
        "mean_over_heads",
        "the output projection averages the query heads instead of summing them",
        {"merge_heads": lambda orig: lambda o, w: orig(o, w) / w.shape[0]},
    ),
    Mutant(
        "output_heads_reversed",
        "W_O^h applied to head H_q − 1 − h",
        {"merge_heads": lambda orig: lambda o, w: orig(o, w[::-1])},
    ),
)

INVARIANTS = (
    Invariant(
        "equals_projected_softmax",
        "SQA is GQA softmax attention with H_q query heads between the per-head projections (H_q = H: a GQA/MHA layer)",
        _equals_projected_softmax,
        ("mean_over_heads", "output_heads_reversed", "scale_from_model_width"),
    ),
    Invariant(
        "query_head_pruning",
        "SQA with H_q heads equals a GQA layer with 2 H_q query heads whose added heads have W_O = 0",
        _query_head_pruning,
        ("mean_over_heads", "interleaved_gqa"),
    ),
    Invariant(
        "head_group_permutation",
        "permuting the KV heads together with their query groups (and W_O blocks) leaves the output unchanged",
        _head_group_permutation,
        ("interleaved_gqa",),
        lambda s: s.args[3].shape[0] >= 2,
    ),
    *hd.attention_invariants(
        OP,
        brute_force,
        query_args=[0],
        key_args=[1],
        gqa_args=[3, 4],
        q_arg=2,
        brute_mutants=("scale_from_model_width", "output_heads_reversed"),
    ),
)


def bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(batch=2, heads=4, kv_heads=2, n=5, m=6, d=4, d_v=3))
    x, context, w_q, w_k, w_v, w_o = s.args
    return [
        *sh.bad_arrays(("x", "context", "w_q", "w_k", "w_v", "w_o"), s),
        *sh.bad_options(s, ("scale", "causal", "mask")),
        hd.bad_arg("w-k-head-dim", s, 3, w_k[..., :-1], ValueError, r"\bw_k\b.*d_h"),
        hd.bad_arg("w-q-input-width", s, 2, w_q[:, :-1], ValueError, r"\bw_q\b.*input width"),
        hd.bad_arg("context-width", s, 1, context[..., :-1], ValueError, r"\bw_k\b"),
        hd.bad_arg("w-v-heads", s, 4, w_v[:1], ValueError, r"\bw_v\b.*KV heads"),
        hd.bad_arg("w-o-heads", s, 5, w_o[:-1], ValueError, r"\bw_o\b.*query heads"),
        hd.bad_arg("kv-heads-above-query-heads", s, 2, w_q[:1], ValueError, r"\bw_k\b.*divides"),
        BadInput(
            "kv-heads-not-dividing",
            (x, context, w_q, w_k[:1].repeat(3, 0), w_v[:1].repeat(3, 0), w_o),
            s.kwargs,
            ValueError,
            r"\bw_k\b.*divides",
        ),
        hd.bad_arg("batch-mismatch", s, 1, np.concatenate([context] * 3, 0), ValueError, r"\bx/context\b.*broadcast"),
    ]


def flops(sample: SampleInput) -> float:
    """Score and value products of the ``H_q`` query heads (the projections are not counted)."""
    x, context, w_q, _, w_v, _ = sample.args
    lead = math.prod(np.broadcast_shapes(x.shape[:-2], context.shape[:-2])) * w_q.shape[0]
    d = (w_q.shape[-1] + w_v.shape[-1]) / 2
    return 4.0 * lead * x.shape[-2] * context.shape[-2] * d * (0.5 if sample.kwargs.get("causal") else 1.0)


FORM = Form(
    name="sqa",
    order=7,
    title="Sparse Query Attention (H_q < H query heads, GQA keys/values)",
    equation=(
        r"Y = \sum_{h < H_q} \operatorname{softmax}\!\big(\sigma (XW_Q^h)(CW_K^{g(h)})^\top + M\big)(CW_V^{g(h)})W_O^h,"
        r"\quad g(h) = \lfloor h H_{kv}/H_q \rfloor"
    ),
    reference=sqa_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("filipek2025sqa"), "query-head reduction H_q < H", abstract_level=True),
    status="exact",
    note=(
        "A layer operator (x, context, per-head W_Q, W_K, W_V, W_O); pass context = x for self-attention. "
        "H_kv <= H_q with H_kv | H_q, as in RxNN's SparseQueryAttention (the paper's variants with H_kv > H_q "
        "are not broadcastable there and are not covered). The nominal head count H = D / d_h enters only the "
        "FLOP ratio H_q / H against MHA."
    ),
    array_args=("x", "context", "w_q", "w_k", "w_v", "w_o"),
    row_args=(0,),
    batch_args=("x", "context", "mask"),
    sample=sample,
    shapes=shapes(),
    extra_shapes=(
        Shape(batch=1, heads=6, kv_heads=3, n=7, m=9, d=4, d_v=3, causal=True, options=(("scale", 0.4),)),
        Shape(batch=2, heads=3, kv_heads=1, n=5, d=3, d_v=2, masked=True),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention=sh.SOFTMAX_FLOPS + ", over the H_q query heads (projections not counted): H_q / H of MHA's",
    bench=hd.bench_cases(
        {},
        (("tiny",), 1, 2, 1, 16, 8, True),
        (("quick",), 1, 4, 2, 512, 64, False),
        (("full",), 1, 4, 2, 2048, 64, True),
        (("cuda",), 4, 8, 4, 4096, 128, True),
    ),
    # top-left causal, ignored causal, ignored mask, ignored explicit scale (x and context carry n and m)
    diagnoses=sh.attention_diagnoses(sqa_attention)[:4],
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.sqa:sqa_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.sqa:sqa_vjp",
            differentiable=True,
        ),
        hd.torch_path("attnlab.fastpath.torch.sqa:sqa_attention"),
    ),
)
