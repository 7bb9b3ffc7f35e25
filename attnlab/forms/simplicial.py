"""Declaration of causal windowed 2-simplicial attention."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.tensor as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.forms.tensor import khatri_rao_own, pair_loop, pair_oracle
from attnlab.papers import Source, paper
from attnlab.reference.softmax import softmax_attention
from attnlab.reference.tensor import simplicial_attention

OP = "simplicial_attention"
NAMES = ("q", "k1", "k2", "v1", "v2")


def brute_force(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> np.ndarray:
    q, k1, k2, v1, v2 = (np.asarray(a, dtype=np.float64) for a in (q, k1, k2, v1, v2))
    d = q.shape[-1]
    sigma = d**-0.5 if scale is None else scale
    if kv_bias:
        k2, v2 = k2 + 1.0 / d, v2 + 1.0

    def visible(i: int, j: int, kk: int) -> bool:
        return i - window1 < j <= i and i - window2 < kk <= i

    return sh.over_batch(pair_loop, q, k1, k2, v1, v2, scale=sigma, visible=visible)


def oracle(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> Any:
    import torch

    d, n = q.shape[-1], q.shape[-2]
    if kv_bias:
        k2, v2 = k2 + 1.0 / d, v2 + 1.0
    i = torch.arange(n)
    r, j, kk = i[:, None, None], i[None, :, None], i[None, None, :]
    allowed = (j <= r) & (j > r - window1) & (kk <= r) & (kk > r - window2)
    return pair_oracle(q, k1, k2, v1, v2, d**-0.5 if scale is None else float(scale), allowed)


def adapt(shape: Shape) -> Shape | None:
    return replace(
        shape,
        n=min(shape.n, 10),
        m=None,
        causal=True,
        masked=False,
        heads=min(shape.heads, 2),
        kv_heads=min(shape.heads, 2),
        d=min(shape.d, 6),
        d_v=min(shape.d_v, 4),
    )


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    b, h, n, d, dv = shape.batch, shape.heads, shape.n, shape.d, shape.d_v
    q, k1 = (sh.qk_values(rng, (b, h, n, d), shape.values) for _ in range(2))
    k2 = rng.standard_normal((b, h, n, d))
    v1, v2 = sh.value_values(rng, (b, h, n, dv), shape.values), rng.standard_normal((b, h, n, dv))
    options = shape.option_dict
    kwargs = {
        "window1": int(options.pop("window1", rng.integers(1, n + 2))),
        "window2": int(options.pop("window2", rng.integers(1, n + 2))),
        "kv_bias": bool(options.pop("kv_bias", rng.random() < 0.5)),
        **options,
    }
    return SampleInput((q, k1, k2, v1, v2), kwargs, shape.label() + f"-w{kwargs['window1']}x{kwargs['window2']}")


@st.composite
def shapes(draw: Any, max_n: int = 9) -> Shape:
    heads = draw(st.integers(1, 2))
    shape = Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=heads,
        n=draw(st.integers(1, max_n)),
        d=draw(st.integers(1, 6)),
        d_v=draw(st.integers(1, 4)),
        causal=True,
        values=draw(st.sampled_from(["normal", "large", "shifted"])),
    )
    return shape.with_options(**sh.positive_scale(draw, shape))


def _window_visibility(n: int, w1: int, w2: int) -> np.ndarray:
    i, j, k = np.arange(n)[:, None, None], np.arange(n)[None, :, None], np.arange(n)[None, None, :]
    return (((j <= i) & (j > i - w1)) & ((k <= i) & (k > i - w2))).reshape(n, n * n)


def _masked_tensor(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    d, n = q.shape[-1], q.shape[-2]
    if sample.kwargs["kv_bias"]:
        k2, v2 = k2 + 1.0 / d, v2 + 1.0
    vis = _window_visibility(n, sample.kwargs["window1"], sample.kwargs["window2"])
    scale = sample.kwargs.get("scale", d**-0.5)
    got = softmax_attention(q, khatri_rao_own(k1, k2), khatri_rao_own(v1, v2), scale=scale, mask=vis)
    sh.close("window-masked Kronecker attention", got, sample.call(ops.simplicial_attention))


def _full_window(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    n, d = q.shape[-2], q.shape[-1]
    got = ops.simplicial_attention(q, k1, k2, v1, v2, window1=n, window2=n)
    sh.close(
        "full windows vs causal tensor attention",
        got,
        ops.tensor_attention(q, k1, k2, v1, v2, scale=d**-0.5, causal=True),
    )


def _embeds_attention(ops: Any, sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    d, n = q.shape[-1], q.shape[-2]
    w1 = sample.kwargs["window1"]
    got = ops.simplicial_attention(
        q, k1, np.zeros_like(k2), v1, np.zeros_like(v2), window1=w1, window2=n + 1, kv_bias=True
    )
    window = np.tril(np.ones((n, n), bool)) & ~np.tril(np.ones((n, n), bool), -w1)
    sh.close(
        "kv-bias with K2 = V2 = 0 vs windowed softmax attention",
        got,
        sh.attention_loop(q, k1, v1, scale=d**-0.5 / d, mask=window),
    )


def _window_off_by_one(original: Any) -> Any:
    def mutated(*args: Any, window1: int, window2: int, **kwargs: Any) -> Any:
        return original(*args, window1=window1 + 1, window2=window2, **kwargs)

    return mutated


def _bias_on_values_only(original: Any) -> Any:
    def mutated(q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, kv_bias: bool = False, **kwargs: Any) -> Any:
        if not kv_bias:
            return original(q, k1, k2, v1, v2, **kwargs)
        return original(q, k1, k2, v1, np.asarray(v2) + 1.0, **kwargs)  # the key bias 1/d is forgotten

    return mutated


def _leaky_window(original: Any) -> Any:
    def mutated(
        q: Any,
        k1: Any,
        k2: Any,
        v1: Any,
        v2: Any,
        *,
        window1: int,
        window2: int,
        scale: float | None = None,
        kv_bias: bool = False,
    ) -> Any:
        qa, k1a, k2a, v1a, v2a = module._prepare(q, k1, k2, v1, v2)
        d, n = qa.shape[-1], qa.shape[-2]
        if kv_bias:
            k2a, v2a = k2a + 1.0 / d, v2a + 1.0
        j = np.arange(n)

        def leaky(rows: np.ndarray) -> np.ndarray:
            r = rows[:, None, None]
            in1 = (j[None, :, None] <= r + 1) & (j[None, :, None] > r - window1)  # one key from the future
            in2 = (j[None, None, :] <= r) & (j[None, None, :] > r - window2)
            return in1 & in2

        return module._pair_attention(qa, k1a, k2a, v1a, v2a, d**-0.5 if scale is None else scale, leaky)

    return mutated


def _wrong_scale(original: Any) -> Any:
    def mutated(q: Any, *args: Any, scale: float | None = None, **kwargs: Any) -> Any:
        return original(q, *args, scale=1.0 / np.shape(q)[-1] if scale is None else scale, **kwargs)

    return mutated


MUTANTS = (
    Mutant("window_off_by_one", "the first window is one key wider", {OP: _window_off_by_one}),
    Mutant("key_bias_forgotten", "kv_bias adds 1 to V2 but not 1/d to K2", {OP: _bias_on_values_only}),
    Mutant("leaky_window", "the first window reaches one key into the future", {OP: _leaky_window}),
    Mutant("tensor_scale", "the default scale is tensor attention's 1/d instead of 1/sqrt(d)", {OP: _wrong_scale}),
    sh.output_nudged(OP),
)

INVARIANTS = (
    Invariant(
        "masked_tensor",
        "equals Kronecker attention restricted to the window mask",
        _masked_tensor,
        ("window_off_by_one", "key_bias_forgotten"),
    ),
    Invariant(
        "full_window_is_causal_tensor",
        "windows >= n give causal tensor attention (scale 1/sqrt d)",
        _full_window,
        ("tensor_scale",),
    ),
    Invariant(
        "kv_bias_embeds_attention",
        "kv-bias with K2 = V2 = 0 is windowed softmax attention with scale 1/(d sqrt d)",
        _embeds_attention,
        ("key_bias_forgotten", "window_off_by_one"),
    ),
    sh.causal_prefix(
        OP, [0], [1, 2, 3, 4], mutants=("leaky_window",), force_causal=False, applies=lambda s: s.args[0].shape[-2] >= 2
    ),
    sh.matches_brute_force(OP, brute_force, mutants=("output_nudged", "tensor_scale", "leaky_window"), max_n=8),
)


def _bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(n=4))
    args = base.args
    return [
        *sh.bad_arrays(NAMES, base),
        *sh.bad_options(base, ("scale",)),
        BadInput("window1-zero", args, {"window1": 0, "window2": 2}, ValueError, r"\bwindow1\b"),
        BadInput("window2-negative", args, {"window1": 2, "window2": -3}, ValueError, r"\bwindow2\b"),
        BadInput("window1-float", args, {"window1": 2.5, "window2": 2}, TypeError, r"\bwindow1\b"),
        BadInput("kv-bias-string", args, {"window1": 2, "window2": 2, "kv_bias": "on"}, TypeError, r"\bkv_bias\b"),
    ]


def _flops(s: SampleInput) -> float:
    q = s.args[0]
    return 4.0 * math.prod(q.shape[:-2]) * q.shape[-2] * s.kwargs["window1"] * s.kwargs["window2"] * q.shape[-1]


FORM = Form(
    name="simplicial",
    order=4.5,
    title="Causal windowed 2-simplicial attention",
    equation=(
        r"o_i = \sum_{i-w_1 < j \le i,\; i-w_2 < k \le i} \operatorname{softmax}_{(j,k)}\!\left(\sigma \langle "
        r"q_i, k^{(1)}_j, k^{(2)}_k\rangle\right) v^{(1)}_j \circ v^{(2)}_k"
    ),
    reference=simplicial_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("roy2025fast"), "§3, Eq. (2) (windowed 2-simplicial attention)"),
    status="exact",
    note="kv_bias=True adds 1/d to K2 and 1 to V2 as in the FBGEMM reference, which embeds ordinary attention.",
    array_args=NAMES,
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=7,
            d=3,
            d_v=2,
            causal=True,
            options=(("kv_bias", True), ("scale", 0.6), ("window1", 3), ("window2", 2)),
        ),
        Shape(
            batch=1,
            heads=1,
            kv_heads=1,
            n=8,
            d=4,
            d_v=3,
            causal=True,
            options=(("kv_bias", False), ("window1", 1), ("window2", 8)),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="4·B·H·n·w1·w2·d over the windowed pairs (FBGEMM counts only the trilinear logits)",
    bench=(
        BenchCase(
            Shape(
                batch=1,
                heads=1,
                kv_heads=1,
                n=12,
                d=4,
                d_v=4,
                causal=True,
                options=(("kv_bias", False), ("window1", 3), ("window2", 4)),
            ),
            ("tiny",),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=2,
                kv_heads=2,
                n=128,
                d=16,
                d_v=16,
                causal=True,
                options=(("kv_bias", False), ("window1", 16), ("window2", 16)),
            ),
            ("quick",),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=2,
                kv_heads=2,
                n=256,
                d=16,
                d_v=16,
                causal=True,
                options=(("kv_bias", False), ("window1", 16), ("window2", 32)),
            ),
            ("full",),
        ),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.simplicial:simplicial_attention",
            "numpy",
            vjp="attnlab.fastpath.numba.backward.simplicial:simplicial_vjp",
            differentiable=True,
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.simplicial:simplicial_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
