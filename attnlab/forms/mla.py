"""Declaration of multi-head latent attention (MLA), naive and weight-absorbed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.mla as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.mla import MLAWeights, mla_attention

OP = "mla_attention"
RMS_EPS = 1e-6
D_MODEL = 16


def _rope(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """Rotary embedding on pairs (2p, 2p + 1), angle t · base^(−2p/d), one pair at a time."""
    out = np.array(x, dtype=np.float64)
    d = x.shape[-1]
    for p in range(d // 2):
        angle = positions * base ** (-2.0 * p / d)
        c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
        even, odd = x[..., 2 * p : 2 * p + 1], x[..., 2 * p + 1 : 2 * p + 2]
        out[..., 2 * p : 2 * p + 1] = even * c - odd * s
        out[..., 2 * p + 1 : 2 * p + 2] = even * s + odd * c
    return out


def _rms(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return x * weight / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS)


def brute_force(
    x: Any,
    weights: MLAWeights,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> np.ndarray:
    """Naive MLA, one head at a time, with its own RoPE, RMSNorm and the scalar softmax loop."""
    x = np.asarray(x, dtype=np.float64)
    n, h = x.shape[-2], weights.n_heads
    d_nope, d_c, d_v = weights.d_nope, weights.d_latent, weights.d_v
    sigma = (d_nope + weights.d_rope) ** -0.5 if scale is None else scale
    pos = np.arange(n, dtype=np.float64)
    q_lat = x if weights.w_dq is None else _rms(x @ weights.w_dq, weights.q_norm)
    q_all = q_lat @ weights.w_uq
    kv = x @ weights.w_dkv
    c_hat = _rms(kv[..., :d_c], weights.kv_norm)
    k_rope = _rope(kv[..., d_c:], pos, rope_base)
    kv_up = c_hat @ weights.w_ukv
    width_q, width_kv = d_nope + weights.d_rope, d_nope + d_v
    out = np.zeros((*x.shape[:-2], n, h * d_v))
    for idx in np.ndindex(*x.shape[:-2]):
        for head in range(h):
            qh = q_all[idx][:, head * width_q : (head + 1) * width_q]
            qh = np.concatenate([qh[:, :d_nope], _rope(qh[:, d_nope:], pos, rope_base)], -1)
            up = kv_up[idx][:, head * width_kv : (head + 1) * width_kv]
            kh = np.concatenate([up[:, :d_nope], k_rope[idx]], -1)
            vis = sh.visibility(
                n, n, causal, None if mask is None else np.broadcast_to(mask, (*x.shape[:-2], h, n, n))[idx][head]
            )
            out[idx][:, head * d_v : (head + 1) * d_v] = sh.softmax_rows_loop(
                sigma * sh.dot_loop(qh, kh), vis, up[:, d_nope:]
            )
    return out @ weights.w_o


def oracle(
    x: Any,
    weights: Any,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> Any:
    """Naive MLA in torch: per-head keys ``[k^C_h; RoPE(k^R)]`` and values up-projected from the latent."""
    import torch

    from attnlab.forms import _torch as T
    from attnlab.forms.softmax import oracle as softmax

    x = T.tensor(x)
    w: dict[str, Any] = {
        f: None if getattr(weights, f) is None else T.tensor(getattr(weights, f), x)
        for f in ("w_dq", "q_norm", "w_uq", "w_dkv", "kv_norm", "w_ukv", "w_o")
    }
    h, d_nope, d_rope, d_v = weights.n_heads, weights.d_nope, weights.d_rope, weights.d_v
    d_c = w["kv_norm"].shape[0]
    n = x.shape[-2]
    pos = torch.arange(n, dtype=x.dtype, device=x.device)

    def heads(t: Any) -> Any:
        return t.reshape(*t.shape[:-1], h, -1).transpose(-2, -3)

    q_lat = x if w["w_dq"] is None else T.rms_norm(x @ w["w_dq"], w["q_norm"], RMS_EPS)
    q = heads(q_lat @ w["w_uq"])
    q = torch.cat([q[..., :d_nope], T.rope(q[..., d_nope:], pos, rope_base)], -1)
    kv = x @ w["w_dkv"]
    c_hat = T.rms_norm(kv[..., :d_c], w["kv_norm"], RMS_EPS)
    k_rope = T.rope(kv[..., d_c:], pos, rope_base)[..., None, :, :]
    up = heads(c_hat @ w["w_ukv"])
    k = torch.cat([up[..., :d_nope], k_rope.expand(*up.shape[:-1], d_rope)], -1)
    sigma = (d_nope + d_rope) ** -0.5 if scale is None else scale
    out = softmax(q, k, up[..., d_nope:], scale=sigma, causal=causal, mask=mask)
    return out.transpose(-2, -3).reshape(*out.shape[:-3], n, h * d_v) @ w["w_o"]


def adapt(shape: Shape) -> Shape | None:
    return replace(
        shape,
        n=min(shape.n, 12),
        m=None,
        d=2 * max(1, min(shape.d, 6) // 2),
        kv_heads=shape.heads,
        values="normal" if shape.values == "large" else shape.values,
    )


def random_weights(
    seed: int,
    *,
    d_model: int = 32,
    n_heads: int = 4,
    d_latent: int = 16,
    d_q_latent: int = 0,
    d_nope: int = 8,
    d_rope: int = 4,
    d_v: int = 8,
) -> MLAWeights:
    """Gaussian MLA weights scaled ``1/√fan_in`` (norm weights ``1 + 0.1·N(0, 1)``); ``d_q_latent = 0`` skips
    the query LoRA."""
    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int) -> np.ndarray:
        return rng.standard_normal((rows, cols)) / np.sqrt(rows)

    q_in = d_q_latent if d_q_latent else d_model
    return MLAWeights(
        w_dq=mat(d_model, d_q_latent) if d_q_latent else None,
        q_norm=1.0 + 0.1 * rng.standard_normal(d_q_latent) if d_q_latent else None,
        w_uq=mat(q_in, n_heads * (d_nope + d_rope)),
        w_dkv=mat(d_model, d_latent + d_rope),
        kv_norm=1.0 + 0.1 * rng.standard_normal(d_latent),
        w_ukv=mat(d_latent, n_heads * (d_nope + d_v)),
        w_o=mat(n_heads * d_v, d_model),
        n_heads=n_heads,
        d_nope=d_nope,
        d_rope=d_rope,
        d_v=d_v,
    )


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    options = shape.option_dict
    weights = random_weights(
        seed,
        d_model=D_MODEL,
        n_heads=shape.heads,
        d_latent=6,
        d_q_latent=8 if seed % 2 else 0,
        d_nope=4,
        d_rope=2 * max(1, shape.d // 2),
        d_v=shape.d_v,
    )
    x = sh.qk_values(rng, (shape.batch, shape.n, D_MODEL), shape.values)
    kwargs: dict[str, Any] = {"causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, replace(shape, m=None))
    return SampleInput((x, weights), kwargs, shape.label())


@st.composite
def shapes(draw: Any) -> Shape:
    heads = draw(st.sampled_from([1, 2, 4]))
    shape = Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=heads,
        n=draw(st.integers(1, 12)),
        d=2 * draw(st.integers(1, 3)),
        d_v=draw(st.integers(1, 6)),
        causal=draw(st.booleans()),
        masked=draw(st.booleans()),
        values=draw(st.sampled_from(["normal", "shifted", "tied"])),
    )
    options = sh.positive_scale(draw, shape)
    if draw(st.booleans()):
        options["rope_base"] = draw(st.sampled_from([100.0, 10000.0, 5e5]))
    return shape.with_options(**options)


def _absorbed(ops: Any, sample: SampleInput) -> None:
    sh.close(
        "absorbed vs naive MLA",
        ops.mla_attention(*sample.args, **{**sample.kwargs, "impl": "absorb"}),
        sample.call(ops.mla_attention),
        atol=1e-9,
    )


def _content_only_is_position_free(ops: Any, sample: SampleInput) -> None:
    """With the RoPE branch's key projection zeroed, the scores lose all position information: without
    a mask and causality the output is permutation-equivariant in the tokens."""
    x, weights = sample.args
    d_c = weights.d_latent
    w_dkv = np.array(weights.w_dkv)
    w_dkv[:, d_c:] = 0.0
    w_uq = np.array(weights.w_uq).reshape(weights.w_uq.shape[0], weights.n_heads, -1)
    w_uq[..., weights.d_nope :] = 0.0
    plain = replace(weights, w_dkv=w_dkv, w_uq=w_uq.reshape(weights.w_uq.shape))
    perm = np.random.default_rng(13).permutation(x.shape[-2])
    opts = sample.without("causal", "mask").kwargs
    base = ops.mla_attention(x, plain, **opts)
    sh.close(
        "content-only MLA permutes with its tokens",
        ops.mla_attention(x[..., perm, :], plain, **opts),
        base[..., perm, :],
    )


def _absorb_unrotated_key(original: Any) -> Any:
    def mutated(
        x: Any,
        weights: MLAWeights,
        *,
        impl: str = "naive",
        scale: float | None = None,
        causal: bool = False,
        mask: Any = None,
        rope_base: float = 10000.0,
    ) -> Any:
        if impl != "absorb":
            return original(x, weights, impl=impl, scale=scale, causal=causal, mask=mask, rope_base=rope_base)
        # the absorbed evaluation with the shared RoPE key cached before its rotation
        x = np.asarray(x, dtype=float)
        h, d_nope, d_rope, d_c = weights.n_heads, weights.d_nope, weights.d_rope, weights.d_latent
        sigma = (d_nope + d_rope) ** -0.5 if scale is None else scale
        pos = np.arange(x.shape[-2], dtype=float)
        q_lat = x if weights.w_dq is None else module.rms_norm(x @ weights.w_dq, weights.q_norm)
        q = module._heads(q_lat @ weights.w_uq, h)
        q_rope = module.rope_interleaved(q[..., d_nope:], pos, rope_base)
        kv = x @ weights.w_dkv
        c_hat = module.rms_norm(kv[..., :d_c], weights.kv_norm)[..., None, :, :]
        k_rope = kv[..., None, :, d_c:]
        w_ukv = weights.w_ukv.reshape(d_c, h, d_nope + weights.d_v)
        q_abs = np.einsum("...hnd,chd->...hnc", q[..., :d_nope], w_ukv[..., :d_nope])
        latent = module.softmax_attention(
            np.concatenate([q_abs, q_rope], -1),
            np.concatenate([c_hat, k_rope], -1),
            c_hat,
            scale=sigma,
            causal=causal,
            mask=mask,
        )
        heads = np.einsum("...hnc,chv->...hnv", latent, w_ukv[..., d_nope:])
        return np.swapaxes(heads, -2, -3).reshape(*heads.shape[:-3], x.shape[-2], h * weights.d_v) @ weights.w_o

    return mutated


def _rope_half_frequency(original: Any) -> Any:
    def mutated(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
        return original(x, positions / 2.0, base)

    return mutated


def _rms_eps(original: Any) -> Any:
    def mutated(x: np.ndarray, weight: np.ndarray, eps: float = RMS_EPS) -> np.ndarray:
        return original(x, weight, 1e-2)

    return mutated


def _position_leak(original: Any) -> Any:
    def mutated(x: Any, weights: MLAWeights, **kwargs: Any) -> Any:
        x = np.asarray(x, dtype=float)
        return original(x + 1e-3 * np.arange(x.shape[-2])[:, None], weights, **kwargs)

    return mutated


MUTANTS = (
    Mutant(
        "absorb_unrotated_key",
        "the absorbed form caches the shared RoPE key before rotating it",
        {OP: _absorb_unrotated_key},
    ),
    Mutant("rope_half_frequency", "RoPE angles at half the frequency", {"rope_interleaved": _rope_half_frequency}),
    Mutant("rms_eps", "RMSNorm epsilon 1e-2 instead of 1e-6", {"rms_norm": _rms_eps}),
    Mutant("position_leak", "token states pick up a position-dependent offset", {OP: _position_leak}),
    sh.leaky_causal(OP, key_arg=0),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "absorbed_equals_naive",
        "the weight-absorbed form equals the naive form (RoPE branch included)",
        _absorbed,
        ("absorb_unrotated_key",),
    ),
    Invariant(
        "content_only_permutation",
        "with the RoPE branch zeroed and no mask or causality, permuting tokens permutes the outputs",
        _content_only_is_position_free,
        ("position_leak",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    sh.causal_prefix(OP, [0], [], mutants=("leaky_causal",)),
    sh.matches_brute_force(OP, brute_force, mutants=("rope_half_frequency", "rms_eps", "output_nudged")),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape())
    x, weights = base.args
    return [
        *sh.bad_arrays(("x",), base),
        *sh.bad_options(base, ("scale", "causal", "mask")),
        BadInput("weights-wrong-type", (x, {"w_o": 1}), {}, TypeError, r"\bweights\b"),
        BadInput("impl-unknown", base.args, {"impl": "fast"}, ValueError, r"\bimpl\b"),
        BadInput("x-width", (np.ones((1, 4, D_MODEL - 1)), weights), {}, ValueError, rf"\bx\b.*\b{D_MODEL}\b"),
        *sh.bad_weights("weights", base, {"w_o": r"weights\.w_o", "kv_norm": r"weights\.kv_norm"}),
        BadInput("weights-heads", (x, replace(weights, n_heads=weights.n_heads + 1)), {}, ValueError, r"weights\."),
        BadInput("weights-odd-d_rope", (x, replace(weights, d_rope=3)), {}, ValueError, r"weights\.d_rope"),
        *(
            BadInput(
                f"weights-{field}-{label}", (x, replace(weights, **{field: value})), {}, error, rf"weights\.{field}\b"
            )
            for field, label, value, error in (
                ("n_heads", "zero", 0, ValueError),
                ("n_heads", "float", 2.0, TypeError),
                ("d_nope", "negative", -1, ValueError),
                ("d_rope", "negative", -2, ValueError),
                ("d_v", "zero", 0, ValueError),
                ("d_v", "string", "8", TypeError),
            )
        ),
        BadInput(
            "weights-no-query-key-dims",
            (x, replace(weights, d_nope=0, d_rope=0)),
            {},
            ValueError,
            r"weights\.d_nope/weights\.d_rope",
        ),
        BadInput(
            "weights-w_dkv-without-latent",
            (x, replace(weights, w_dkv=weights.w_dkv[:, : weights.d_rope])),
            {},
            ValueError,
            r"weights\.w_dkv\b.*d_c >= 1",
        ),
        BadInput(
            "weights-q_norm-without-w_dq", (x, replace(weights, q_norm=np.ones(4))), {}, ValueError, r"weights\.q_norm"
        ),
        BadInput(
            "weights-w_dq-without-q_norm",
            (x, replace(weights, w_dq=np.ones((D_MODEL, 4)))),
            {},
            ValueError,
            r"weights\.q_norm\b.*required",
        ),
        BadInput(
            "weights-w_dq-rows",
            (x, replace(weights, w_dq=np.ones((D_MODEL - 1, 4)), q_norm=np.ones(4))),
            {},
            ValueError,
            r"weights\.w_dq\b",
        ),
        BadInput(
            "weights-q_norm-length",
            (x, replace(weights, w_dq=np.ones((D_MODEL, 4)), q_norm=np.ones(3))),
            {},
            ValueError,
            r"weights\.q_norm\b",
        ),
        BadInput(
            "weights-w_ukv-short", (x, replace(weights, w_ukv=weights.w_ukv[:-1])), {}, ValueError, r"weights\.w_ukv"
        ),
        BadInput(
            "weights-kv_norm-2d",
            (x, replace(weights, kv_norm=weights.kv_norm[None])),
            {},
            ValueError,
            r"weights\.kv_norm",
        ),
        BadInput("weights-w_uq-1d", (x, replace(weights, w_uq=weights.w_uq[0])), {}, ValueError, r"weights\.w_uq"),
        BadInput("rope-base-zero", base.args, {**base.kwargs, "rope_base": 0.0}, ValueError, r"\brope_base\b"),
        BadInput("rope-base-nan", base.args, {**base.kwargs, "rope_base": float("nan")}, ValueError, r"\brope_base\b"),
    ]


def _flops(s: SampleInput) -> float:
    x, w = s.args
    n = x.shape[-2]
    return (
        4.0
        * int(np.prod(x.shape[:-2]))
        * w.n_heads
        * n
        * n
        * (2 * w.d_latent + w.d_rope)
        / 2
        * (0.5 if s.kwargs.get("causal") else 1.0)
    )


FORM = Form(
    name="mla",
    order=8,
    title="Multi-head latent attention (naive and absorbed)",
    equation=(
        r"o_h = \operatorname{softmax}\!\left(\sigma\,[q^C_h; \mathrm{RoPE}(q^R_h)]\,[k^C_h; "
        r"\mathrm{RoPE}(k^R)]^\top\right) v_h,\quad [k^C_h; v_h] = W^h_{UKV}\,\mathrm{RMSNorm}(c)"
    ),
    reference=mla_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("deepseek2024v2"), "§2.1, Eq. (9)–(19); absorbed evaluation as in the DeepSeek-V3 inference code"
    ),
    status="exact",
    note="Row-vector convention y = x W; no YaRN mscale; the RoPE key is shared by all heads (interleaved pairs).",
    array_args=("x",),
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=6,
            d=4,
            d_v=3,
            causal=True,
            masked=True,
            options=(("rope_base", 100.0), ("scale", 0.3)),
        ),
        Shape(batch=2, heads=1, kv_heads=1, n=5, d=2, d_v=2, options=(("scale", 1.2),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention=(
        "the absorbed MQA over the latent: 4·B·H·n²·(2·d_c + d_rope)/2, halved when causal (projections not counted)"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=8, d=16, d_v=32, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=256, d=16, d_v=32, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=16, d_v=32, causal=True), ("full",)),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.mla:mla_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.mla:mla_vjp",
            differentiable=True,
            tiles=(128, 256),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.mla:mla_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
