"""Registry entries of the nine core attention forms (see :mod:`attnlab.registry`).

Each entry: a sample builder (deterministic from a seed and a :class:`Shape`), a hypothesis shape
strategy with small bounded sizes (non-powers of two and length 1 included), invariants, bad-input
cases and a brute-force loop. Invariant checks raise ``AssertionError`` with the size of the violation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from attnlab.reference import (
    MLAWeights,
    attention_weights,
    differential_attention,
    factorized_interaction,
    hamming_attention,
    hamming_scores,
    interaction_matrices,
    khatri_rao,
    laser_attention,
    laser_attention_global_shift,
    linear_attention,
    linear_attention_chunked,
    linear_attention_recurrent,
    mla_attention,
    sign_code,
    simplicial_attention,
    softmax_attention,
    softmax_attention_lse,
    softmax_coefficients,
    tensor_attention,
)
from attnlab.reference import bruteforce as bf
from attnlab.reference.mla import _heads, rms_norm, rope_interleaved
from attnlab.reference.softmax import merge_partial_attention
from attnlab.registry import BadInput, Invariant, OperatorInfo, SampleInput, Shape, register_form
from attnlab.validation import allowed_positions, expand_kv_heads

EXACT = 1e-10  # float64 agreement expected between two exact evaluations of the same quantity


def _close(name: str, got: np.ndarray, want: np.ndarray, atol: float = EXACT) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    assert err <= atol * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0), (
        f"{name}: max abs error {err:.3e} > {atol:.1e}"
    )


# ---------------------------------------------------------------------------------------------
# shapes and samples


@st.composite
def attention_shapes(
    draw: Any, *, max_n: int = 24, max_d: int = 16, gqa: bool = True, cross: bool = True, masks: bool = True
) -> Shape:
    heads = draw(st.sampled_from([1, 2, 4]))
    kv_heads = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0])) if gqa else heads
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_n)) if cross and draw(st.booleans()) else None
    return Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=kv_heads,
        n=n,
        m=m,
        d=draw(st.integers(1, max_d)),
        d_v=draw(st.integers(1, 8)),
        causal=draw(st.booleans()),
        masked=masks and draw(st.booleans()),
    )


def _kv_heads(shape: Shape) -> int:
    return shape.kv_heads if shape.kv_heads and shape.heads % shape.kv_heads == 0 else shape.heads


def _mask(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    return rng.random((shape.n, shape.keys)) < 0.7


def _qkv(rng: np.random.Generator, shape: Shape, value_scale: float = 1.0) -> tuple[np.ndarray, ...]:
    b, h, hk = shape.batch, shape.heads, _kv_heads(shape)
    q = rng.standard_normal((b, h, shape.n, shape.d))
    k = rng.standard_normal((b, hk, shape.keys, shape.d))
    v = value_scale * rng.standard_normal((b, hk, shape.keys, shape.d_v))
    return q, k, v


def _attention_sample(seed: int, shape: Shape, value_scale: float = 1.0) -> SampleInput:
    rng = np.random.default_rng(seed)
    kwargs: dict[str, Any] = {"causal": shape.causal}
    args = _qkv(rng, shape, value_scale)
    if shape.masked:
        kwargs["mask"] = _mask(rng, shape)
    return SampleInput(args, kwargs, shape.label())


def _visible(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The full ``(..., n, m)`` visibility (causal & mask) of an attention-style sample."""
    allowed = allowed_positions(
        q.shape[-2],
        k.shape[-2],
        causal=sample.kwargs.get("causal", False),
        mask=sample.kwargs.get("mask"),
        lead=q.shape[:-2],
    )
    return np.broadcast_to(allowed, (*q.shape[:-2], q.shape[-2], k.shape[-2]))


def _as_mask_sample(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> SampleInput:
    """Same sample with ``causal``/``mask`` folded into one explicit boolean mask."""
    return sample.with_args(*sample.args, causal=False, mask=np.array(_visible(sample, q, k)))


# ---------------------------------------------------------------------------------------------
# invariants shared by forms with the (q, k, v, *, causal, mask) signature


def causal_prefix_invariant(
    op: Callable[..., np.ndarray],
    query_args: Sequence[int],
    key_args: Sequence[int],
    *,
    causal_option: bool = True,
    only_causal_samples: bool = False,
) -> Invariant:
    """G3 for ``op``. ``causal_option=False``: the operator is causal by construction (no kwarg);
    ``only_causal_samples``: skip samples drawn non-causal (when forcing causal would make them invalid)."""

    def check(sample: SampleInput) -> None:
        if only_causal_samples and not sample.kwargs.get("causal", False):
            return
        causal_sample = sample.with_args(*sample.args, causal=True) if causal_option else sample
        args = [np.array(a) if isinstance(a, np.ndarray) else a for a in causal_sample.args]
        n = args[query_args[0]].shape[-2]
        m = args[key_args[0]].shape[-2] if key_args else n
        cut = (n - 1) // 2
        base = causal_sample.call(op)
        rng = np.random.default_rng(1)
        for i in query_args:
            args[i][..., cut + 1 :, :] += rng.standard_normal(args[i][..., cut + 1 :, :].shape)
        for i in key_args:
            args[i][..., cut + 1 + m - n :, :] += rng.standard_normal(args[i][..., cut + 1 + m - n :, :].shape)
        perturbed = causal_sample.with_args(*args).call(op)
        _close("outputs at positions <= cut", perturbed[..., : cut + 1, :], base[..., : cut + 1, :])

    return Invariant("causal_prefix", "causal: output i is unchanged when inputs after i are perturbed (G3)", check)


def key_permutation_invariant(op: Callable[..., np.ndarray], key_args: Sequence[int]) -> Invariant:
    def check(sample: SampleInput) -> None:
        q, k = sample.args[0], sample.args[key_args[0]]
        explicit = _as_mask_sample(sample, q, k)
        perm = np.random.default_rng(2).permutation(k.shape[-2])
        args = list(explicit.args)
        for i in key_args:
            args[i] = args[i][..., perm, :]
        permuted = explicit.with_args(*args, mask=explicit.kwargs["mask"][..., perm])
        _close("output after permuting keys/values", permuted.call(op), sample.call(op))

    return Invariant(
        "key_permutation",
        "jointly permuting keys and values (and mask columns) leaves the output unchanged (G4)",
        check,
    )


def query_permutation_invariant(
    op: Callable[..., np.ndarray], query_args: Sequence[int], key_arg: int = 1
) -> Invariant:
    def check(sample: SampleInput) -> None:
        q, k = sample.args[query_args[0]], sample.args[key_arg]
        explicit = _as_mask_sample(sample, q, k)
        perm = np.random.default_rng(3).permutation(q.shape[-2])
        args = list(explicit.args)
        for i in query_args:
            args[i] = args[i][..., perm, :]
        permuted = explicit.with_args(*args, mask=explicit.kwargs["mask"][..., perm, :])
        _close("output after permuting queries", permuted.call(op), sample.call(op)[..., perm, :])

    return Invariant("query_permutation", "permuting queries (and mask rows) permutes the outputs (G4)", check)


def gqa_invariant(op: Callable[..., np.ndarray], kv_args: Sequence[int]) -> Invariant:
    def check(sample: SampleInput) -> None:
        q, k = sample.args[0], sample.args[kv_args[0]]
        group = q.shape[-3] // k.shape[-3]
        args = list(sample.args)
        for i in kv_args:
            args[i] = np.repeat(args[i], group, axis=-3)
        _close("GQA vs MHA on repeated KV heads", sample.with_args(*args).call(op), sample.call(op))

    return Invariant("gqa_equals_mha", "GQA equals MHA with KV heads repeated contiguously (G6)", check)


def convex_hull_invariant(op: Callable[..., np.ndarray]) -> Invariant:
    def check(sample: SampleInput) -> None:
        q, k, v = expand_kv_heads(*sample.args[:3])
        out = sample.call(op)
        visible = _visible(sample, q, k)[..., None]  # (..., n, m, 1)
        values = v[..., None, :, :]
        lo = np.min(np.where(visible, values, np.inf), axis=-2)
        hi = np.max(np.where(visible, values, -np.inf), axis=-2)
        has = np.any(visible, axis=-2)
        tol = 1e-12 * (1 + np.abs(v).max())
        assert np.all(~has | (out >= lo - tol)) and np.all(~has | (out <= hi + tol)), "output left the hull"

    return Invariant("convex_hull", "each output coordinate lies between the min and max visible value (G2)", check)


def brute_force_invariant(
    op: Callable[..., np.ndarray], brute: Callable[..., np.ndarray], max_n: int = 12
) -> Invariant:
    def check(sample: SampleInput) -> None:
        arrays = [a for a in sample.args if isinstance(a, np.ndarray)]
        if max(a.shape[-2] for a in arrays) > max_n:
            return
        _close("reference vs brute-force loop", sample.call(op), sample.call(brute))

    return Invariant("matches_brute_force", "equals a plain scalar-loop implementation on small inputs", check)


# ---------------------------------------------------------------------------------------------
# bad inputs


def _bad_array_cases(fn: Callable[..., Any], names: Sequence[str], sample: SampleInput) -> list[BadInput]:
    cases = []
    for idx, name in enumerate(names):
        valid = sample.args[idx]
        if not isinstance(valid, np.ndarray):
            continue

        def swap(value: Any, idx: int = idx) -> tuple[Any, ...]:
            args = list(sample.args)
            args[idx] = value
            return tuple(args)

        nan = valid.copy()
        nan.flat[0] = np.nan
        inf = valid.copy()
        inf.flat[-1] = -np.inf
        cases += [
            BadInput(f"{name}-1d", swap(valid.reshape(-1)), sample.kwargs, ValueError, rf"\b{name}\b"),
            BadInput(f"{name}-nan", swap(nan), sample.kwargs, ValueError, rf"\b{name}\b.*NaN"),
            BadInput(f"{name}-inf", swap(inf), sample.kwargs, ValueError, rf"\b{name}\b.*Inf"),
            BadInput(
                f"{name}-int-dtype", swap(valid.astype(np.int64)), sample.kwargs, TypeError, rf"\b{name}\b.*dtype"
            ),
            BadInput(f"{name}-string", swap("not an array"), sample.kwargs, TypeError, rf"\b{name}\b"),
        ]
    return cases


def _bad_option_cases(sample: SampleInput, options: Sequence[str]) -> list[BadInput]:
    cases = []
    kw = {k: v for k, v in sample.kwargs.items() if k != "mask"}
    if "scale" in options:
        cases += [
            BadInput("scale-zero", sample.args, {**kw, "scale": 0.0}, ValueError, r"\bscale\b.*positive"),
            BadInput("scale-negative", sample.args, {**kw, "scale": -1.0}, ValueError, r"\bscale\b.*positive"),
            BadInput("scale-nan", sample.args, {**kw, "scale": float("nan")}, ValueError, r"\bscale\b"),
            BadInput("scale-string", sample.args, {**kw, "scale": "big"}, TypeError, r"\bscale\b"),
        ]
    if "causal" in options:
        cases.append(BadInput("causal-string", sample.args, {**kw, "causal": "yes"}, TypeError, r"\bcausal\b"))
    if "mask" in options:
        cases += [
            BadInput(
                "mask-wrong-shape",
                sample.args,
                {**kw, "mask": np.ones((2, 3, 5, 7, 11), bool)},
                ValueError,
                r"\bmask\b.*shape",
            ),
            BadInput(
                "mask-float", sample.args, {**kw, "mask": np.ones((1, 1), float)}, TypeError, r"\bmask\b.*boolean"
            ),
        ]
    return cases


def _attention_bad_inputs(
    fn: Callable[..., Any], sample: SampleInput, names: Sequence[str] = ("q", "k", "v")
) -> list[BadInput]:
    q, k, v = sample.args[:3]
    cases = _bad_array_cases(fn, names, sample)
    cases += _bad_option_cases(sample, ("scale", "causal", "mask"))
    cases += [
        BadInput(
            "k-head-dim",
            (q, k[..., :-1] if k.shape[-1] > 1 else np.concatenate([k, k], -1), v),
            sample.kwargs,
            ValueError,
            r"\bk\b.*d_k",
        ),
        BadInput("kv-length-mismatch", (q, k, np.concatenate([v, v], -2)), sample.kwargs, ValueError, r"\bk\b.*\bv\b"),
        BadInput(
            "kv-heads-not-dividing",
            (q, np.concatenate([k] * 3, -3), np.concatenate([v] * 3, -3)),
            sample.kwargs,
            ValueError,
            r"\bk\b.*heads",
        ),
    ]
    return cases


# ---------------------------------------------------------------------------------------------
# 1. softmax


def _softmax_brute(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    q, k, v = expand_kv_heads(np.asarray(q, float), np.asarray(k, float), np.asarray(v, float))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    masks = None if mask is None else np.broadcast_to(mask, (*q.shape[:-2], q.shape[-2], k.shape[-2]))
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        out[idx] = bf.softmax_attention_loop(
            q[idx], k[idx], v[idx], scale, causal, None if masks is None else masks[idx]
        )
    return out


def _rows_sum_to_one(sample: SampleInput) -> None:
    q, k = sample.args[:2]
    weights = attention_weights(q, k, **sample.kwargs)
    qe, ke, _ = expand_kv_heads(q, k, k)
    has = np.any(_visible(sample, qe, ke), axis=-1)
    assert np.all(weights >= 0), "negative weight"
    _close("row sums", weights.sum(-1), has.astype(float))


def _key_shift(sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    shift = np.random.default_rng(4).standard_normal(k.shape[-1])
    _close(
        "output after K <- K + 1 u^T",
        softmax_attention(q, k + shift, v, **sample.kwargs),
        sample.call(softmax_attention),
    )


def _blocked_merge(sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    qe, ke, ve = expand_kv_heads(q, k, v)
    visible = np.array(_visible(sample, qe, ke))
    m = ke.shape[-2]
    split = m // 2
    if split == 0:
        return
    o1, l1 = softmax_attention_lse(qe, ke[..., :split, :], ve[..., :split, :], mask=visible[..., :split])
    o2, l2 = softmax_attention_lse(qe, ke[..., split:, :], ve[..., split:, :], mask=visible[..., split:])
    merged, _ = merge_partial_attention(o1, l1, o2, l2)
    _close("two-block lse merge vs dense", merged, sample.call(softmax_attention))


def _first_causal_row(sample: SampleInput) -> None:
    q, k, v = sample.args[:3]
    n = q.shape[-2]
    qe, ke, ve = expand_kv_heads(q, k[..., :n, :] if k.shape[-2] >= n else k, v[..., :n, :] if v.shape[-2] >= n else v)
    if ke.shape[-2] != n:
        return
    out = softmax_attention(qe, ke, ve, causal=True)
    _close("first causal row", out[..., 0, :], ve[..., 0, :])


softmax_info = register_form(
    OperatorInfo(
        name="softmax",
        title="Scaled dot-product softmax attention (MHA/MQA/GQA)",
        reference=softmax_attention,
        source="Vaswani et al. 2017 (arXiv 1706.03762); GQA: Ainslie et al. 2023 (arXiv 2305.13245)",
        make_sample=_attention_sample,
        shape_strategy=attention_shapes(),
        invariants=(
            Invariant(
                "rows_sum_to_one", "attention weights are >= 0 and each visible row sums to 1 (G1)", _rows_sum_to_one
            ),
            convex_hull_invariant(softmax_attention),
            causal_prefix_invariant(softmax_attention, [0], [1, 2]),
            key_permutation_invariant(softmax_attention, [1, 2]),
            query_permutation_invariant(softmax_attention, [0]),
            Invariant(
                "key_shift", "K <- K + 1 u^T shifts each logit row by a constant: output unchanged (G5)", _key_shift
            ),
            gqa_invariant(softmax_attention, [1, 2]),
            Invariant("blocked_merge", "two key blocks merged by their lse equal dense attention (G7)", _blocked_merge),
            Invariant("first_causal_row", "with causal self-attention the first query returns v_0", _first_causal_row),
            brute_force_invariant(softmax_attention, _softmax_brute),
        ),
        bad_inputs=lambda: _attention_bad_inputs(softmax_attention, _attention_sample(0, Shape())),
        brute_force=_softmax_brute,
        array_args=(0, 1, 2),
    )
)


# ---------------------------------------------------------------------------------------------
# 2. linear


def _linear_sample(seed: int, shape: Shape) -> SampleInput:
    shape = replace(shape, masked=False, m=None if shape.causal else shape.m)
    rng = np.random.default_rng(seed)
    return SampleInput(_qkv(rng, shape), {"causal": shape.causal}, shape.label())


def _linear_brute(
    q: Any, k: Any, v: Any, *, causal: bool = False, feature_map: str = "elu1", eps: float = 1e-6
) -> np.ndarray:
    q, k, v = expand_kv_heads(np.asarray(q, float), np.asarray(k, float), np.asarray(v, float))
    return bf.over_batch(bf.linear_attention_loop, q, k, v, causal=causal, eps=eps)


def _recurrent_equals_quadratic(sample: SampleInput) -> None:
    _close(
        "recurrent vs quadratic",
        linear_attention(*sample.args, form="recurrent", **sample.kwargs),
        sample.call(linear_attention),
    )


def _chunked_equals_recurrent(sample: SampleInput) -> None:
    q, k, v = sample.args
    n = q.shape[-2]
    if k.shape[-2] != n:
        return
    want = linear_attention_recurrent(q, k, v, causal=True)
    for chunk in (1, 3, 64):
        _close(f"chunked (C={chunk}) vs recurrent", linear_attention_chunked(q, k, v, chunk_size=chunk), want)


def _split_resume(sample: SampleInput) -> None:
    q, k, v = sample.args
    n = q.shape[-2]
    if k.shape[-2] != n or n < 2:
        return
    t = n // 2
    first, state = linear_attention_recurrent(q[..., :t, :], k[..., :t, :], v[..., :t, :], return_state=True)
    second = linear_attention_recurrent(q[..., t:, :], k[..., t:, :], v[..., t:, :], initial_state=state)
    _close("split-then-resume vs one run", np.concatenate([first, second], -2), linear_attention_recurrent(q, k, v))


linear_info = register_form(
    OperatorInfo(
        name="linear",
        title="Normalised linear attention (phi = elu + 1)",
        reference=linear_attention,
        source="Katharopoulos et al. 2020 (arXiv 2006.16236)",
        make_sample=_linear_sample,
        shape_strategy=attention_shapes(masks=False),
        invariants=(
            Invariant(
                "recurrent_equals_quadratic",
                "the prefix-sum recurrence equals the quadratic form",
                _recurrent_equals_quadratic,
            ),
            Invariant(
                "chunked_equals_recurrent",
                "the chunked causal form equals the recurrence for any chunk size",
                _chunked_equals_recurrent,
            ),
            Invariant("split_resume", "running on a prefix then resuming from its state equals one run", _split_resume),
            causal_prefix_invariant(linear_attention, [0], [1, 2], only_causal_samples=True),
            gqa_invariant(linear_attention, [1, 2]),
            brute_force_invariant(linear_attention, _linear_brute),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(linear_attention, ("q", "k", "v"), _linear_sample(0, Shape())),
            *_bad_option_cases(_linear_sample(0, Shape()), ("causal",)),
            BadInput(
                "feature-map-unknown",
                _linear_sample(0, Shape()).args,
                {"feature_map": "cosine"},
                ValueError,
                r"\bfeature_map\b",
            ),
            BadInput(
                "causal-cross-lengths",
                _linear_sample(0, Shape(m=5)).args,
                {"causal": True},
                ValueError,
                r"\bq/k\b.*lengths",
            ),
            BadInput(
                "k-head-dim",
                (*_linear_sample(0, Shape()).args[:1], np.ones((1, 2, 8, 3)), np.ones((1, 2, 8, 8))),
                {},
                ValueError,
                r"\bk\b.*d_k",
            ),
        ],
        brute_force=_linear_brute,
        array_args=(0, 1, 2),
    )
)


# ---------------------------------------------------------------------------------------------
# 3. LASER


def _laser_sample(seed: int, shape: Shape) -> SampleInput:
    return _attention_sample(seed, shape, value_scale=2.0)


def _laser_brute(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    q, k, v = expand_kv_heads(np.asarray(q, float), np.asarray(k, float), np.asarray(v, float))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    masks = None if mask is None else np.broadcast_to(mask, (*q.shape[:-2], q.shape[-2], k.shape[-2]))
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        out[idx] = bf.laser_attention_loop(q[idx], k[idx], v[idx], scale, causal, None if masks is None else masks[idx])
    return out


def _laser_shift(sample: SampleInput) -> None:
    q, k, v = sample.args
    c = np.random.default_rng(5).standard_normal(v.shape[-1])
    base = sample.call(laser_attention)
    has = np.any(_visible(sample, *expand_kv_heads(q, k, v)[:2]), axis=-1)[..., None]
    _close("LASER(V + 1c^T) - c", np.where(has, laser_attention(q, k, v + c, **sample.kwargs) - c, 0.0), base)


def _laser_sandwich(sample: SampleInput) -> None:
    out = sample.call(laser_attention)
    linear = sample.call(softmax_attention)
    assert np.all(out >= linear - 1e-12), f"Jensen: LASER < AV by {float(np.max(linear - out)):.3e}"
    convex_hull_invariant(laser_attention).check(sample)


def _laser_small_value_limit(sample: SampleInput) -> None:
    q, k, v = sample.args
    eps = 1e-6
    limit = laser_attention(q, k, eps * v, **sample.kwargs) / eps
    # laser(εV)/ε = AV + (ε/2)·Var_A(V) + O(ε²)
    _close("LASER(eps V)/eps vs AV", limit, sample.call(softmax_attention), atol=eps * (1 + float(np.max(v * v))))


def _laser_global_shift_agrees(sample: SampleInput) -> None:
    q, k, v = sample.args
    has = np.any(_visible(sample, *expand_kv_heads(q, k, v)[:2]), axis=-1)[..., None]
    shifted = np.where(has, sample.call(laser_attention_global_shift), 0.0)  # empty rows: log 0 by design
    _close("log-domain vs global-shift LWSE (moderate values)", shifted, sample.call(laser_attention))


laser_info = register_form(
    OperatorInfo(
        name="laser",
        title="LASER: log(softmax(S) exp(V))",
        reference=laser_attention,
        source="Duvvuri & Dhillon, ICML 2025 (arXiv 2411.03493)",
        make_sample=_laser_sample,
        shape_strategy=attention_shapes(),
        invariants=(
            Invariant("shift_equivariance", "LASER(V + 1 c^T) = LASER(V) + 1 c^T", _laser_shift),
            Invariant("sandwich", "A V <= LASER <= max visible V (Jensen and the hull)", _laser_sandwich),
            Invariant("small_value_limit", "LASER(eps V)/eps -> A V as eps -> 0", _laser_small_value_limit),
            Invariant(
                "global_shift_agrees",
                "the paper's global-max LWSE equals the log-domain form when nothing underflows",
                _laser_global_shift_agrees,
            ),
            causal_prefix_invariant(laser_attention, [0], [1, 2]),
            key_permutation_invariant(laser_attention, [1, 2]),
            gqa_invariant(laser_attention, [1, 2]),
            brute_force_invariant(laser_attention, _laser_brute),
        ),
        bad_inputs=lambda: _attention_bad_inputs(laser_attention, _laser_sample(0, Shape())),
        brute_force=_laser_brute,
        array_args=(0, 1, 2),
    )
)


# ---------------------------------------------------------------------------------------------
# 4. tensor attention and 5. 2-simplicial


@st.composite
def tensor_shapes(draw: Any, max_n: int = 9) -> Shape:
    causal = draw(st.booleans())
    n = draw(st.integers(1, max_n))
    m = None if causal or draw(st.booleans()) else draw(st.integers(1, max_n))
    return Shape(
        batch=draw(st.integers(1, 2)),
        heads=draw(st.integers(1, 2)),
        n=n,
        m=m,
        d=draw(st.integers(1, 6)),
        d_v=draw(st.integers(1, 4)),
        causal=causal,
    )


def _tensor_sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    b, h, n = shape.batch, shape.heads, min(shape.n, 12)
    m = n if shape.causal else min(shape.keys, 12)
    m2 = m if shape.causal else max(1, m - 1)
    d, dv = shape.d, shape.d_v
    args = (
        rng.standard_normal((b, h, n, d)),
        rng.standard_normal((b, h, m, d)),
        rng.standard_normal((b, h, m2, d)),
        rng.standard_normal((b, h, m, dv)),
        rng.standard_normal((b, h, m2, dv)),
    )
    return SampleInput(args, {"causal": shape.causal}, shape.label())


def _pair_visibility(n: int, m1: int, m2: int, causal: bool) -> np.ndarray:
    i = np.arange(n)[:, None, None]
    if not causal:
        return np.ones((n, m1 * m2), bool)
    vis = (np.arange(m1)[None, :, None] <= i) & (np.arange(m2)[None, None, :] <= i)
    return vis.reshape(n, m1 * m2)


def _tensor_brute(
    q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False
) -> np.ndarray:
    scale = 1.0 / q.shape[-1] if scale is None else scale
    visible = (lambda i, j, kk: j <= i and kk <= i) if causal else None
    return bf.over_batch(bf.tensor_attention_loop, q, k1, k2, v1, v2, scale=scale, visible=visible)


def _tensor_reduces_to_softmax(sample: SampleInput) -> None:
    q, k1, _, v1, _ = sample.args
    ones_k, ones_v = np.ones_like(k1), np.ones_like(v1)
    scale = 1.0 / q.shape[-1]
    got = tensor_attention(q, k1, ones_k, v1, ones_v, causal=sample.kwargs["causal"])
    _close(
        "tensor(K2=1, V2=1) vs softmax", got, softmax_attention(q, k1, v1, scale=scale, causal=sample.kwargs["causal"])
    )


def _tensor_factor_swap(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    _close("swapped factors", tensor_attention(q, k2, k1, v2, v1, **sample.kwargs), sample.call(tensor_attention))


def _tensor_kronecker(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    vis = _pair_visibility(q.shape[-2], k1.shape[-2], k2.shape[-2], sample.kwargs["causal"])
    got = softmax_attention(q, khatri_rao(k1, k2), khatri_rao(v1, v2), scale=1.0 / q.shape[-1], mask=vis)
    _close("explicit Kronecker construction", got, sample.call(tensor_attention))


def _tensor_pair_permutation(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    if sample.kwargs["causal"]:
        return
    rng = np.random.default_rng(6)
    p1, p2 = rng.permutation(k1.shape[-2]), rng.permutation(k2.shape[-2])
    got = tensor_attention(q, k1[..., p1, :], k2[..., p2, :], v1[..., p1, :], v2[..., p2, :])
    _close("independently permuted factors", got, sample.call(tensor_attention))


tensor_info = register_form(
    OperatorInfo(
        name="tensor",
        title="Tensor (Kronecker) attention over all key pairs",
        reference=tensor_attention,
        source="Alman & Song, ICLR 2024 (arXiv 2310.04064)",
        make_sample=_tensor_sample,
        shape_strategy=tensor_shapes(),
        invariants=(
            Invariant(
                "reduces_to_softmax",
                "K2 = 1, V2 = 1 gives softmax attention softmax(s Q K1^T) V1",
                _tensor_reduces_to_softmax,
            ),
            Invariant(
                "factor_swap", "swapping (K1, V1) with (K2, V2) leaves the output unchanged", _tensor_factor_swap
            ),
            Invariant(
                "kronecker_construction",
                "streaming evaluation equals D^-1 exp(s Q (K1 ⊘ K2)^T)(V1 ⊘ V2)",
                _tensor_kronecker,
            ),
            Invariant(
                "pair_permutation",
                "independent key permutations of each factor leave the output unchanged",
                _tensor_pair_permutation,
            ),
            causal_prefix_invariant(tensor_attention, [0], [1, 2, 3, 4], only_causal_samples=True),
            brute_force_invariant(tensor_attention, _tensor_brute, max_n=8),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(tensor_attention, ("q", "k1", "k2", "v1", "v2"), _tensor_sample(0, Shape(n=4))),
            *_bad_option_cases(_tensor_sample(0, Shape(n=4)), ("scale", "causal")),
            BadInput(
                "k2-head-dim",
                (
                    *_tensor_sample(0, Shape(n=4)).args[:2],
                    np.ones((1, 2, 3, 2)),
                    *_tensor_sample(0, Shape(n=4)).args[3:],
                ),
                {},
                ValueError,
                r"\bk2\b",
            ),
            BadInput(
                "v1-length",
                (*_tensor_sample(0, Shape(n=4)).args[:3], np.ones((1, 2, 9, 8)), _tensor_sample(0, Shape(n=4)).args[4]),
                {},
                ValueError,
                r"\bk1/v1\b",
            ),
        ],
        brute_force=_tensor_brute,
        array_args=(0, 1, 2, 3, 4),
    )
)


def _simplicial_sample(seed: int, shape: Shape) -> SampleInput:
    base = _tensor_sample(seed, replace(shape, causal=True, m=None))
    rng = np.random.default_rng(seed + 1)
    n = base.args[0].shape[-2]
    kwargs = {
        "window1": int(rng.integers(1, n + 2)),
        "window2": int(rng.integers(1, n + 2)),
        "kv_bias": bool(rng.random() < 0.5),
    }
    return SampleInput(base.args, kwargs, shape.label() + f"-w{kwargs['window1']}x{kwargs['window2']}")


def _window_visibility(n: int, w1: int, w2: int) -> np.ndarray:
    i = np.arange(n)[:, None, None]
    j = np.arange(n)[None, :, None]
    k = np.arange(n)[None, None, :]
    return (((j <= i) & (j > i - w1)) & ((k <= i) & (k > i - w2))).reshape(n, n * n)


def _simplicial_brute(
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
    d = q.shape[-1]
    scale = d**-0.5 if scale is None else scale
    if kv_bias:
        k2, v2 = k2 + 1.0 / d, v2 + 1.0

    def visible(i: int, j: int, kk: int) -> bool:
        return i - window1 < j <= i and i - window2 < kk <= i

    return bf.over_batch(bf.tensor_attention_loop, q, k1, k2, v1, v2, scale=scale, visible=visible)


def _simplicial_masked_tensor(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    d, n = q.shape[-1], q.shape[-2]
    if sample.kwargs["kv_bias"]:
        k2, v2 = k2 + 1.0 / d, v2 + 1.0
    vis = _window_visibility(n, sample.kwargs["window1"], sample.kwargs["window2"])
    got = softmax_attention(q, khatri_rao(k1, k2), khatri_rao(v1, v2), scale=d**-0.5, mask=vis)
    _close("window-masked Kronecker attention", got, sample.call(simplicial_attention))


def _simplicial_full_window(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    n = q.shape[-2]
    got = simplicial_attention(q, k1, k2, v1, v2, window1=n, window2=n)
    _close(
        "full windows vs causal tensor attention",
        got,
        tensor_attention(q, k1, k2, v1, v2, scale=q.shape[-1] ** -0.5, causal=True),
    )


def _simplicial_embeds_attention(sample: SampleInput) -> None:
    q, k1, k2, v1, v2 = sample.args
    d, n = q.shape[-1], q.shape[-2]
    w1 = sample.kwargs["window1"]
    got = simplicial_attention(q, k1, np.zeros_like(k2), v1, np.zeros_like(v2), window1=w1, window2=n + 1, kv_bias=True)
    window = np.tril(np.ones((n, n), bool)) & ~np.tril(np.ones((n, n), bool), -w1)
    _close(
        "kv-bias with K2 = V2 = 0 vs windowed softmax attention",
        got,
        softmax_attention(q, k1, v1, scale=d**-0.5 / d, mask=window),
    )


simplicial_info = register_form(
    OperatorInfo(
        name="simplicial",
        title="Causal windowed 2-simplicial attention",
        reference=simplicial_attention,
        source="Roy et al., Fast and Simplex (arXiv 2507.02754); Clift et al. 2019",
        make_sample=_simplicial_sample,
        shape_strategy=tensor_shapes(),
        invariants=(
            Invariant(
                "masked_tensor", "equals Kronecker attention restricted to the window mask", _simplicial_masked_tensor
            ),
            Invariant(
                "full_window_is_causal_tensor",
                "windows >= n give causal tensor attention (scale 1/sqrt d)",
                _simplicial_full_window,
            ),
            Invariant(
                "kv_bias_embeds_attention",
                "kv-bias with K2 = V2 = 0 is windowed softmax attention with scale 1/(d sqrt d)",
                _simplicial_embeds_attention,
            ),
            causal_prefix_invariant(simplicial_attention, [0], [1, 2, 3, 4], causal_option=False),
            brute_force_invariant(simplicial_attention, _simplicial_brute, max_n=8),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(simplicial_attention, ("q", "k1", "k2", "v1", "v2"), _simplicial_sample(0, Shape(n=4))),
            *_bad_option_cases(_simplicial_sample(0, Shape(n=4)), ("scale",)),
            BadInput(
                "window1-zero",
                _simplicial_sample(0, Shape(n=4)).args,
                {"window1": 0, "window2": 2},
                ValueError,
                r"\bwindow1\b",
            ),
            BadInput(
                "window2-negative",
                _simplicial_sample(0, Shape(n=4)).args,
                {"window1": 2, "window2": -3},
                ValueError,
                r"\bwindow2\b",
            ),
            BadInput(
                "window1-float",
                _simplicial_sample(0, Shape(n=4)).args,
                {"window1": 2.5, "window2": 2},
                TypeError,
                r"\bwindow1\b",
            ),
            BadInput(
                "kv-bias-string",
                _simplicial_sample(0, Shape(n=4)).args,
                {"window1": 2, "window2": 2, "kv_bias": "on"},
                TypeError,
                r"\bkv_bias\b",
            ),
        ],
        brute_force=_simplicial_brute,
        array_args=(0, 1, 2, 3, 4),
    )
)


# ---------------------------------------------------------------------------------------------
# 6. differential


def _differential_sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    q1, k1, v = _qkv(rng, shape)
    q2, k2, _ = _qkv(rng, shape)
    kwargs: dict[str, Any] = {"lam": float(rng.uniform(0.0, 1.0)), "causal": shape.causal}
    if shape.masked:
        kwargs["mask"] = _mask(rng, shape)
    return SampleInput((q1, k1, q2, k2, v), kwargs, shape.label())


def _differential_brute(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    first = _softmax_brute(q1, k1, v, scale=scale, causal=causal, mask=mask)
    return first - lam * _softmax_brute(q2, k2, v, scale=scale, causal=causal, mask=mask)


def _differential_lambda_zero(sample: SampleInput) -> None:
    q1, k1, _, _, v = sample.args
    kw = {k: val for k, val in sample.kwargs.items() if k != "lam"}
    _close(
        "lambda = 0 vs softmax",
        differential_attention(*sample.args, **{**sample.kwargs, "lam": 0.0}),
        softmax_attention(q1, k1, v, **kw),
    )


def _differential_same_maps(sample: SampleInput) -> None:
    q1, k1, _, _, v = sample.args
    kw = {k: val for k, val in sample.kwargs.items() if k != "lam"}
    lam = sample.kwargs["lam"]
    _close(
        "Q2 = Q1, K2 = K1 vs (1 - lambda) softmax",
        differential_attention(q1, k1, q1, k1, v, **sample.kwargs),
        (1 - lam) * softmax_attention(q1, k1, v, **kw),
    )


def _differential_value_split(sample: SampleInput) -> None:
    q1, k1, q2, k2, v = sample.args
    if v.shape[-1] < 2:
        return
    cut = v.shape[-1] // 2
    halves = [differential_attention(q1, k1, q2, k2, part, **sample.kwargs) for part in (v[..., :cut], v[..., cut:])]
    _close("two value halves concatenated vs one call", np.concatenate(halves, -1), sample.call(differential_attention))


def _differential_row_mass(sample: SampleInput) -> None:
    q1, k1, q2, k2, v = sample.args
    ones = np.ones((*v.shape[:-1], 1))
    qe, ke, _ = expand_kv_heads(q1, k1, v)
    has = np.any(_visible(sample, qe, ke), axis=-1)[..., None]
    _close(
        "row sums of A1 - lambda A2",
        differential_attention(q1, k1, q2, k2, ones, **sample.kwargs),
        np.where(has, 1 - sample.kwargs["lam"], 0.0),
    )


differential_info = register_form(
    OperatorInfo(
        name="differential",
        title="Differential attention (DIFF Transformer core)",
        reference=differential_attention,
        source="Ye et al., Differential Transformer, ICLR 2025 (arXiv 2410.05258)",
        make_sample=_differential_sample,
        shape_strategy=attention_shapes(),
        invariants=(
            Invariant(
                "lambda_zero_is_softmax", "lambda = 0 gives softmax attention with (Q1, K1)", _differential_lambda_zero
            ),
            Invariant(
                "same_maps_scale", "Q2 = Q1, K2 = K1 gives (1 - lambda) softmax attention", _differential_same_maps
            ),
            Invariant(
                "value_split_linearity",
                "splitting V into halves and concatenating equals one call",
                _differential_value_split,
            ),
            Invariant("row_mass", "the combined weights of each visible row sum to 1 - lambda", _differential_row_mass),
            causal_prefix_invariant(differential_attention, [0, 2], [1, 3, 4]),
            gqa_invariant(differential_attention, [1, 3, 4]),
            brute_force_invariant(differential_attention, _differential_brute),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(differential_attention, ("q1", "k1", "q2", "k2", "v"), _differential_sample(0, Shape())),
            *_bad_option_cases(_differential_sample(0, Shape()), ("scale", "causal", "mask")),
            BadInput("lam-missing-none", _differential_sample(0, Shape()).args, {"lam": None}, TypeError, r"\blam\b"),
            BadInput("lam-nan", _differential_sample(0, Shape()).args, {"lam": float("nan")}, ValueError, r"\blam\b"),
            BadInput(
                "lam-bad-shape",
                _differential_sample(0, Shape()).args,
                {"lam": np.ones((5, 3, 7))},
                ValueError,
                r"\blam\b",
            ),
        ],
        brute_force=_differential_brute,
        array_args=(0, 1, 2, 3, 4),
    )
)


# ---------------------------------------------------------------------------------------------
# 7. Hamming


def _hamming_sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, replace(shape, masked=False))
    q[..., ::3, 0] = 0.0  # exercise sign(0) = +1
    kwargs: dict[str, Any] = {"causal": shape.causal}
    if shape.masked:
        kwargs["top_n"] = int(rng.integers(1, shape.keys + 2))
    return SampleInput((q, k, v), kwargs, shape.label())


def _hamming_brute(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, top_n: int | None = None
) -> np.ndarray:
    if top_n is not None:
        raise ValueError("top_n: the brute-force loop covers the dense case only")
    q, k, v = expand_kv_heads(np.asarray(q, float), np.asarray(k, float), np.asarray(v, float))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return bf.over_batch(bf.hamming_attention_loop, q, k, v, scale=scale, causal=causal)


def _hamming_scores_are_sign_dots(sample: SampleInput) -> None:
    q, k, _ = sample.args
    qe, ke, _ = expand_kv_heads(q, k, k)
    dots = sign_code(qe) @ np.swapaxes(sign_code(ke), -1, -2)
    _close("scores vs sign-code dot products", hamming_scores(q, k, scale=1.0), dots, atol=0.0)


def _hamming_rescale(sample: SampleInput) -> None:
    q, k, v = sample.args
    rng = np.random.default_rng(7)
    cq = rng.uniform(0.1, 10.0, (*q.shape[:-1], 1))
    ck = rng.uniform(0.1, 10.0, (*k.shape[:-1], 1))
    _close(
        "positively rescaled q, k",
        hamming_attention(q * cq, k * ck, v, **sample.kwargs),
        sample.call(hamming_attention),
    )


def _hamming_top_n_full(sample: SampleInput) -> None:
    q, k, v = sample.args
    kw = {key: val for key, val in sample.kwargs.items() if key != "top_n"}
    _close("top_n >= m vs dense", hamming_attention(q, k, v, top_n=k.shape[-2], **kw), hamming_attention(q, k, v, **kw))


def _hamming_brute_dense(sample: SampleInput) -> None:
    if "top_n" in sample.kwargs or sample.args[0].shape[-2] > 12:
        return
    _close("reference vs brute-force loop", sample.call(hamming_attention), sample.call(_hamming_brute))


hamming_info = register_form(
    OperatorInfo(
        name="hamming",
        title="Hamming attention on sign codes (HAD)",
        reference=hamming_attention,
        source="Horton et al. 2025, Hamming Attention Distillation (arXiv 2502.01770)",
        make_sample=_hamming_sample,
        shape_strategy=attention_shapes(),
        invariants=(
            Invariant(
                "scores_are_sign_dots",
                "sigma (d - 2 Ham) equals sigma sign(q).sign(k), exactly",
                _hamming_scores_are_sign_dots,
            ),
            Invariant(
                "rescale_invariance", "positive per-vector rescaling of q and k changes nothing", _hamming_rescale
            ),
            Invariant("top_n_full_is_dense", "top_n >= m keeps every key", _hamming_top_n_full),
            causal_prefix_invariant(hamming_attention, [0], [1, 2]),
            gqa_invariant(hamming_attention, [1, 2]),
            Invariant(
                "matches_brute_force", "equals a plain scalar-loop implementation on small inputs", _hamming_brute_dense
            ),
        ),
        bad_inputs=lambda: [
            *_attention_bad_inputs(hamming_attention, _hamming_sample(0, Shape())),
            BadInput("top-n-zero", _hamming_sample(0, Shape()).args, {"top_n": 0}, ValueError, r"\btop_n\b"),
        ],
        brute_force=_hamming_brute,
        array_args=(0, 1, 2),
    )
)


# ---------------------------------------------------------------------------------------------
# 8. MLA


@st.composite
def mla_shapes(draw: Any) -> Shape:
    return Shape(
        batch=draw(st.integers(1, 2)),
        heads=draw(st.sampled_from([1, 2, 4])),
        n=draw(st.integers(1, 12)),
        d=2 * draw(st.integers(1, 3)),
        d_v=draw(st.integers(1, 6)),
        causal=draw(st.booleans()),
    )


def _mla_sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    d_rope = 2 * max(1, shape.d // 2)
    weights = MLAWeights.random(
        seed,
        d_model=16,
        n_heads=shape.heads,
        d_latent=6,
        d_q_latent=8 if seed % 2 else 0,
        d_nope=4,
        d_rope=d_rope,
        d_v=shape.d_v,
    )
    x = rng.standard_normal((shape.batch, shape.n, 16))
    return SampleInput((x, weights), {"causal": shape.causal}, shape.label())


def _mla_brute(
    x: Any,
    weights: MLAWeights,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> np.ndarray:
    """Naive MLA with an explicit loop over heads and the scalar softmax loop."""
    x = np.asarray(x, float)
    n, h = x.shape[-2], weights.n_heads
    d_nope, d_c = weights.d_nope, weights.d_latent
    scale = (d_nope + weights.d_rope) ** -0.5 if scale is None else scale
    pos = np.arange(n, dtype=float)
    q_lat = x if weights.w_dq is None else rms_norm(x @ weights.w_dq, weights.q_norm)
    q = _heads(q_lat @ weights.w_uq, h)
    kv = x @ weights.w_dkv
    c_hat = rms_norm(kv[..., :d_c], weights.kv_norm)
    k_rope = rope_interleaved(kv[..., d_c:], pos, rope_base)
    kv_up = _heads(c_hat @ weights.w_ukv, h)
    out = np.zeros((*x.shape[:-2], n, h * weights.d_v))
    for idx in np.ndindex(*x.shape[:-2]):
        for head in range(h):
            qh = np.concatenate(
                [q[idx][head, :, :d_nope], rope_interleaved(q[idx][head, :, d_nope:], pos, rope_base)], -1
            )
            kh = np.concatenate([kv_up[idx][head, :, :d_nope], k_rope[idx]], -1)
            vh = kv_up[idx][head, :, d_nope:]
            out[idx][:, head * weights.d_v : (head + 1) * weights.d_v] = bf.softmax_attention_loop(
                qh, kh, vh, scale, causal, mask
            )
    return out @ weights.w_o


def _mla_absorbed(sample: SampleInput) -> None:
    _close(
        "absorbed vs naive MLA", mla_attention(*sample.args, impl="absorb", **sample.kwargs), sample.call(mla_attention)
    )


mla_info = register_form(
    OperatorInfo(
        name="mla",
        title="Multi-head latent attention (naive and absorbed)",
        reference=mla_attention,
        source="DeepSeek-AI, DeepSeek-V2 (arXiv 2405.04434) and DeepSeek-V3 inference code",
        make_sample=_mla_sample,
        shape_strategy=mla_shapes(),
        invariants=(
            Invariant(
                "absorbed_equals_naive",
                "the weight-absorbed form equals the naive form (RoPE branch included)",
                _mla_absorbed,
            ),
            causal_prefix_invariant(mla_attention, [0], []),
            brute_force_invariant(mla_attention, _mla_brute),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(mla_attention, ("x",), _mla_sample(0, Shape())),
            *_bad_option_cases(_mla_sample(0, Shape()), ("scale", "causal", "mask")),
            BadInput(
                "weights-wrong-type", (_mla_sample(0, Shape()).args[0], {"w_o": 1}), {}, TypeError, r"\bweights\b"
            ),
            BadInput("impl-unknown", _mla_sample(0, Shape()).args, {"impl": "fast"}, ValueError, r"\bimpl\b"),
            BadInput(
                "x-width", (np.ones((1, 4, 15)), _mla_sample(0, Shape()).args[1]), {}, ValueError, r"\bx\b.*\b16\b"
            ),
        ],
        brute_force=_mla_brute,
        array_args=(0,),
    )
)


# ---------------------------------------------------------------------------------------------
# 9. factorized interaction


def _interaction_sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    dim = max(2, shape.d)
    x = rng.standard_normal((shape.batch, shape.n, dim))
    alpha = rng.standard_normal((shape.batch, shape.heads, shape.n, shape.n))
    u = rng.standard_normal((shape.heads, dim, dim)) / np.sqrt(dim)
    return SampleInput((x, alpha, u), {}, shape.label())


def _interaction_brute(x: Any, alpha: Any, u: Any) -> np.ndarray:
    return np.stack([bf.interaction_loop(x[b], alpha[b], u) for b in range(x.shape[0])])


def _interaction_is_mha(sample: SampleInput) -> None:
    x = sample.args[0]
    heads, dim = sample.args[2].shape[:2]
    rng = np.random.default_rng(8)
    d_k, d_v = 3, 2
    w_q, w_k = rng.standard_normal((2, heads, dim, d_k))
    w_v, w_o = rng.standard_normal((heads, dim, d_v)), rng.standard_normal((heads, d_v, dim))
    alpha = softmax_coefficients(x, w_q, w_k, causal=True)
    got = factorized_interaction(x, alpha, w_v=w_v, w_o=w_o)
    q = np.einsum("bnd,hdk->bhnk", x, w_q)
    k = np.einsum("bnd,hdk->bhnk", x, w_k)
    v = np.einsum("bnd,hdk->bhnk", x, w_v)
    mha = np.einsum("bhnv,hvd->bnd", softmax_attention(q, k, v, causal=True), w_o)
    _close("UFF with softmax coefficients vs multi-head attention", got, mha)


def _interaction_rank(sample: SampleInput) -> None:
    x, alpha, u = sample.args
    mats = interaction_matrices(alpha[0], u)  # (n, n, D, D)
    n, dim = x.shape[-2], x.shape[-1]
    rank = np.linalg.matrix_rank(mats.reshape(n * n, dim * dim), tol=1e-9)
    assert rank <= u.shape[0], f"interaction rank {rank} > H = {u.shape[0]}"


def _interaction_low_rank(sample: SampleInput) -> None:
    x, alpha, _ = sample.args
    heads, dim = sample.args[2].shape[:2]
    rng = np.random.default_rng(9)
    w_v, w_o = rng.standard_normal((heads, dim, 2)), rng.standard_normal((heads, 2, dim))
    dense = np.swapaxes(w_v @ w_o, -1, -2)
    _close(
        "low-rank (W_V, W_O) vs dense U = (W_V W_O)^T",
        factorized_interaction(x, alpha, w_v=w_v, w_o=w_o),
        factorized_interaction(x, alpha, dense),
    )


def _interaction_linear_in_x(sample: SampleInput) -> None:
    x, alpha, u = sample.args
    other = np.random.default_rng(10).standard_normal(x.shape)
    _close(
        "Y(2x + x') vs 2Y(x) + Y(x')",
        factorized_interaction(2 * x + other, alpha, u),
        2 * factorized_interaction(x, alpha, u) + factorized_interaction(other, alpha, u),
    )


interaction_info = register_form(
    OperatorInfo(
        name="interaction",
        title="Multi-head factorized interaction operator",
        reference=factorized_interaction,
        source="Ghodsi, unified factorized framework (arXiv 2512.15115)",
        make_sample=_interaction_sample,
        shape_strategy=st.builds(
            Shape, batch=st.integers(1, 2), heads=st.integers(1, 4), n=st.integers(1, 8), d=st.integers(2, 6)
        ),
        invariants=(
            Invariant(
                "softmax_is_mha",
                "softmax coefficients with U_h = (W_V^h W_O^h)^T give multi-head attention",
                _interaction_is_mha,
            ),
            Invariant(
                "rank_at_most_heads", "the n^2 x D^2 matrix of stacked vec(W_ij) has rank <= H", _interaction_rank
            ),
            Invariant(
                "low_rank_equals_dense", "(W_V, W_O) maps equal the dense U = (W_V W_O)^T", _interaction_low_rank
            ),
            Invariant("linear_in_x", "for fixed coefficients the operator is linear in X", _interaction_linear_in_x),
            brute_force_invariant(factorized_interaction, _interaction_brute, max_n=6),
        ),
        bad_inputs=lambda: [
            *_bad_array_cases(
                factorized_interaction, ("x", "alpha", "u"), _interaction_sample(0, Shape(heads=2, n=4, d=3))
            ),
            BadInput(
                "alpha-wrong-length",
                (np.ones((1, 4, 3)), np.ones((1, 2, 5, 5)), np.ones((2, 3, 3))),
                {},
                ValueError,
                r"\balpha\b",
            ),
            BadInput(
                "alpha-heads",
                (np.ones((1, 4, 3)), np.ones((1, 3, 4, 4)), np.ones((2, 3, 3))),
                {},
                ValueError,
                r"\balpha\b.*heads",
            ),
            BadInput(
                "u-wrong-width",
                (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4)), np.ones((2, 4, 4))),
                {},
                ValueError,
                r"\bu\b",
            ),
            BadInput("no-value-maps", (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))), {}, ValueError, r"\bu\b"),
            BadInput(
                "w-o-shape",
                (np.ones((1, 4, 3)), np.ones((1, 2, 4, 4))),
                {"w_v": np.ones((2, 3, 2)), "w_o": np.ones((2, 3, 3))},
                ValueError,
                r"\bw_o\b",
            ),
        ],
        brute_force=_interaction_brute,
        array_args=(0, 1, 2),
    )
)
