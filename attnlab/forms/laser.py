"""Declaration of LASER attention, log(softmax(S) exp(V))."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import attnlab.reference.laser as module
from attnlab.core import BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.laser import laser_attention

OP = "laser_attention"


def brute_force(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    """``o_ic = log Σ_j a_ij e^{v_jc}`` one scalar at a time, with ``a`` the softmax weights (own loop)."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    vis = sh.visibility(q.shape[-2], k.shape[-2], causal, mask, q.shape[:-2])
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        logits = sigma * sh.dot_loop(q[idx], k[idx])
        for i in range(q.shape[-2]):
            seen = [j for j in range(k.shape[-2]) if vis[idx][i, j]]
            if not seen:
                continue
            for c in range(v.shape[-1]):
                terms = [logits[i, j] + v[idx][j, c] for j in seen]
                top, base = max(terms), max(logits[i, j] for j in seen)
                joint = top + math.log(sum(math.exp(t - top) for t in terms))
                norm = base + math.log(sum(math.exp(logits[i, j] - base) for j in seen))
                out[idx][i, c] = joint - norm
    return out


def oracle(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None) -> Any:
    """``O_ic = LSE_j(S_ij + V_jc) − LSE_j(S_ij)`` over visible ``j`` with the joint tensor materialised."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device).expand(scores.shape)
    empty = ~allowed.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~allowed, -math.inf).masked_fill(empty, 0.0)  # empty rows: harmless, zeroed below
    joint = scores[..., :, :, None] + v[..., None, :, :]
    out = torch.logsumexp(joint, dim=-2) - torch.logsumexp(scores, dim=-1, keepdim=True)
    return out.masked_fill(empty, 0.0)


def sample(seed: int, shape: Shape) -> SampleInput:
    return sh.attention_sample(seed, shape, value_scale=2.0)


def _visible_rows(sample: SampleInput) -> np.ndarray:
    q, k, _ = sh.repeat_kv(*sample.args)
    return np.any(sh.visible_of(sample, q, k), axis=-1)[..., None]


def _shift_equivariance(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    c = np.random.default_rng(5).standard_normal(v.shape[-1])
    has = _visible_rows(sample)
    shifted = np.where(has, ops.laser_attention(q, k, v + c, **sample.kwargs) - c, 0.0)
    sh.close("LASER(V + 1 c^T) - c", shifted, sample.call(ops.laser_attention), atol=1e-9)


def _sandwich(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    out = sample.call(ops.laser_attention)
    linear = sh.attention_loop(q, k, v, **sample.kwargs)
    assert np.all(out >= linear - 1e-9 * (1 + np.abs(linear))), (
        f"Jensen: LASER < AV by {float(np.max(linear - out)):.3e}"
    )
    sh.convex_hull(OP, mutants=("missing_normaliser",)).check(ops, sample)


def _small_value_limit(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    eps = 1e-6
    limit = ops.laser_attention(q, k, eps * v, **sample.kwargs) / eps
    # LASER(εV)/ε = AV + (ε/2)·Var_A(V) + O(ε²)
    sh.close(
        "LASER(eps V)/eps vs AV",
        limit,
        sh.attention_loop(q, k, v, **sample.kwargs),
        atol=eps * (1 + float(np.max(v * v))),
    )


def _global_shift_agrees(ops: Any, sample: SampleInput) -> None:
    has = _visible_rows(sample)
    shifted = np.where(has, sample.call(ops.laser_attention_global_shift), 0.0)  # empty rows: log 0 by design
    sh.close("log-domain vs global-shift LWSE (moderate values)", shifted, sample.call(ops.laser_attention), atol=1e-9)


def _exact_logit_sample(sample: SampleInput) -> SampleInput:
    """The sample with integer queries and keys and ``scale = 1``: its logits, up to ~1e5, are exact in
    float64, so any difference from the extended-precision value comes from the log-sum-exps."""
    q, k, v = sample.args
    return sample.with_args(np.round(8.0 * q) * 40.0, np.round(8.0 * k), v, scale=1.0)


def _extended_precision(ops: Any, sample: SampleInput) -> None:
    from attnlab.proofs_checks.laser import laser_attention_mp

    exact = _exact_logit_sample(sample)
    want = exact.call(laser_attention_mp)
    got = exact.call(ops.laser_attention)
    m = sample.args[1].shape[-2]
    bound = 8 * np.finfo(np.float64).eps * (1.0 + float(np.max(np.abs(want))) + np.log(m))
    err = float(np.max(np.abs(got - want)))
    assert err <= bound, f"error {err:.3e} against the 50-digit evaluation > {bound:.3e} (logits up to ~1e5)"


def _unshifted_lse(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None) -> Any:
        qa, ka, va, sigma, allowed = module._prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
        scores = sigma * (qa @ np.swapaxes(ka, -1, -2))  # LSE(S + V) − LSE(S) without a per-row shift
        visible = np.broadcast_to(allowed, scores.shape)
        empty = ~np.any(visible, axis=-1)
        joint = module.masked_logsumexp(scores[..., :, :, None] + va[..., None, :, :], visible[..., None], axis=-2)
        out = joint - np.where(empty, 0.0, module.masked_logsumexp(scores, visible))[..., None]
        return np.where(empty[..., None], 0.0, out)

    return mutated


def _missing_log(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        return np.exp(original(q, k, v, **kwargs))  # softmax(S)·exp(V), the log forgotten

    return mutated


def _missing_normaliser(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        return original(q, k, v, **kwargs) + math.log(2.0)  # a dropped 1/2 inside the log

    return mutated


def _shift_not_restored(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        _, _, ve = sh.repeat_kv(*(np.asarray(a, dtype=float) for a in (q, k, v)))
        return original(q, k, v, **kwargs) - np.max(ve, axis=-2, keepdims=True)

    return mutated


MUTANTS = (
    Mutant(
        "unshifted_lse",
        "LSE(S + V) − LSE(S) without the per-row shift (error grows like eps·max|S|)",
        {OP: _unshifted_lse},
    ),
    Mutant("missing_log", "returns softmax(S)·exp(V) (the log is forgotten)", {OP: _missing_log}),
    Mutant(
        "missing_normaliser", "every output is off by a constant (a dropped normaliser term)", {OP: _missing_normaliser}
    ),
    Mutant(
        "global_shift_not_restored",
        "the global-shift form forgets to add the column max back",
        {"laser_attention_global_shift": _shift_not_restored},
    ),
    sh.leaky_causal(OP),
    sh.drops_last_key(OP, (1, 2)),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.top_left_causal(OP),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "shift_equivariance",
        "LASER(V + 1 cᵀ) = LASER(V) + 1 cᵀ on rows with a visible key",
        _shift_equivariance,
        ("missing_log",),
    ),
    Invariant("sandwich", "A V <= LASER <= max visible V (Jensen and the hull)", _sandwich, ("missing_normaliser",)),
    Invariant("small_value_limit", "LASER(ε V)/ε -> A V as ε -> 0", _small_value_limit, ("missing_log", "wrong_scale")),
    Invariant(
        "global_shift_agrees",
        "the paper's global-max log-weighted-sum-exp equals the log-domain form when nothing underflows",
        _global_shift_agrees,
        ("global_shift_not_restored",),
    ),
    Invariant(
        "matches_extended_precision",
        "on exact logits up to ~1e5 the reference is within 8 eps·(1 + |O| + log m) of a 50-digit evaluation",
        _extended_precision,
        ("unshifted_lse",),
        lambda s: sh.longest(s) <= 12,
    ),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("top_left_causal", "wrong_scale", "ignores_mask", "output_nudged")
    ),
)

_BIG = frozenset({"numpy", "composed"})  # the log-domain evaluations materialise (n, m, d_v) per head

FORM = Form(
    name="laser",
    order=3,
    title="LASER: log(softmax(S) exp(V))",
    equation=r"O = \log\!\left(\operatorname{softmax}_{\text{row}}(\sigma QK^\top + M)\, \exp(V)\right)",
    reference=laser_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("duvvuri2025laser"), "§3, Eq. (5); log-weighted-sum-exp trick §3.1"),
    status="exact",
    note=(
        "Evaluated in the log domain, O_ic = LSE_j(S_ij + V_jc) - LSE_j(S_ij), finite for every finite input; the "
        "paper's global column-max shift (laser_attention_global_shift) underflows to -inf on rows whose visible "
        "values sit far below the column max."
    ),
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sample,
    shapes=sh.attention_shapes(options=sh.positive_scale),
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=2, n=6, d=4, d_v=3, causal=True, options=(("scale", 0.4),)),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=7, d=8, d_v=2, masked=True, options=(("scale", 1.5),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=lambda: sh.bad_attention_inputs(sample(0, Shape())),
    flops=sh.softmax_flops,
    flop_convention=sh.SOFTMAX_FLOPS + "; the exponential transformation's elementwise work is not counted",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=4, kv_heads=4, n=256, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("full",), skip=_BIG),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128), ("cuda",), skip=_BIG),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",), skip=_BIG),
    ),
    peers={"composed_shift": "attnlab.fastpath.torch.laser:global_shift_peer"},
    baseline="composed_shift",
    diagnoses=sh.attention_diagnoses(laser_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.laser:laser_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.laser:laser_vjp",
            differentiable=True,
            tiles=(64, 128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.laser:laser_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
