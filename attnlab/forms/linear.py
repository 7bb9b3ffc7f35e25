"""Declaration of normalised linear (kernelised) attention, phi = elu + 1 or relu."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.linear as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.linear import linear_attention

OP = "linear_attention"


def _phi(x: float, feature_map: str) -> float:
    if feature_map == "relu":
        return max(x, 0.0)
    return x + 1.0 if x > 0 else math.exp(x)


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: str = "elu1",
    causal: bool = False,
    eps: float = 1e-6,
    form: str = "quadratic",
) -> np.ndarray:
    """``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)`` one scalar at a time."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))

    def one(qs: np.ndarray, ks: np.ndarray, vs: np.ndarray) -> np.ndarray:
        out = np.zeros((qs.shape[0], vs.shape[1]))
        for i in range(qs.shape[0]):
            num, den = [0.0] * vs.shape[1], 0.0
            for j in range(ks.shape[0]):
                if causal and j > i:
                    continue
                w = sum(_phi(qs[i, t], feature_map) * _phi(ks[j, t], feature_map) for t in range(qs.shape[1]))
                den += w
                for c in range(vs.shape[1]):
                    num[c] += w * vs[j, c]
            out[i] = [x / (den + eps) for x in num]
        return out

    return sh.over_batch(one, q, k, v)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = False,
    eps: float = 1e-6,
    form: str = "quadratic",
) -> Any:
    """The quadratic form ``A = φ(Q)φ(K)ᵀ`` (lower-triangular if causal), ``O = A V ⊘ (A 1 + ε)``, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    if callable(feature_map):
        phi = feature_map
    elif feature_map == "relu":
        phi = torch.relu
    else:
        phi = lambda x: torch.where(x > 0, x + 1.0, torch.exp(torch.clamp(x, max=0.0)))  # noqa: E731
    a = phi(q) @ phi(k).transpose(-1, -2)
    if causal:
        a = torch.tril(a)
    return (a @ v) / (a.sum(dim=-1, keepdim=True) + eps)


def sample(seed: int, shape: Shape) -> SampleInput:
    shape = replace(shape, masked=False, m=None if shape.causal else shape.m)
    rng = np.random.default_rng(seed)
    q, k, v = sh.qkv(rng, shape)
    options = shape.option_dict
    if options.get("feature_map") == "relu":
        k[..., 0, :] = np.abs(k[..., 0, :]) + 0.5  # keep every normaliser well above eps
        q = np.abs(q) + 0.1
    return SampleInput((q, k, v), {"causal": shape.causal, **options}, shape.label())


def adapt(shape: Shape) -> Shape | None:
    shape = replace(shape, masked=False, m=None if shape.causal else shape.m)
    return replace(shape, values="normal") if shape.values == "large" else shape


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["feature_map"] = draw(st.sampled_from(["elu1", "relu"]))
    if draw(st.booleans()):
        options["eps"] = draw(st.sampled_from([0.0, 1e-3, 0.5]))
    if options.get("feature_map") == "relu" and options.get("eps", 1e-6) == 0.0:
        options["eps"] = 1e-3
    return options


def _self_attention(sample: SampleInput) -> bool:
    return sample.args[0].shape[-2] == sample.args[1].shape[-2]


def _recurrent_equals_quadratic(ops: Any, sample: SampleInput) -> None:
    kw = sample.without("form").kwargs
    sh.close(
        "recurrent vs quadratic",
        ops.linear_attention_recurrent(*sample.args, **kw),
        ops.linear_attention_quadratic(*sample.args, **kw),
    )


def _chunked_equals_recurrent(ops: Any, sample: SampleInput) -> None:
    kw = {k: v for k, v in sample.kwargs.items() if k in ("feature_map", "eps")}
    want = ops.linear_attention_recurrent(*sample.args, causal=True, **kw)
    for chunk in (1, 3, 64):
        sh.close(
            f"chunked (C={chunk}) vs recurrent",
            ops.linear_attention_chunked(*sample.args, chunk_size=chunk, **kw),
            want,
        )


def _split_resume(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    kw = {key: val for key, val in sample.kwargs.items() if key in ("feature_map", "eps")}
    t = q.shape[-2] // 2
    first, state = ops.linear_attention_recurrent(q[..., :t, :], k[..., :t, :], v[..., :t, :], return_state=True, **kw)
    second = ops.linear_attention_recurrent(q[..., t:, :], k[..., t:, :], v[..., t:, :], initial_state=state, **kw)
    sh.close(
        "split-then-resume vs one run",
        np.concatenate([first, second], -2),
        ops.linear_attention_recurrent(q, k, v, **kw),
    )


def _drop_last_update(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        k, v = np.array(k, dtype=float), np.array(v, dtype=float)
        if kwargs.get("causal", True) and k.shape[-2] >= 2:
            v[..., -1, :] = v[..., -2, :]  # the last step reuses the previous value
        return original(q, k, v, **kwargs)

    return mutated


def _drop_partial_chunk(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, chunk_size: int = 64, **kwargs: Any) -> Any:
        out = np.array(original(q, k, v, chunk_size=chunk_size, **kwargs))
        n = out.shape[-2]
        if n % chunk_size:
            out[..., n - n % chunk_size :, :] = 0.0
        return out

    return mutated


def _resume_forgets_normaliser(original: Any) -> Any:
    def mutated(*args: Any, initial_state: Any = None, **kwargs: Any) -> Any:
        if initial_state is not None:
            initial_state = (initial_state[0], np.zeros_like(initial_state[1]))
        return original(*args, initial_state=initial_state, **kwargs)

    return mutated


def _leaky_quadratic(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, feature_map: Any = "elu1", causal: bool = False, eps: float = 1e-6) -> Any:
        if not causal:
            return original(q, k, v, feature_map=feature_map, eps=eps)
        fq, fk, vv, _, e = module._prepare(q, k, v, feature_map, False, eps)
        a = np.tril(fq @ np.swapaxes(fk, -1, -2), k=1)  # each query also sees the next key
        return (a @ vv) / (a.sum(axis=-1, keepdims=True) + e)

    return mutated


def _eps_ignored(original: Any) -> Any:
    def mutated(*args: Any, eps: float = 1e-6, **kwargs: Any) -> Any:
        return original(*args, eps=1e-6, **kwargs)

    return mutated


MUTANTS = (
    Mutant(
        "recurrence_drops_last_value",
        "the recurrence reuses the previous value at the last step",
        {"linear_attention_recurrent": _drop_last_update},
    ),
    Mutant(
        "chunked_drops_partial_chunk",
        "the chunked form leaves the last partial chunk unwritten (zeros)",
        {"linear_attention_chunked": _drop_partial_chunk},
    ),
    Mutant(
        "resume_forgets_normaliser",
        "resuming from a state drops the normaliser z",
        {"linear_attention_recurrent": _resume_forgets_normaliser},
    ),
    Mutant(
        "leaky_causal_quadratic",
        "the causal quadratic form mixes in a shifted, future-seeing evaluation",
        {"linear_attention_quadratic": _leaky_quadratic},
    ),
    sh.interleaved_gqa("linear_attention_quadratic", (1, 2)),
    Mutant(
        "eps_ignored",
        "an explicit eps is ignored (the default 1e-6 is used)",
        {"linear_attention_quadratic": _eps_ignored},
    ),
    sh.output_nudged("linear_attention_quadratic"),
)

INVARIANTS = (
    Invariant(
        "recurrent_equals_quadratic",
        "the prefix-sum recurrence equals the quadratic (parallel) form",
        _recurrent_equals_quadratic,
        ("recurrence_drops_last_value", "leaky_causal_quadratic"),
        lambda s: sh.is_causal(s) and s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "chunked_equals_recurrent",
        "the chunked causal form equals the recurrence for chunk sizes 1, 3 and 64",
        _chunked_equals_recurrent,
        ("chunked_drops_partial_chunk",),
        lambda s: _self_attention(s) and s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "split_resume",
        "running on a prefix and resuming from its state (S, z) equals one run",
        _split_resume,
        ("resume_forgets_normaliser",),
        lambda s: _self_attention(s) and s.args[0].shape[-2] >= 2,
    ),
    sh.causal_prefix(
        "linear_attention_quadratic",
        [0],
        [1, 2],
        mutants=("leaky_causal_quadratic",),
        applies=lambda s: _self_attention(s) and s.args[0].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha("linear_attention_quadratic", [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        "linear_attention_quadratic", brute_force, mutants=("eps_ignored", "output_nudged", "leaky_causal_quadratic")
    ),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape())
    return [
        *sh.bad_arrays(("q", "k", "v"), base),
        *sh.bad_options(base, ("causal",)),
        BadInput("feature-map-unknown", base.args, {"feature_map": "cosine"}, ValueError, r"\bfeature_map\b"),
        BadInput("causal-cross-lengths", sample(0, Shape(m=5)).args, {"causal": True}, ValueError, r"\bq/k\b.*lengths"),
        BadInput(
            "k-head-dim", (base.args[0], np.ones((1, 2, 8, 3)), np.ones((1, 2, 8, 8))), {}, ValueError, r"\bk\b.*d_k"
        ),
        BadInput("eps-negative", base.args, {"eps": -1.0}, ValueError, r"\beps\b"),
        BadInput("relu-eps-zero", base.args, {"feature_map": "relu", "eps": 0.0}, ValueError, r"^eps: .*relu"),
        BadInput("eps-bool", base.args, {"eps": True}, TypeError, r"\beps\b"),
        BadInput("form-unknown", base.args, {"form": "fast"}, ValueError, r"\bform\b"),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, d_k, d_v = q.shape[-2], q.shape[-1], v.shape[-1]
    return 4.0 * lead * n * d_k * d_v + (2.0 * lead * n * 64 * (d_k + d_v) if s.kwargs.get("causal") else 0.0)


def _native_feature_map(s: SampleInput) -> bool:
    return not callable(s.kwargs.get("feature_map"))


FORM = Form(
    name="linear",
    order=2,
    title="Normalised linear attention (phi = elu + 1)",
    equation=(
        r"o_i = \frac{\sum_{j} \phi(q_i)^\top \phi(k_j)\, v_j}{\sum_{j} \phi(q_i)^\top \phi(k_j) "
        r"+ \varepsilon},\quad \phi = \operatorname{elu} + 1"
    ),
    reference=linear_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("katharopoulos2020transformers"), "§3.2, Eq. (4)–(6); causal recurrence §3.4"),
    status="exact",
    note="No 1/sqrt(d) scale (the paper has none); eps = 1e-6 is added to the normaliser. Causal needs n == m.",
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=sh.attention_shapes(masks=False, options=_options),
    extra_shapes=(
        Shape(
            batch=1, heads=2, kv_heads=2, n=9, d=4, d_v=3, causal=True, options=(("eps", 0.5), ("feature_map", "relu"))
        ),
        Shape(batch=1, heads=4, kv_heads=2, n=7, d=5, d_v=2, causal=True, options=(("eps", 0.0),)),
        Shape(batch=1, heads=2, kv_heads=1, n=6, m=10, d=3, d_v=4, options=(("feature_map", "relu"),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention=(
        "4·B·H·n·d_k·d_v for the state products, plus 2·B·H·n·C·(d_k + d_v) for the "
        "intra-chunk part when causal (C = 64)"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.linear:linear_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.linear:linear_vjp",
            differentiable=True,
            supports=_native_feature_map,
            tiles=(64,),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.linear:linear_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
            supports=_native_feature_map,
            tiles=(64,),
        ),
    ),
)
