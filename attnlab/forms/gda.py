"""Declaration of Grouped Differential Attention (GDA): r signal heads share one noise head."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.gda as module
from attnlab.core import BadInput, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _heads as hd
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.differential import differential_attention
from attnlab.reference.gda import RMS_EPS, gda_attention, lambda_init

OP = "gda_attention"
#: Options the invariants switch off to look at the bare difference ``O1 − λ O2``.
BARE = {"norm": False, "lam_init": None}


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    ratio: int,
    lam: float,
    lam_init: float | None = None,
    norm: bool = True,
    norm_weight: Any = None,
    eps: float = RMS_EPS,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """The GDA head outputs with every score matrix materialised, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.tensor(q), T.tensor(k), T.tensor(v)
    groups = q.shape[-3] // (ratio + 1)
    grouped = q.reshape(*q.shape[:-3], groups, ratio + 1, *q.shape[-2:])
    signal_q = grouped[..., :ratio, :, :].reshape(*q.shape[:-3], groups * ratio, *q.shape[-2:])
    noise_q = grouped[..., ratio, :, :]
    values = torch.cat([v[..., 0::2, :, :], v[..., 1::2, :, :]], dim=-1)
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    signal_allowed = noise_allowed = allowed
    if allowed.ndim >= 3 and allowed.shape[-3] == q.shape[-3] > 1:  # one pattern per query head
        per_group = allowed.reshape(*allowed.shape[:-3], groups, ratio + 1, *allowed.shape[-2:])
        signal_allowed = per_group[..., :ratio, :, :].reshape(*allowed.shape[:-3], groups * ratio, *allowed.shape[-2:])
        noise_allowed = per_group[..., ratio, :, :]
    sigma = T.default_scale(scale, q.shape[-1])

    def attend(queries: Any, keys: Any, visible: Any) -> Any:
        qe, ke, ve = T.repeat_kv(queries, keys, values)
        return T.masked_softmax(sigma * (qe @ ke.transpose(-1, -2)), visible) @ ve

    noise = attend(noise_q, k[..., 1::2, :, :], noise_allowed)
    out = attend(signal_q, k[..., 0::2, :, :], signal_allowed) - lam * torch.repeat_interleave(noise, ratio, dim=-3)
    if norm:
        weight = (
            torch.ones(out.shape[-1], dtype=out.dtype, device=out.device)
            if norm_weight is None
            else T.tensor(norm_weight, like=out)
        )
        mean_square = torch.mean(out * out, dim=-1, keepdim=True) + eps
        safe = torch.where(mean_square > 0, mean_square, torch.ones_like(mean_square))
        out = torch.where(mean_square > 0, out / torch.sqrt(safe), torch.zeros_like(out)) * weight
    return out if lam_init is None else (1.0 - lam_init) * out


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    ratio: int,
    lam: float,
    lam_init: float | None = None,
    norm: bool = True,
    norm_weight: Any = None,
    eps: float = RMS_EPS,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops over (batch, group, signal head): head indices, KV pairs and the norm by hand."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    batch, heads, n, d = q.shape
    pairs, m, d_v = k.shape[-3] // 2, k.shape[-2], v.shape[-1]
    groups = heads // (ratio + 1)
    signal_heads = groups * ratio
    sigma = d**-0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, (batch, heads))
    weight = np.ones(2 * d_v) if norm_weight is None else np.asarray(norm_weight, dtype=np.float64)
    out = np.zeros((batch, signal_heads, n, 2 * d_v))
    for b in range(batch):
        for g in range(groups):
            pair = g // (groups // pairs)
            values = np.concatenate([v[b, 2 * pair], v[b, 2 * pair + 1]], axis=-1)
            noise_head = g * (ratio + 1) + ratio
            noise = sh.softmax_rows_loop(
                sigma * sh.dot_loop(q[b, noise_head], k[b, 2 * pair + 1]), vis[b, noise_head], values
            )
            for s in range(ratio):
                head = g * (ratio + 1) + s
                signal = sh.softmax_rows_loop(sigma * sh.dot_loop(q[b, head], k[b, 2 * pair]), vis[b, head], values)
                for i in range(n):
                    z = [signal[i, c] - lam * noise[i, c] for c in range(2 * d_v)]
                    if norm:
                        total = sum(t * t for t in z) / len(z) + eps
                        z = [0.0 if total <= 0.0 else z[c] / math.sqrt(total) * weight[c] for c in range(2 * d_v)]
                    factor = 1.0 if lam_init is None else 1.0 - lam_init
                    out[b, g * ratio + s, i] = [factor * t for t in z]
    return out


# ---------------------------------------------------------------------------------------------
# samples

#: Options of a shape that are not operator options: ``gain`` draws a random RMSNorm gain.
SAMPLE_ONLY = ("gain",)


def adapt(shape: Shape) -> Shape:
    """Standard shapes: ``H`` query heads (at least 2) with ``r = H − 1`` (one group) for ``H <= 4``, else
    ``r = 1``; one KV pair (MQA-like per branch), or one pair per group for MHA-like shapes."""
    opts = shape.option_dict
    heads = max(2, shape.heads)
    ratio = int(opts.get("ratio", heads - 1 if heads <= 4 else 1))
    groups = heads // (ratio + 1)
    kv = 2 * (groups if shape.kv_heads == shape.heads else 1)
    options = {"ratio": ratio, "lam": 0.55, "lam_init": lambda_init(1), **opts}
    return replace(shape, heads=heads, kv_heads=kv).with_options(**options)


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v)`` with the shape's options; ``gain`` adds a random RMSNorm gain in [0.5, 1.5]."""
    opts = shape.option_dict
    base = hd.layout_sample(seed, shape, {k: v for k, v in opts.items() if k not in SAMPLE_ONLY})
    kwargs = dict(base.kwargs)
    if opts.get("gain"):
        kwargs["norm_weight"] = np.random.default_rng(seed + 31).uniform(0.5, 1.5, 2 * shape.d_v)
    return SampleInput(base.args, kwargs, base.label)


@st.composite
def shapes(draw: Any) -> Shape:
    base = draw(sh.attention_shapes(options=sh.positive_scale))
    groups = draw(st.sampled_from([1, 2, 3]))
    ratio = draw(st.sampled_from([1, 2, 3]))
    pairs = draw(st.sampled_from([p for p in range(1, groups + 1) if groups % p == 0]))
    options: dict[str, Any] = {
        "ratio": ratio,
        "lam": draw(st.floats(-0.5, 1.5)),
        "norm": draw(st.booleans()),
        "eps": draw(st.sampled_from([RMS_EPS, 1e-3])),
        "gain": draw(st.booleans()),
    }
    if draw(st.booleans()):
        options["lam_init"] = draw(st.floats(0.0, 0.8))
    return replace(base, heads=groups * (ratio + 1), kv_heads=2 * pairs).with_options(**options)


# ---------------------------------------------------------------------------------------------
# invariants (the head layout is rebuilt here by index arithmetic, not by the reference's helpers)


def _layout(sample: SampleInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(signal q, noise q, K1, K2, [V1 ‖ V2], per-group pair index)`` by head indices."""
    q, k, v = sample.args
    r = sample.kwargs["ratio"]
    heads = q.shape[-3]
    noise_idx = np.arange(r, heads, r + 1)
    signal_idx = np.array([h for h in range(heads) if h % (r + 1) != r])
    values = np.concatenate([v[..., 0::2, :, :], v[..., 1::2, :, :]], axis=-1)
    return q[..., signal_idx, :, :], q[..., noise_idx, :, :], k[..., 0::2, :, :], k[..., 1::2, :, :], values, noise_idx


def _options(sample: SampleInput) -> dict[str, Any]:
    return {key: sample.kwargs[key] for key in ("scale", "causal", "mask") if key in sample.kwargs}


def _ratio_one_is_diff(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    got = ops.gda_attention(q, k, v, **{**sample.kwargs, **BARE})
    values = np.concatenate([v[..., 0::2, :, :], v[..., 1::2, :, :]], axis=-1)
    want = differential_attention(
        q[..., 0::2, :, :],
        k[..., 0::2, :, :],
        q[..., 1::2, :, :],
        k[..., 1::2, :, :],
        values,
        lam=sample.kwargs["lam"],
        **_options(sample),
    )
    sh.close("GDA with r = 1 vs DIFF V1 (query heads 2h / 2h + 1, KV heads 2j / 2j + 1)", got, want)


def _grouped_is_diff(ops: Any, sample: SampleInput) -> None:
    signal_q, noise_q, k1, k2, values, _ = _layout(sample)
    r = sample.kwargs["ratio"]
    got = ops.gda_attention(*sample.args, **{**sample.kwargs, **BARE})
    want = differential_attention(
        signal_q, k1, np.repeat(noise_q, r, axis=-3), k2, values, lam=sample.kwargs["lam"], **_options(sample)
    )
    sh.close("GDA vs DIFF V1 with each noise query repeated for the r signal heads of its group", got, want)


def _norm_is_headwise_rms(ops: Any, sample: SampleInput) -> None:
    bare = ops.gda_attention(*sample.args, **{**sample.kwargs, **BARE})
    weight = sample.kwargs.get("norm_weight", np.ones(bare.shape[-1]))
    lam_init = sample.kwargs.get("lam_init")
    factor = 1.0 if lam_init is None else 1.0 - lam_init
    got = ops.gda_attention(*sample.args, **{**sample.kwargs, "norm": True, "eps": 0.0})
    rms = np.sqrt(np.mean(bare * bare, axis=-1, keepdims=True))
    want = factor * np.where(rms > 0, bare / np.where(rms > 0, rms, 1.0), 0.0) * weight
    sh.close(
        "normalised output vs (1 − λ_init) · w ⊙ O / RMS(O) over the 2 d_v features of each head", got, want, atol=1e-9
    )


def _value_scale(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kwargs = {**sample.kwargs, "norm": True, "eps": 0.0}
    base = ops.gda_attention(q, k, v, **kwargs)
    sh.close("output after V <- 3.7 V (RMSNorm, ε = 0)", ops.gda_attention(q, k, 3.7 * v, **kwargs), base, atol=1e-9)
    sh.close("output after V <- −V (RMSNorm is odd)", ops.gda_attention(q, k, -v, **kwargs), -base, atol=1e-9)


def _rows_sum(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kwargs = {key: val for key, val in sample.kwargs.items() if key != "norm_weight"}
    out = ops.gda_attention(q, k, np.ones((*v.shape[:-1], 1)), **{**kwargs, **BARE})
    signal_q = _layout(sample)[0]
    has = np.any(sh.visible_of(sample, signal_q, k[..., :1, :, :]), axis=-1, keepdims=True)
    sh.close(
        "rows of A1 − λ A2 (V = 1)", out, np.broadcast_to(np.where(has, 1.0 - sample.kwargs["lam"], 0.0), out.shape)
    )


def _kv_pair_expansion(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    groups = q.shape[-3] // (sample.kwargs["ratio"] + 1)
    pairs = k.shape[-3] // 2
    source = np.arange(groups) // (groups // pairs)  # group g reads KV pair g // (H₂ / (H_kv / 2))
    heads = np.stack([2 * source, 2 * source + 1], axis=-1).ravel()
    got = ops.gda_attention(q, k[..., heads, :, :], v[..., heads, :, :], **sample.kwargs)
    sh.close("GDA with one KV pair per group (pairs repeated) vs shared pairs", got, sample.call(ops.gda_attention))


# ---------------------------------------------------------------------------------------------
# mutants specific to GDA


def _halves(original: Any) -> Any:
    def halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = x.shape[-3] // 2
        return x[..., :half, :, :], x[..., half:, :, :]

    return halves


def _tiled_noise(original: Any) -> Any:
    def tiled(noise: np.ndarray, ratio: int) -> np.ndarray:
        return np.concatenate([noise] * ratio, axis=-3)

    return tiled


def _noise_first(original: Any) -> Any:
    def noise_first(q: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
        groups = q.shape[-3] // (ratio + 1)
        grouped = q.reshape(*q.shape[:-3], groups, ratio + 1, *q.shape[-2:])
        signal = grouped[..., 1:, :, :].reshape(*q.shape[:-3], groups * ratio, *q.shape[-2:])
        return signal, grouped[..., 0, :, :]

    return noise_first


def _norm_on_halves(original: Any) -> Any:
    def halves(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
        half = x.shape[-1] // 2
        return np.concatenate(
            [original(x[..., :half], weight[:half], eps), original(x[..., half:], weight[half:], eps)], axis=-1
        )

    return halves


def _lam_sign(original: Any) -> Any:
    def mutated(*args: Any, lam: float, **kwargs: Any) -> Any:
        return original(*args, lam=-lam, **kwargs)

    return mutated


def _no_factor(original: Any) -> Any:
    def mutated(*args: Any, lam_init: Any = None, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    return mutated


def _noise_reads_k1(original: Any) -> Any:
    def mutated(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first, _ = original(x)
        return first, first

    return mutated


MUTANTS = (
    *hd.attention_mutants(OP, gqa_args=None),
    Mutant(
        "kv_pairs_as_halves",
        "K1/K2 taken as the first/second half of the KV heads, not interleaved pairs",
        {"split_kv_pairs": _halves},
    ),
    Mutant("noise_tiled", "noise heads tiled (g mod H₂) instead of repeated per group", {"share_noise": _tiled_noise}),
    Mutant(
        "noise_head_first",
        "groups laid out [noise, signal × r] instead of [signal × r, noise]",
        {"split_query_heads": _noise_first},
    ),
    Mutant("norm_on_halves", "RMSNorm over each d_v half instead of the 2 d_v head", {"rms_norm": _norm_on_halves}),
    Mutant("norm_missing", "no headwise RMSNorm", {"rms_norm": lambda orig: lambda x, weight, eps: x * weight}),
    Mutant("lambda_sign", "O1 + λ O2 instead of O1 − λ O2", {OP: _lam_sign}),
    Mutant("factor_missing", "the (1 − λ_init) factor dropped", {OP: _no_factor}),
    Mutant("noise_reads_k1", "noise heads attend over K1 (V unchanged)", {"split_kv_pairs": _noise_reads_k1}),
)


def _is_ratio_one(sample: SampleInput) -> bool:
    return sample.kwargs["ratio"] == 1


def _has_lam_init(sample: SampleInput) -> bool:
    return sample.kwargs.get("lam_init") is not None


def _several_pairs(sample: SampleInput) -> bool:
    return sample.args[1].shape[-3] >= 4


INVARIANTS = (
    Invariant(
        "ratio_one_is_diff",
        "r = 1 (balanced heads) is DIFF V1's differential_attention on query heads 2h/2h+1 and KV heads 2j/2j+1",
        _ratio_one_is_diff,
        ("lambda_sign", "noise_reads_k1", "noise_head_first"),
        _is_ratio_one,
    ),
    Invariant(
        "grouped_is_diff_with_repeated_noise",
        "GDA is DIFF V1 with each group's noise query repeated for its r signal heads (noise outputs shared)",
        _grouped_is_diff,
        ("noise_tiled", "noise_head_first", "noise_reads_k1", "kv_pairs_as_halves", "lambda_sign"),
    ),
    Invariant(
        "norm_is_headwise_rms",
        "with ε = 0 the output is (1 − λ_init) · w ⊙ O / RMS(O), the RMS over each head's 2 d_v features",
        _norm_is_headwise_rms,
        ("norm_on_halves", "norm_missing", "factor_missing"),
    ),
    Invariant(
        "value_scale_invariance",
        "with ε = 0 the output is unchanged by V <- cV (c > 0) and odd in V",
        _value_scale,
        ("norm_missing",),
    ),
    Invariant(
        "rows_sum_to_one_minus_lambda",
        "without the norm, V = 1 gives 1 − λ on every visible row (both maps are row-stochastic); empty rows 0",
        _rows_sum,
        ("lambda_sign",),
    ),
    Invariant(
        "kv_pair_expansion",
        "repeating KV pairs so that each group has its own pair leaves the output unchanged (GQA over pairs)",
        _kv_pair_expansion,
        ("kv_pairs_as_halves",),
        _several_pairs,
        min_samples=1,
    ),
    *hd.attention_invariants(
        OP,
        brute_force,
        query_args=[0],
        key_args=[1, 2],
        brute_mutants=("wrong_scale", "noise_tiled", "kv_pairs_as_halves"),
    ),
)


BAD_SHAPE = Shape(
    batch=1, heads=6, kv_heads=4, n=5, m=6, d=4, d_v=3, options=(("lam", 0.5), ("lam_init", 0.2), ("ratio", 2))
)


def bad_inputs() -> list[BadInput]:
    s = sample(0, BAD_SHAPE)
    k = s.args[1]
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(s, ("scale", "causal", "mask")),
        *hd.qkv_shape_cases(s),
        hd.bad_option("ratio-zero", s, ValueError, r"\bratio\b.*positive", ratio=0),
        hd.bad_option("ratio-float", s, TypeError, r"\bratio\b", ratio=2.0),
        hd.bad_option("ratio-not-dividing", s, ValueError, r"\bq\b.*groups", ratio=3),
        hd.bad_arg("kv-heads-odd", s, 1, k[..., :3, :, :], ValueError, r"\bk\b.*even"),
        hd.bad_arg(
            "kv-pairs-not-dividing", s, 1, np.concatenate([k, k[..., :2, :, :]], -3), ValueError, r"\bk\b.*divid"
        ),
        hd.bad_option("lam-nan", s, ValueError, r"\blam\b.*finite", lam=float("nan")),
        hd.bad_option("lam-string", s, TypeError, r"\blam\b", lam="big"),
        hd.bad_option("lam-init-inf", s, ValueError, r"\blam_init\b.*finite", lam_init=float("inf")),
        hd.bad_option("eps-negative", s, ValueError, r"\beps\b", eps=-1e-5),
        hd.bad_option("norm-string", s, TypeError, r"\bnorm\b", norm="yes"),
        hd.bad_option("norm-weight-shape", s, ValueError, r"\bnorm_weight\b.*2 d_v", norm_weight=np.ones(3)),
    ]


FORM = Form(
    name="gda",
    order=10,
    title="Grouped Differential Attention (r signal heads per noise head)",
    equation=(
        r"O_i = (1-\lambda_{\text{init}})\,\operatorname{subln}\!\big(A(Q^1_i, K^1)[V^1\|V^2]"
        r" - \lambda\, A(Q^2_{\lfloor i/r\rfloor}, K^2)[V^1\|V^2]\big)"
    ),
    reference=gda_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("lim2025gda"), "unbalanced signal/noise heads, noise heads shared by groups", abstract_level=True
    ),
    status="reading",
    note=(
        "The head layout is the vLLM GROUPED_DIFF_ATTN backend's (query groups [signal x r, noise], interleaved "
        "KV pairs (K1, V1), (K2, V2), values [V1 || V2] for both branches, noise output repeated per group); the "
        "paper's abstract only fixes that noise heads are fewer and shared. λ and λ_init are DIFF V1's per-layer "
        "scalars. With r = 1 this is DIFF V1; under GQA DIFF V1's released code maps both heads of a pair to one "
        "key head, while GDA keeps K1 and K2 apart."
    ),
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(
            batch=1,
            heads=6,
            kv_heads=4,
            n=7,
            m=9,
            d=4,
            d_v=3,
            causal=True,
            options=(("gain", True), ("lam", 0.8), ("ratio", 2)),
        ),
        Shape(batch=2, heads=9, kv_heads=6, n=5, d=3, d_v=2, masked=True, options=(("lam", 0.3), ("ratio", 2))),
        Shape(batch=1, heads=8, kv_heads=4, n=6, d=4, d_v=2, options=(("lam", 1.2), ("norm", False), ("ratio", 1))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=partial(hd.query_head_flops, value_width=2),
    flop_convention=(
        sh.SOFTMAX_FLOPS + ", for the H₁ signal heads and the H₂ noise heads (each computed once), value width 2 d_v"
    ),
    bench=hd.bench_cases(
        {"lam": 0.55, "lam_init": lambda_init(1), "ratio": 3},
        (("tiny",), 1, 4, 2, 16, 8, True),
        (("quick",), 1, 16, 4, 512, 64, True),
        (("full",), 1, 16, 4, 2048, 64, True),
        (("cuda",), 4, 32, 8, 4096, 128, True),
    ),
    diagnoses=sh.attention_diagnoses(gda_attention),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.gda:gda_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.gda:gda_vjp",
            differentiable=True,
        ),
        hd.torch_path("attnlab.fastpath.torch.gda:gda_attention"),
    ),
)
