"""Declaration of Hamming attention on sign codes (Hamming Attention Distillation)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.hamming as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Paper, Source
from attnlab.reference.hamming import hamming_attention

OP = "hamming_attention"

PAPER = Paper(
    "horton2025hamming",
    "Horton, Mark and Molom-Ochir, Tergel and Liu, Peter and Gopal, Bhavna and Wei, Chiyue and Guo, Cong and "
    "Taylor, Brady and Fan, Deliang and Wang, Shan X. and Li, Hai and Chen, Yiran",
    "Horton et al.",
    "Hamming Attention Distillation: Binarizing Keys and Queries for Efficient Long-Context Transformers",
    2025,
    "2502.01770",
)


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> np.ndarray:
    """Logits ``σ (d − 2·#{t: sign q_it ≠ sign k_jt})`` counted bit by bit, an own top-N with ties, then
    the scalar softmax loop."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    d = q.shape[-1]
    sigma = d**-0.5 if scale is None else scale
    vis = np.array(sh.visibility(q.shape[-2], k.shape[-2], causal, mask, q.shape[:-2]))
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        n, m = q.shape[-2], k.shape[-2]
        logits = np.zeros((n, m))
        for i in range(n):
            for j in range(m):
                distance = sum((q[idx][i, t] >= 0) != (k[idx][j, t] >= 0) for t in range(d))
                logits[i, j] = sigma * (d - 2 * distance)
            if top_n is not None:
                seen = sorted((logits[i, j] for j in range(m) if vis[idx][i, j]), reverse=True)
                if len(seen) > top_n:
                    for j in range(m):
                        vis[idx][i, j] = vis[idx][i, j] and logits[i, j] >= seen[top_n - 1]
        out[idx] = sh.softmax_rows_loop(logits, vis[idx], v[idx])
    return out


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> Any:
    """Softmax over ``σ ŝ(q)·ŝ(k)`` with ``ŝ(x) = +1 if x >= 0 else −1``, top-N keeping ties, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    codes_q = torch.where(q.detach() >= 0, 1.0, -1.0).to(q.dtype)
    codes_k = torch.where(k.detach() >= 0, 1.0, -1.0).to(k.dtype)
    exact = torch.float64 if q.dtype == torch.float64 else torch.float32  # integer dot products, exact
    scores = (T.default_scale(scale, q.shape[-1]) * (codes_q.to(exact) @ codes_k.to(exact).transpose(-1, -2))).to(
        q.dtype
    )
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device).expand(scores.shape)
    if top_n is not None and top_n < scores.shape[-1]:
        ranked = scores.masked_fill(~allowed, -torch.inf).sort(dim=-1, descending=True).values
        allowed = allowed & (scores >= ranked[..., top_n - 1 : top_n])
    return T.masked_softmax(scores, allowed) @ v


def sample(seed: int, shape: Shape) -> SampleInput:
    s = sh.attention_sample(seed, shape)
    q = np.array(s.args[0])
    q[..., ::3, 0] = 0.0  # exercise sign(0) = +1
    return SampleInput((q, *s.args[1:]), s.kwargs, s.label)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = sh.positive_scale(draw, shape)
    if draw(st.booleans()):
        options["top_n"] = draw(st.integers(1, shape.keys + 2))
    return options


def _scores_are_sign_dots(ops: Any, sample: SampleInput) -> None:
    q, k = sh.repeat_kv(*sample.args[:2])
    own = np.where(q >= 0, 1.0, -1.0) @ np.swapaxes(np.where(k >= 0, 1.0, -1.0), -1, -2)
    sh.close("scores vs sign-code dot products", ops.hamming_scores(*sample.args[:2], scale=1.0), own, atol=0.0)


def _rescale(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    rng = np.random.default_rng(7)
    cq = rng.uniform(0.1, 10.0, (*q.shape[:-1], 1))
    ck = rng.uniform(0.1, 10.0, (*k.shape[:-1], 1))
    sh.close(
        "positively rescaled q, k",
        ops.hamming_attention(q * cq, k * ck, v, **sample.kwargs),
        sample.call(ops.hamming_attention),
    )


def _top_n_full(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kw = sample.without("top_n").kwargs
    sh.close(
        "top_n >= m vs dense",
        ops.hamming_attention(q, k, v, top_n=k.shape[-2], **kw),
        ops.hamming_attention(q, k, v, **kw),
    )


def _top_n_keeps_ties(ops: Any, sample: SampleInput) -> None:
    q, k, _ = sample.args
    m, top_n = k.shape[-2], sample.kwargs["top_n"]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    kept = ops.hamming_attention(q, k, identity, **sample.kwargs) > 0
    qe, ke = sh.repeat_kv(q, k)
    scores = np.where(qe >= 0, 1.0, -1.0) @ np.swapaxes(np.where(ke >= 0, 1.0, -1.0), -1, -2)
    visible = np.array(sh.visible_of(sample, qe, ke))
    ranked = -np.sort(-np.where(visible, scores, -np.inf), axis=-1)
    nth = ranked[..., min(top_n, m) - 1 : min(top_n, m)]
    want = visible & (scores >= nth)
    assert np.array_equal(kept, want), (
        f"kept keys differ from 'visible and score >= the N-th' in {int((kept != want).sum())} places"
    )


def _sign_zero_negative(original: Any) -> Any:
    return lambda x: np.where(np.asarray(x) > 0, 1.0, -1.0)


def _raw_scores(original: Any) -> Any:
    def mutated(q: Any, k: Any, *, scale: float | None = None) -> np.ndarray:
        q, k = np.asarray(q, dtype=float), np.asarray(k, dtype=float)
        qe, ke = sh.repeat_kv(q, k)
        return (q.shape[-1] ** -0.5 if scale is None else scale) * (qe @ np.swapaxes(ke, -1, -2))

    return mutated


def _strict_top_n(original: Any) -> Any:
    def mutated(scores: np.ndarray, allowed: np.ndarray, top_n: int) -> np.ndarray:
        allowed = np.broadcast_to(allowed, scores.shape)
        if top_n >= scores.shape[-1]:
            return allowed
        order = np.argsort(-np.where(allowed, scores, -np.inf), axis=-1, kind="stable")[..., :top_n]
        keep = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(keep, order, True, axis=-1)
        return allowed & keep

    return mutated


def _top_n_off_by_one(original: Any) -> Any:
    def mutated(scores: np.ndarray, allowed: np.ndarray, top_n: int) -> np.ndarray:
        return (
            original(scores, allowed, max(1, top_n - 1))
            if top_n >= scores.shape[-1]
            else original(scores, allowed, top_n)
        )

    return mutated


MUTANTS = (
    Mutant("sign_zero_negative", "sign(0) = -1 instead of +1", {"sign_code": _sign_zero_negative}),
    Mutant("raw_scores", "real-valued q·k logits instead of sign codes", {"hamming_scores": _raw_scores}),
    Mutant("strict_top_n", "top-N keeps exactly N keys, dropping ties with the N-th", {"_keep_top_n": _strict_top_n}),
    Mutant("top_n_off_by_one", "top_n = m keeps only m - 1 keys", {"_keep_top_n": _top_n_off_by_one}),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.top_left_causal(OP),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)


def _has_top_n(sample: SampleInput) -> bool:
    return sample.kwargs.get("top_n") is not None


INVARIANTS = (
    Invariant(
        "scores_are_sign_dots",
        "σ (d − 2 Ham) equals σ sign(q)·sign(k), exactly",
        _scores_are_sign_dots,
        ("sign_zero_negative",),
    ),
    Invariant(
        "rescale_invariance", "positive per-vector rescaling of q and k changes nothing", _rescale, ("raw_scores",)
    ),
    Invariant(
        "top_n_full_is_dense",
        "top_n >= m keeps every key",
        _top_n_full,
        ("top_n_off_by_one",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "top_n_keeps_ties",
        "top-N keeps at least min(N, visible) keys, every tie of the N-th included",
        _top_n_keeps_ties,
        ("strict_top_n",),
        _has_top_n,
    ),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("top_left_causal", "ignores_mask", "output_nudged", "sign_zero_negative", "strict_top_n"),
    ),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape())
    return [
        *sh.bad_attention_inputs(base),
        BadInput("top-n-zero", base.args, {"top_n": 0}, ValueError, r"\btop_n\b"),
        BadInput("top-n-float", base.args, {"top_n": 2.5}, TypeError, r"\btop_n\b"),
        BadInput("scale-overflows", base.args, {**base.kwargs, "scale": 1e308}, ValueError, r"\bscale\b.*not finite"),
    ]


FORM = Form(
    name="hamming",
    order=11,
    title="Hamming attention on sign codes (HAD)",
    equation=(
        r"O = \operatorname{softmax}_{\text{row}}\!\left(\sigma\,(d - "
        r"2\,\mathrm{Ham}(\operatorname{sign} Q, \operatorname{sign} K)) + M\right)V"
    ),
    reference=hamming_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(PAPER, "§3 (binarised queries and keys; top-N sparsification)", abstract_level=True),
    status="exact",
    note="sign(0) = +1; for ±1 codes q·k = d − 2 Ham(q, k); top-N keeps every key tied with the N-th logit.",
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sample,
    shapes=sh.attention_shapes(options=_options),
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=2, n=7, m=9, d=4, d_v=3, causal=True, options=(("top_n", 3),)),
        Shape(batch=1, heads=2, kv_heads=1, n=6, d=3, d_v=2, masked=True, options=(("scale", 0.7), ("top_n", 2))),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=8, d=6, d_v=2, options=(("top_n", 8),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=sh.softmax_flops,
    flop_convention=sh.SOFTMAX_FLOPS + " (the score GEMM runs on ±1 codes)",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(hamming_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.hamming:hamming_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.hamming:hamming_vjp",
            differentiable=True,
            tiles=(128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.hamming:hamming_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
