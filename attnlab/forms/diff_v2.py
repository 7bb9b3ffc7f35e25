"""Declaration of differential attention V2 (paired query heads on one GQA call, sigmoid gate)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.diff_v2 as module
from attnlab.core import BadInput, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _heads as hd
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.diff_v2 import diff_v2_attention
from attnlab.reference.differential import differential_attention
from attnlab.reference.softmax import softmax_attention

OP = "diff_v2_attention"
#: A pre-sigmoid weight this negative closes the gate exactly in float64 (e^{−800} underflows to 0).
CLOSED = -800.0


def oracle(
    q: Any, k: Any, v: Any, lam: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> Any:
    """``A_{2h} V − sigmoid(λ) A_{2h+1} V`` with every score matrix materialised, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    heads = T.masked_softmax(scores, allowed) @ v
    return heads[..., 0::2, :, :] - torch.sigmoid(T.tensor(lam, like=heads)) * heads[..., 1::2, :, :]


def brute_force(
    q: Any, k: Any, v: Any, lam: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    """Scalar loops: each query head ``j`` reads KV head ``j // (2H / H_kv)``; pairs ``(2h, 2h + 1)``."""
    q, k, v, lam = (np.asarray(a, dtype=np.float64) for a in (q, k, v, lam))
    batch, two_h, n, d = q.shape
    h_kv, m = k.shape[-3], k.shape[-2]
    group = two_h // h_kv
    sigma = d**-0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, (batch, two_h))
    gates = np.broadcast_to(lam, (batch, two_h // 2, n, 1))
    out = np.zeros((batch, two_h // 2, n, v.shape[-1]))
    for b in range(batch):
        heads = [
            sh.softmax_rows_loop(sigma * sh.dot_loop(q[b, j], k[b, j // group]), vis[b, j], v[b, j // group])
            for j in range(two_h)
        ]
        for h in range(two_h // 2):
            for i in range(n):
                x = gates[b, h, i, 0]
                weight = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
                out[b, h, i] = heads[2 * h][i] - weight * heads[2 * h + 1][i]
    return out


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """``H`` output heads become ``2H`` query heads; MHA layouts become ``H_kv = 2H`` (each pair's two
    maps on different KV heads), GQA layouts keep their KV heads (pairs share one)."""
    kv = 2 * shape.kv_heads if shape.kv_heads == shape.heads else shape.kv_heads
    return replace(shape, heads=2 * shape.heads, kv_heads=kv)


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v, λ)`` with ``λ ~ N(0, 2²)`` per token and output head (gates spread over (0, 1))."""
    base = sh.attention_sample(seed, shape)
    rng = np.random.default_rng(seed + 7919)
    lam = 2.0 * rng.standard_normal((shape.batch, shape.heads // 2, shape.n, 1))
    return SampleInput((*base.args, lam), base.kwargs, base.label)


@st.composite
def shapes(draw: Any) -> Shape:
    base = draw(sh.attention_shapes(options=sh.positive_scale))
    pairs = draw(st.sampled_from([1, 2, 3]))
    kv = draw(st.sampled_from([g for g in range(1, 2 * pairs + 1) if (2 * pairs) % g == 0]))
    return replace(base, heads=2 * pairs, kv_heads=kv)


# ---------------------------------------------------------------------------------------------
# invariants


def _expanded(sample: SampleInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    q, k, v, lam = sample.args
    return q, hd.expand_heads(k, q.shape[-3]), hd.expand_heads(v, q.shape[-3]), lam


def _gate_closed(ops: Any, sample: SampleInput) -> None:
    q, k, v, lam = _expanded(sample)
    out = ops.diff_v2_attention(*sample.args[:3], np.full_like(lam, CLOSED), **sample.kwargs)
    even = softmax_attention(q[..., 0::2, :, :], k[..., 0::2, :, :], v[..., 0::2, :, :], **sample.kwargs)
    sh.close("λ -> -inf vs the even heads' softmax attention", out, even)


def _reduces_to_v1(ops: Any, sample: SampleInput) -> None:
    q, k, v, lam = _expanded(sample)
    tied = np.array(v)
    tied[..., 1::2, :, :] = v[..., 0::2, :, :]
    got = ops.diff_v2_attention(q, k, tied, lam, **sample.kwargs)
    want = differential_attention(
        q[..., 0::2, :, :],
        k[..., 0::2, :, :],
        q[..., 1::2, :, :],
        k[..., 1::2, :, :],
        v[..., 0::2, :, :],
        lam=1.0 / (1.0 + np.exp(-lam)),
        **sample.kwargs,
    )
    sh.close("V2 with a shared value per pair vs DIFF V1 with λ = sigmoid(λ_v2)", got, want)


def _gate_slope(ops: Any, sample: SampleInput) -> None:
    q, k, v, lam = _expanded(sample)
    lam_a, lam_b = np.zeros_like(lam), np.full_like(lam, math.log(3.0))  # gates 1/2 and 3/4
    slope = (
        ops.diff_v2_attention(*sample.args[:3], lam_a, **sample.kwargs)
        - ops.diff_v2_attention(*sample.args[:3], lam_b, **sample.kwargs)
    ) / 0.25
    odd = softmax_attention(q[..., 1::2, :, :], k[..., 1::2, :, :], v[..., 1::2, :, :], **sample.kwargs)
    sh.close("(O(λ_a) − O(λ_b)) / (σ(λ_b) − σ(λ_a)) vs the odd heads' own attention", slope, odd, atol=1e-9)


def _rows_sum(ops: Any, sample: SampleInput) -> None:
    q, k, v, lam = sample.args
    ones = np.ones((*v.shape[:-1], 1))
    weights = ops.diff_v2_attention(q, k, ones, lam, **sample.kwargs)
    vis = sh.visible_of(sample, q[..., 0::2, :, :], k[..., :1, :, :])
    has = np.any(vis, axis=-1, keepdims=True)
    want = np.where(has, 1.0 - 1.0 / (1.0 + np.exp(-np.broadcast_to(lam, has.shape))), 0.0)
    sh.close("row sums of A_2h − sigmoid(λ) A_2h+1", weights, want)


# ---------------------------------------------------------------------------------------------
# mutants specific to DIFF V2


def _odd_minus_even(original: Any) -> Any:
    def swapped(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first, second = original(maps)
        return second, first

    return swapped


def _halves(original: Any) -> Any:
    def halves(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = maps.shape[-3] // 2
        return maps[..., :half, :, :], maps[..., half:, :, :]

    return halves


def _shared_pair_kv(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, lam: Any, **kwargs: Any) -> Any:
        heads = np.shape(q)[-3]
        k2, v2 = hd.expand_heads(np.asarray(k), heads), hd.expand_heads(np.asarray(v), heads)
        k2[..., 1::2, :, :] = k2[..., 0::2, :, :]
        v2[..., 1::2, :, :] = v2[..., 0::2, :, :]
        return original(q, k2, v2, lam, **kwargs)

    return mutated


MUTANTS = (
    *hd.attention_mutants(OP),
    Mutant("no_sigmoid", "λ used as the subtraction weight without the sigmoid", {"sigmoid": lambda orig: lambda x: x}),
    Mutant(
        "gate_complement",
        "weight 1 − sigmoid(λ) instead of sigmoid(λ)",
        {"sigmoid": lambda orig: lambda x: 1.0 - orig(x)},
    ),
    Mutant("odd_minus_even", "the even head subtracted from the odd one", {"pair_heads": _odd_minus_even}),
    Mutant("pairs_split_in_halves", "pairs (h, h + H) instead of (2h, 2h + 1)", {"pair_heads": _halves}),
    Mutant("shared_pair_kv", "both heads of a pair read the even head's KV head", {OP: _shared_pair_kv}),
)

INVARIANTS = (
    Invariant(
        "gate_closed_is_even_heads",
        "λ -> −∞ closes the gate: the output is the even query heads' plain softmax attention",
        _gate_closed,
        ("odd_minus_even", "pairs_split_in_halves", "gate_complement"),
    ),
    Invariant(
        "reduces_to_v1",
        "with one value per pair V2 is DIFF V1's differential_attention at λ = sigmoid(λ_v2)",
        _reduces_to_v1,
        ("no_sigmoid", "shared_pair_kv", "odd_minus_even", "pairs_split_in_halves"),
    ),
    Invariant(
        "gate_slope_is_odd_head",
        "O is affine in sigmoid(λ) with slope −(the odd query head's own softmax attention, on its own KV head)",
        _gate_slope,
        ("shared_pair_kv", "odd_minus_even"),
    ),
    Invariant(
        "rows_sum_to_one_minus_gate",
        "for V = 1 each visible row is 1 − sigmoid(λ) (both maps are row-stochastic); empty rows are 0",
        _rows_sum,
        ("no_sigmoid", "gate_complement"),
    ),
    *hd.attention_invariants(
        OP,
        brute_force,
        query_args=[0, 3],
        key_args=[1, 2],
        gqa_args=[1, 2],
        brute_mutants=("wrong_scale", "no_sigmoid", "shared_pair_kv"),
    ),
)


def bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(batch=1, heads=4, kv_heads=2, n=5, m=6, d=4, d_v=3))
    q, k, v, lam = s.args
    return [
        *sh.bad_arrays(("q", "k", "v", "lam"), s),
        *sh.bad_options(s, ("scale", "causal", "mask")),
        *hd.qkv_shape_cases(s),
        hd.bad_arg("q-odd-heads", s, 0, q[..., :3, :, :], ValueError, r"\bq\b.*even"),
        hd.bad_arg("q-no-head-axis", s, 0, q[0, 0], ValueError, r"\bq\b"),
        BadInput(
            "kv-heads-not-dividing",
            (q, np.concatenate([k] * 3, -3), np.concatenate([v] * 3, -3), lam),
            s.kwargs,
            ValueError,
            r"\bk\b.*heads",
        ),
        hd.bad_arg("lam-last-axis", s, 3, np.concatenate([lam, lam], -1), ValueError, r"\blam\b.*\(\.\.\., H, n, 1\)"),
        hd.bad_arg("lam-wrong-heads", s, 3, np.concatenate([lam] * 3, -3), ValueError, r"\blam\b.*broadcastable"),
        hd.bad_arg("lam-wrong-length", s, 3, lam[..., :-1, :], ValueError, r"\blam\b"),
    ]


FORM = Form(
    name="diff_v2",
    order=9.5,
    title="Differential attention V2 (2H paired query heads, sigmoid gate)",
    equation=(
        r"O_h = \operatorname{softmax}(\sigma Q_{2h}K_{g(2h)}^\top + M)V_{g(2h)}"
        r" - \operatorname{sigmoid}(\lambda_h)\odot"
        r"\operatorname{softmax}(\sigma Q_{2h+1}K_{g(2h+1)}^\top + M)V_{g(2h+1)}"
    ),
    reference=diff_v2_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("ye2026diffv2"), "DiffAttnV2 (README code listing and multihead_flashdiffv2.py)"),
    status="exact",
    note=(
        "λ is the pre-sigmoid weight, one per token and output head (λ_t = W_λ x_t in the layer). Query head j "
        "reads KV head j // (2H / H_kv): with 2H / H_kv even the pair shares one KV head (the authors' layout); "
        "otherwise the pair's maps read different key and value heads, which DIFF V1's operator cannot express "
        "and which the authors' ablation reports as the worse design. No RMSNorm, no (1 − λ_init)."
    ),
    array_args=("q", "k", "v", "lam"),
    row_args=(0, 3),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(batch=1, heads=6, kv_heads=2, n=7, m=9, d=4, d_v=3, causal=True, options=(("scale", 0.4),)),
        Shape(batch=2, heads=6, kv_heads=3, n=5, d=3, d_v=2, masked=True),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=hd.query_head_flops,
    flop_convention=sh.SOFTMAX_FLOPS + ", over all 2H query heads (the pair subtraction is O(H n d_v))",
    bench=hd.bench_cases(
        {},
        (("tiny",), 1, 4, 2, 16, 8, True),
        (("quick",), 1, 16, 4, 512, 64, True),
        (("full",), 1, 16, 4, 2048, 64, True),
        (("cuda",), 4, 32, 8, 4096, 128, True),
    ),
    diagnoses=sh.attention_diagnoses(diff_v2_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.diff_v2:diff_v2_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.diff_v2:diff_v2_vjp",
            differentiable=True,
        ),
        hd.torch_path("attnlab.fastpath.torch.diff_v2:diff_v2_attention"),
    ),
)
