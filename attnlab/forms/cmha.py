"""Declaration of ComplexFormer's complex multi-head attention (CMHA)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

import attnlab.reference.cmha as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.cmha import MODULUS_EPS, cmha_attention
from attnlab.reference.softmax import softmax_attention

OP = "cmha_attention"
#: How :func:`sample` draws δ and β (a shape option consumed by the sample, never passed on).
ADAPTIVE = ("none", "per_head", "shared", "integer")


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    delta: Any = None,
    beta: Any = None,
    base: float = 10000.0,
    scale: float | None = None,
    eps: float = MODULUS_EPS,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Pairwise cosines of the adaptive angle plus the relative-position angle, in torch (``n × m × d/2``)."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    d, n, m = q.shape[-1], q.shape[-2], k.shape[-2]
    half = d // 2

    def polar(x: Any) -> tuple[Any, Any]:
        re, im = x[..., :half], x[..., half:]
        return torch.sqrt(re * re + im * im + eps), torch.atan2(im, re)

    def per_head(value: Any, default: float) -> Any:
        if value is None:
            return torch.full((half,), default, dtype=q.dtype, device=q.device)
        t = T.tensor(value, like=q)
        return t[:, None, None, :] if t.ndim == 2 else t

    rq, tq = polar(q)
    rk, tk = polar(k)
    angle = per_head(delta, 1.0) * (tq[..., :, None, :] - tk[..., None, :, :]) + per_head(beta, 0.0)
    steps = torch.arange(half, dtype=torch.float64, device=q.device)
    freq = torch.pow(torch.tensor(float(base), dtype=torch.float64), -2.0 * steps / d)
    offsets = (torch.arange(n, device=q.device) + (m - n))[:, None] - torch.arange(m, device=q.device)[None, :]
    relative = (offsets[..., None].to(torch.float64) * freq).to(q.dtype)
    scores = (1.0 if scale is None else scale) * (
        rq[..., :, None, :] * rk[..., None, :, :] * torch.cos(angle + relative)
    ).sum(-1)
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device)
    return T.masked_softmax(scores, allowed) @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    delta: Any = None,
    beta: Any = None,
    base: float = 10000.0,
    scale: float | None = None,
    eps: float = MODULUS_EPS,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops: polar halves, the score sum over frequencies, then the softmax loop."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    d, n, m = q.shape[-1], q.shape[-2], k.shape[-2]
    half = d // 2
    sigma = 1.0 if scale is None else scale
    heads = q.shape[-3] if q.ndim >= 3 else 1

    def table(value: Any, default: float) -> np.ndarray:
        arr = np.full((heads, half), default) if value is None else np.asarray(value, dtype=np.float64)
        return np.broadcast_to(arr, (heads, half))

    slopes, offsets = table(delta, 1.0), table(beta, 0.0)
    vis = sh.visibility(n, m, causal, mask, q.shape[:-2])
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        head = idx[-1] if q.ndim >= 3 else 0
        logits = np.zeros((n, m))
        for i in range(n):
            for j in range(m):
                total = 0.0
                for t in range(half):
                    a, b = q[idx][i, t], q[idx][i, t + half]
                    c, e = k[idx][j, t], k[idx][j, t + half]
                    rotation = slopes[head, t] * (math.atan2(b, a) - math.atan2(e, c)) + offsets[head, t]
                    position = (i + m - n - j) * base ** (-2.0 * t / d)
                    total += (
                        math.sqrt(a * a + b * b + eps) * math.sqrt(c * c + e * e + eps) * math.cos(rotation + position)
                    )
                logits[i, j] = sigma * total
        out[idx] = sh.softmax_rows_loop(logits, vis[idx], v[idx])
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v)`` as for softmax attention, plus δ and β drawn per the shape option ``adaptive``:
    ``none`` (defaults δ = 1, β = 0: RoPE), ``per_head`` (the released code's init δ ~ N(0, 2/d), and
    β ~ N(0, 0.5²)), ``shared`` (δ ~ N(1, 0.5²), β uniform in [−π, π]) or ``integer`` (δ = 2, β ~ N(0, 1))."""
    options = shape.option_dict
    adaptive = options.pop("adaptive", "none")
    base = sh.attention_sample(seed, replace(shape, options=tuple(sorted(options.items()))))
    rng = np.random.default_rng(seed + 7919)
    half, heads = shape.d // 2, shape.heads
    extra: dict[str, Any] = {}
    if adaptive == "per_head":
        extra = {
            "delta": rng.normal(0.0, math.sqrt(2.0 / shape.d), (heads, half)),
            "beta": rng.normal(0.0, 0.5, (heads, half)),
        }
    elif adaptive == "shared":
        extra = {"delta": rng.normal(1.0, 0.5, half), "beta": rng.uniform(-math.pi, math.pi, half)}
    elif adaptive == "integer":
        extra = {"delta": np.full((heads, half), 2.0), "beta": rng.normal(0.0, 1.0, (heads, half))}
    return SampleInput(base.args, {**base.kwargs, **extra}, shape.label())


def adapt(shape: Shape) -> Shape:
    """Even head dims; δ/β drawn by a rule of the length so every kind appears among the standard shapes."""
    adapted = replace(shape, d=shape.d + shape.d % 2)
    if "adaptive" in shape.option_dict:
        return adapted
    return adapted.with_options(adaptive=("none", "per_head", "shared")[shape.n % 3])


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    from hypothesis import strategies as st

    options: dict[str, Any] = {"adaptive": draw(st.sampled_from(ADAPTIVE))}
    if draw(st.booleans()):
        options["scale"] = draw(st.floats(0.05, 2.0))
    if draw(st.booleans()):
        options["base"] = draw(st.sampled_from([100.0, 10000.0, 500000.0]))
    if draw(st.booleans()):
        options["eps"] = draw(st.sampled_from([0.0, 1e-6]))
    return options


SHAPES = sh.attention_shapes(max_d=12, options=_options).map(lambda s: replace(s, d=2 * max(1, s.d // 2)))


# ---------------------------------------------------------------------------------------------
# invariants


def rope_half(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """RoPE with the half-split ("NeoX") pairing: ``(x_t, x_{t+h})`` rotated by ``p · base^{−2t/d}``."""
    d = x.shape[-1]
    half = d // 2
    angle = positions[:, None] * base ** (-2.0 * np.arange(half) / d)
    re, im = x[..., :half], x[..., half:]
    return np.concatenate([re * np.cos(angle) - im * np.sin(angle), re * np.sin(angle) + im * np.cos(angle)], -1)


def _plain(sample: SampleInput) -> dict[str, Any]:
    return {k: v for k, v in sample.kwargs.items() if k in ("causal", "mask")}


def _rope_reduction(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    n, m = q.shape[-2], k.shape[-2]
    base = sample.kwargs.get("base", 10000.0)
    qe, ke, ve = sh.repeat_kv(q, k, v)
    want = softmax_attention(
        rope_half(qe, np.arange(n) + (m - n), base),
        rope_half(ke, np.arange(m), base),
        ve,
        scale=sample.kwargs.get("scale", 1.0),
        **_plain(sample),
    )
    sh.close(
        "CMHA with δ = 1, β = 0, ε = 0 vs RoPE (half-split) attention",
        ops.cmha_attention(*sample.args, **{**sample.kwargs, "eps": 0.0}),
        want,
    )


def _features(
    x: np.ndarray, positions: np.ndarray, slopes: np.ndarray, offsets: np.ndarray, base: float, eps: float
) -> np.ndarray:
    d = x.shape[-1]
    half = d // 2
    re, im = x[..., :half], x[..., half:]
    phase = slopes * np.arctan2(im, re) + positions[:, None] * base ** (-2.0 * np.arange(half) / d) + offsets
    radius = np.sqrt(re * re + im * im + eps)
    return np.concatenate([radius * np.cos(phase), radius * np.sin(phase)], -1)


def _head_rows(value: Any, default: float, half: int) -> np.ndarray:
    if value is None:
        return np.full(half, default)
    arr = np.asarray(value, dtype=np.float64)
    return arr[:, None, :] if arr.ndim == 2 else arr


def _separable(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    n, m, half = q.shape[-2], k.shape[-2], q.shape[-1] // 2
    kw = sample.kwargs
    base, eps = kw.get("base", 10000.0), kw.get("eps", MODULUS_EPS)
    slopes = _head_rows(kw.get("delta"), 1.0, half)
    qe, ke, ve = sh.repeat_kv(q, k, v)
    psi_q = _features(qe, np.arange(n) + (m - n), slopes, _head_rows(kw.get("beta"), 0.0, half), base, eps)
    psi_k = _features(ke, np.arange(m), slopes, np.zeros(half), base, eps)
    want = softmax_attention(psi_q, psi_k, ve, scale=kw.get("scale", 1.0), **_plain(sample))
    sh.close(
        "pairwise CMHA vs softmax attention on the separable features ψ(q), ψ(k)", sample.call(ops.cmha_attention), want
    )


def _rotate_pairs(x: np.ndarray, omega: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    re, im = x[..., :half], x[..., half:]
    return np.concatenate([re * np.cos(omega) - im * np.sin(omega), re * np.sin(omega) + im * np.cos(omega)], -1)


def _integer_slopes(sample: SampleInput) -> bool:
    delta = sample.kwargs.get("delta")
    return delta is None or bool(np.all(np.asarray(delta) == np.round(np.asarray(delta))))


def _common_phase_shift(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    omega = np.random.default_rng(8).uniform(-math.pi, math.pi, q.shape[-1] // 2)
    # ε = 0: with ε > 0 a zero pair keeps the angle 0 while its partners rotate, and its √ε modulus leaks
    exact = sample.with_args(*sample.args, eps=0.0)
    shifted = exact.with_args(_rotate_pairs(q, omega), _rotate_pairs(k, omega), v)
    sh.close(
        "output after rotating every (re, im) pair of q and k by a common angle",
        shifted.call(ops.cmha_attention),
        exact.call(ops.cmha_attention),
    )


# ---------------------------------------------------------------------------------------------
# mutants


def _arctan_quadrant(original: Any) -> Any:
    def mutated(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        radius, _ = original(x, eps)
        half = x.shape[-1] // 2
        re, im = x[..., :half], x[..., half:]
        return radius, np.arctan(np.divide(im, re, out=np.zeros_like(re), where=re != 0))

    return mutated


def _scaled_by_sqrt_d(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, scale: float | None = None, **kwargs: Any) -> Any:
        return original(q, k, v, scale=np.shape(q)[-1] ** -0.5 if scale is None else scale, **kwargs)

    return mutated


MUTANTS = (
    Mutant(
        "query_positions_top_left",
        "query i placed at position i instead of i + m − n",
        {"query_positions": lambda original: lambda n, m: np.arange(n)},
    ),
    Mutant(
        "frequency_exponent_halved",
        "frequencies base^(−t/d) instead of base^(−2t/d)",
        {"frequencies": lambda original: lambda d, base: base ** (-np.arange(d // 2) / d)},
    ),
    Mutant(
        "scaled_by_sqrt_d",
        "default scale d^(−1/2) (the standard-attention habit) instead of 1",
        {OP: _scaled_by_sqrt_d},
    ),
    Mutant(
        "beta_subtracted",
        "adaptive angle δ·AS − β",
        {"adaptive_angle": lambda original: lambda diff, delta, beta: delta * diff - beta},
    ),
    Mutant("arctan_quadrant", "angles by arctan(im/re), which loses the quadrant", {"euler": _arctan_quadrant}),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
    sh.no_max_shift(),
)


def _default_rotation(sample: SampleInput) -> bool:
    return "delta" not in sample.kwargs and "beta" not in sample.kwargs


INVARIANTS = (
    Invariant(
        "rope_reduction",
        "δ = 1, β = 0 (and ε = 0): CMHA equals softmax attention of RoPE-rotated (half-split pairing) queries "
        "and keys at scale σ, queries at positions i + m − n",
        _rope_reduction,
        ("query_positions_top_left", "frequency_exponent_halved", "scaled_by_sqrt_d"),
        _default_rotation,
    ),
    Invariant(
        "separable_features",
        "the pairwise cosine scores equal ψ(q_i)·ψ(k_j) with ψ = [r cos φ, r sin φ], φ^q = δθ^q + p g + β, "
        "φ^k = δθ^k + p g: CMHA is softmax attention on pointwise features",
        _separable,
        ("beta_subtracted",),
    ),
    Invariant(
        "common_phase_shift",
        "with integer slopes δ and ε = 0, rotating every (re, im) pair of queries and keys by a common angle "
        "leaves the output unchanged (only angle differences enter)",
        _common_phase_shift,
        ("arctan_quadrant",),
        _integer_slopes,
    ),
    sh.convex_hull(OP, mutants=("no_max_shift",)),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("top_left_causal", "ignores_mask", "output_nudged", "arctan_quadrant", "beta_subtracted"),
    ),
)


def bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3, options=(("adaptive", "per_head"),)))
    q, k, v = base.args
    kw = {key: val for key, val in base.kwargs.items() if key not in ("delta", "beta")}
    return [
        *sh.bad_attention_inputs(SampleInput(base.args, kw, base.label)),
        BadInput("odd-head-dim", (q[..., :3], k[..., :3], v), kw, ValueError, r"\bq\b.*even"),
        BadInput("delta-shape", base.args, {**kw, "delta": np.ones((3, 2))}, ValueError, r"\bdelta\b.*shape"),
        BadInput("beta-length", base.args, {**kw, "beta": np.zeros(3)}, ValueError, r"\bbeta\b.*shape"),
        BadInput("delta-nan", base.args, {**kw, "delta": np.array([1.0, np.nan])}, ValueError, r"\bdelta\b.*NaN"),
        BadInput("beta-int", base.args, {**kw, "beta": np.zeros(2, dtype=int)}, TypeError, r"\bbeta\b.*dtype"),
        BadInput("base-zero", base.args, {**kw, "base": 0.0}, ValueError, r"\bbase\b.*positive"),
        BadInput("eps-negative", base.args, {**kw, "eps": -1e-9}, ValueError, r"\beps\b"),
        BadInput("eps-string", base.args, {**kw, "eps": "tiny"}, TypeError, r"\beps\b"),
        BadInput("eps-bool", base.args, {**kw, "eps": True}, TypeError, r"\beps\b"),
        # phases |β| + 2π|δ| + (n + m)·base^(−(d−2)/d) beyond 2^20 rad, from δ, from β and from a base below 1
        # (its top frequency grows)
        BadInput(
            "delta-phases-too-large",
            base.args,
            {**kw, "delta": np.array([2e5, 1.0])},
            ValueError,
            r"\bdelta/beta/base\b.*phases up to 1\.26e\+06",
        ),
        BadInput(
            "beta-phases-too-large",
            base.args,
            {**kw, "beta": np.array([1.1e6, 0.0])},
            ValueError,
            r"\bdelta/beta/base\b.*phases up to 1\.1e\+06",
        ),
        BadInput(
            "base-phases-too-large", base.args, {**kw, "base": 1e-30}, ValueError, r"\bdelta/beta/base\b.*phases up to"
        ),
    ]


FORM = Form(
    name="cmha",
    order=16,
    title="ComplexFormer complex multi-head attention (CMHA)",
    equation=(
        r"s_{ij} = \sigma\sum_t r^q_{it} r^k_{jt}"
        r"\cos\!\big(\delta_t(\theta^q_{it}-\theta^k_{jt}) + \beta_t + (p_i - p_j) g_t\big),"
        r"\ g_t = 10000^{-2t/d},\quad O = \operatorname{softmax}_{\text{row}}(s + M)V"
    ),
    reference=cmha_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("shao2025complexformer"),
        "abstract; constants as in shaojintian/complexFormer@f91ac74",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The score is the released code's (shaojintian/complexFormer@f91ac74, ComplexMultiHeadAttentionV2): polar "
        "form of the [re | im] halves with sqrt(re² + im² + 1e-9), adaptive angle δ·(θ^q − θ^k) + β, relative "
        "positions (p_i − p_j)·10000^(−2t/d), no 1/√d scale; it matches the abstract's exp[i(Adapt(AS) + Δ(P))]. "
        "The code casts the frequencies to bfloat16 and runs under bfloat16 autocast; the reference is float64. "
        "Queries sit at positions i + m − n (bottom-right, as the causal mask). δ and β are keyword arrays "
        "(default δ = 1, β = 0: exactly RoPE attention with the half-split pairing when eps = 0). arXiv v2 of "
        "the paper is withdrawn."
    ),
    array_args=("q", "k", "v"),
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=6,
            m=9,
            d=6,
            d_v=3,
            causal=True,
            options=(("adaptive", "integer"), ("base", 100.0)),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=1,
            n=7,
            d=8,
            d_v=2,
            masked=True,
            options=(("adaptive", "none"), ("eps", 0.0), ("scale", 0.3)),
        ),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=3, d=4, d_v=4, options=(("adaptive", "shared"), ("scale", 1.5))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=sh.softmax_flops,
    flop_convention=sh.SOFTMAX_FLOPS + "; the pointwise polar features (O(n·d)) are not counted",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, options=(("adaptive", "per_head"),)), ("quick",)
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True, options=(("adaptive", "per_head"),)),
            ("full",),
        ),
        BenchCase(
            Shape(
                batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True, options=(("adaptive", "per_head"),)
            ),
            ("cuda",),
        ),
    ),
    diagnoses=tuple(d for d in sh.attention_diagnoses(cmha_attention) if "scale" not in d.message),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.cmha:cmha_attention", "numpy", tiles=(128,)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.cmha:cmha_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
