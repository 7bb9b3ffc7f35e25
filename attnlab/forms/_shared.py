"""Building blocks the form declarations share: shapes, samples, invariants, mutants and bad inputs.

Everything here that a brute-force loop or an invariant uses to *compute* (the GQA head map, the
visibility pattern, the scalar softmax loop) is written again from the definitions, without the
reference's helpers, so a bug in a shared reference helper cannot hide from the checks built on it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from attnlab.core import BadInput, Diagnosis, Invariant, Mutant, SampleInput, Shape

#: Two exact float64 evaluations of the same quantity agree to this relative tolerance.
EXACT = 1e-10


def close(name: str, got: Any, want: Any, atol: float = EXACT) -> None:
    """Assert ``max|got − want| <= atol · max(1, max|want|)``, NaN-aware, naming the quantity."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if not got.size:
        return
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name}: NaN where the other has none"
    finite = ~np.isnan(want)
    err = float(np.max(np.abs(got[finite] - want[finite]))) if finite.any() else 0.0
    scale = max(1.0, float(np.max(np.abs(want[finite]))) if finite.any() else 1.0)
    assert err <= atol * scale, f"{name}: max abs error {err:.3e} > {atol:.1e} x {scale:.3g}"


# ---------------------------------------------------------------------------------------------
# independent numpy helpers (brute-force loops and invariants)


def repeat_kv(q: np.ndarray, *kv: np.ndarray) -> tuple[np.ndarray, ...]:
    """GQA head map: KV head ``g`` serves query heads ``g·G … g·G + G − 1``; leading dims broadcast."""
    if q.ndim >= 3 and kv[0].ndim >= 3 and kv[0].shape[-3] not in (1, q.shape[-3]):
        group = q.shape[-3] // kv[0].shape[-3]
        kv = tuple(np.repeat(a, group, axis=-3) for a in kv)
    lead = np.broadcast_shapes(q.shape[:-2], *(a.shape[:-2] for a in kv))
    return tuple(np.broadcast_to(a, (*lead, *a.shape[-2:])) for a in (q, *kv))


def visibility(n: int, m: int, causal: bool, mask: Any = None, lead: tuple[int, ...] = ()) -> np.ndarray:
    """``(*lead, n, m)`` booleans: key ``j`` visible to query ``i`` (bottom-right causal, then the mask)."""
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    allowed = (j <= i + (m - n)) if causal else np.ones((n, m), dtype=bool)
    if mask is not None:
        allowed = allowed & np.asarray(mask, dtype=bool)
    return np.broadcast_to(allowed, (*lead, n, m)) if lead else allowed


def over_batch(fn: Callable[..., np.ndarray], *arrays: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Apply a 2-d loop ``fn`` to every leading index of equally shaped batch dims."""
    lead = arrays[0].shape[:-2]
    if not lead:
        return fn(*arrays, **kwargs)
    outs = [fn(*(a[idx] for a in arrays), **kwargs) for idx in np.ndindex(*lead)]
    return np.stack(outs).reshape(*lead, *outs[0].shape)


def softmax_rows_loop(logits: np.ndarray, visible: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``o_i = Σ_j softmax_j(s_ij over visible j) v_j`` one scalar at a time; empty rows give 0."""
    n, m = logits.shape
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        seen = [j for j in range(m) if visible[i, j]]
        if not seen:
            continue
        top = max(logits[i, j] for j in seen)
        weights = {j: math.exp(logits[i, j] - top) for j in seen}
        total = sum(weights.values())
        for c in range(v.shape[1]):
            out[i, c] = sum(w * v[j, c] for j, w in weights.items()) / total
    return out


def dot_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a bᵀ`` as explicit sums (rows of ``a`` against rows of ``b``)."""
    return np.array(
        [[sum(a[i, t] * b[j, t] for t in range(a.shape[1])) for j in range(b.shape[0])] for i in range(a.shape[0])]
    )


def attention_loop(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> np.ndarray:
    """Softmax attention as scalar loops over every (batch, head) slice."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    q, k, v = repeat_kv(q, k, v)
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    vis = visibility(q.shape[-2], k.shape[-2], causal, mask, q.shape[:-2])
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        out[idx] = softmax_rows_loop(sigma * dot_loop(q[idx], k[idx]), vis[idx], v[idx])
    return out


# ---------------------------------------------------------------------------------------------
# shapes


#: Standard fixed shapes (adversarial cases): length 1, odd lengths, GQA with several KV heads, m != n
#: (both ways), bottom-right causal with queries before the first key, masks with an empty row, large,
#: shifted and tied values. Forms adapt them (``Form.adapt``); tile-crossing lengths come from the fast
#: paths' declared tiles (:func:`attnlab.testing.samples.tile_shapes`).
STANDARD_SHAPES: tuple[Shape, ...] = (
    Shape(batch=1, heads=2, kv_heads=2, n=1, d=4, d_v=3),
    Shape(batch=2, heads=4, kv_heads=2, n=7, d=6, d_v=5, causal=True),
    Shape(batch=1, heads=2, kv_heads=2, n=6, m=9, d=4, d_v=3, causal=True, masked=True),
    Shape(batch=1, heads=2, kv_heads=1, n=9, m=5, d=5, d_v=2, causal=True),
    Shape(batch=1, heads=4, kv_heads=2, n=5, m=11, d=3, d_v=4, values="large"),
    Shape(batch=1, heads=2, kv_heads=2, n=8, d=4, d_v=3, values="shifted", causal=True),
    Shape(batch=1, heads=2, kv_heads=1, n=6, m=8, d=4, d_v=2, values="tied", masked=True),
    Shape(batch=2, heads=1, kv_heads=1, n=5, d=3, d_v=3, values="near_tied", causal=True),
)


@st.composite
def attention_shapes(
    draw: Any,
    *,
    max_n: int = 24,
    max_d: int = 16,
    gqa: bool = True,
    cross: bool = True,
    masks: bool = True,
    causal: bool = True,
    values: bool = True,
    options: Callable[[Any, Shape], dict[str, Any]] | None = None,
) -> Shape:
    """Shapes for ``(q, k, v)``-style forms: GQA (H = 4 with H_kv ∈ {1, 2, 4}), m ≠ n, masks, causal,
    every value distribution, and the form's options drawn by ``options(draw, shape)``."""
    heads = draw(st.sampled_from([1, 2, 4]))
    kv_heads = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0])) if gqa else heads
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_n)) if cross and draw(st.booleans()) else None
    shape = Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=kv_heads,
        n=n,
        m=m,
        d=draw(st.integers(1, max_d)),
        d_v=draw(st.integers(1, 8)),
        causal=causal and draw(st.booleans()),
        masked=masks and draw(st.booleans()),
        values=draw(st.sampled_from(["normal", "normal", "large", "shifted", "tied", "near_tied"]))
        if values
        else "normal",
    )
    if options is not None:
        shape = shape.with_options(**options(draw, shape))
    return shape


def positive_scale(draw: Any, shape: Shape) -> dict[str, Any]:
    """Half of the draws pass an explicit ``scale`` (log-uniform in [0.05, 2])."""
    if draw(st.booleans()):
        return {"scale": float(np.exp(draw(st.floats(np.log(0.05), np.log(2.0)))))}
    return {}


def kv_heads_of(shape: Shape) -> int:
    if shape.kv_heads < 1 or shape.heads % shape.kv_heads:
        raise ValueError(f"kv_heads: expected a divisor of heads = {shape.heads}, got {shape.kv_heads}")
    return shape.kv_heads


# ---------------------------------------------------------------------------------------------
# values and samples


def qk_values(rng: np.random.Generator, shape: tuple[int, ...], values: str) -> np.ndarray:
    """Query/key entries for a value distribution (see :class:`attnlab.core.Shape`)."""
    x = rng.standard_normal(shape)
    if values == "large":
        return x * math.sqrt(10 ** rng.uniform(2.0, 3.0))  # logits scaled by 1e2 … 1e3
    if values == "shifted":
        return x + 8.0
    if values in ("tied", "near_tied") and len(shape) >= 2 and shape[-2] >= 2:
        x[..., 1::2, :] = x[..., 0 : 2 * (shape[-2] // 2) : 2, :]  # rows 2t and 2t + 1 are equal
        if values == "near_tied":
            x[..., 1::2, :] += 1e-9 * rng.standard_normal(x[..., 1::2, :].shape)
    return x


def value_values(rng: np.random.Generator, shape: tuple[int, ...], values: str, scale: float = 1.0) -> np.ndarray:
    v = scale * rng.standard_normal(shape)
    return v + 3.0 if values == "shifted" else v


def sample_mask(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """A random ``(n, m)`` mask keeping ~70 % of pairs, with query row ``n // 2`` fully masked when n > 2."""
    mask = rng.random((shape.n, shape.keys)) < 0.7
    if shape.n > 2:
        mask[shape.n // 2] = False
    return mask


def qkv(rng: np.random.Generator, shape: Shape, value_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b, h, hk = shape.batch, shape.heads, kv_heads_of(shape)
    q = qk_values(rng, (b, h, shape.n, shape.d), shape.values)
    k = qk_values(rng, (b, hk, shape.keys, shape.d), shape.values)
    if shape.values in ("tied", "near_tied"):
        q[..., ::3, :] = 0.0  # rows of exactly equal logits
    v = value_values(rng, (b, hk, shape.keys, shape.d_v), shape.values, value_scale)
    return q, k, v


def attention_sample(seed: int, shape: Shape, value_scale: float = 1.0) -> SampleInput:
    """``(q, k, v)`` with ``causal``, an optional mask and the shape's explicit options."""
    rng = np.random.default_rng(seed)
    kwargs: dict[str, Any] = {"causal": shape.causal, **shape.option_dict}
    args = qkv(rng, shape, value_scale)
    if shape.masked:
        kwargs["mask"] = sample_mask(rng, shape)
    return SampleInput(args, kwargs, shape.label())


def visible_of(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Full ``(..., n, m)`` visibility of an attention-style sample (computed independently)."""
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    return visibility(q.shape[-2], k.shape[-2], sample.kwargs.get("causal", False), sample.kwargs.get("mask"), lead)


def as_mask_sample(sample: SampleInput, q: np.ndarray, k: np.ndarray) -> SampleInput:
    """The same sample with ``causal``/``mask`` folded into one explicit boolean mask."""
    vis = visibility(
        q.shape[-2], k.shape[-2], sample.kwargs.get("causal", False), sample.kwargs.get("mask"), q.shape[:-2]
    )
    return sample.with_args(*sample.args, causal=False, mask=np.array(vis))


def mha_shape(shape: Shape) -> Shape:
    return replace(shape, kv_heads=shape.heads)


# ---------------------------------------------------------------------------------------------
# generic invariants (``op`` is the name of the operator in the reference module)


def is_causal(sample: SampleInput) -> bool:
    return bool(sample.kwargs.get("causal", False))


def has_gqa(q_index: int = 0, k_index: int = 1) -> Callable[[SampleInput], bool]:
    def applies(sample: SampleInput) -> bool:
        q, k = sample.args[q_index], sample.args[k_index]
        return q.ndim >= 3 and k.shape[-3] not in (q.shape[-3],)

    return applies


def longest(sample: SampleInput) -> int:
    return max((a.shape[-2] for a in sample.args if isinstance(a, np.ndarray) and a.ndim >= 2), default=0)


def causal_prefix(
    op: str,
    query_args: Sequence[int],
    key_args: Sequence[int],
    *,
    mutants: tuple[str, ...],
    force_causal: bool = True,
    applies: Callable[[SampleInput], bool] | None = None,
) -> Invariant:
    """G3: with causal visibility, output ``i`` does not change when inputs after ``i`` are perturbed.

    ``force_causal``: the check turns ``causal`` on; otherwise the operator is causal by construction
    (or only causal samples apply).
    """

    def check(ops: Any, sample: SampleInput) -> None:
        causal_sample = sample.with_args(*sample.args, causal=True) if force_causal else sample
        args = [np.array(a) if isinstance(a, np.ndarray) else a for a in causal_sample.args]
        n = args[query_args[0]].shape[-2]
        m = args[key_args[0]].shape[-2] if key_args else n
        cut = (n - 1) // 2
        base = causal_sample.call(getattr(ops, op))
        rng = np.random.default_rng(1)
        for i in query_args:
            args[i][..., cut + 1 :, :] += rng.standard_normal(args[i][..., cut + 1 :, :].shape)
        for i in key_args:
            start = max(0, cut + 1 + m - n)
            args[i][..., start:, :] += rng.standard_normal(args[i][..., start:, :].shape)
        perturbed = causal_sample.with_args(*args).call(getattr(ops, op))
        close("outputs at positions <= cut", perturbed[..., : cut + 1, :], base[..., : cut + 1, :])

    def default_applies(sample: SampleInput) -> bool:
        return sample.args[query_args[0]].shape[-2] >= 2 and (force_causal or is_causal(sample))

    return Invariant(
        "causal_prefix",
        "causal: output i is unchanged when inputs after i are perturbed",
        check,
        mutants,
        applies or default_applies,
    )


def key_permutation(op: str, key_args: Sequence[int], *, mutants: tuple[str, ...]) -> Invariant:
    """G4: jointly permuting keys, values and mask columns leaves the output unchanged."""

    def check(ops: Any, sample: SampleInput) -> None:
        q, k = sample.args[0], sample.args[key_args[0]]
        explicit = as_mask_sample(sample, q, k)
        perm = np.random.default_rng(2).permutation(k.shape[-2])
        args = list(explicit.args)
        for i in key_args:
            args[i] = args[i][..., perm, :]
        permuted = explicit.with_args(*args, mask=explicit.kwargs["mask"][..., perm])
        close("output after permuting keys/values", permuted.call(getattr(ops, op)), sample.call(getattr(ops, op)))

    return Invariant(
        "key_permutation",
        "jointly permuting keys and values (and mask columns) leaves the output unchanged",
        check,
        mutants,
        lambda s: s.args[key_args[0]].shape[-2] >= 2,
    )


def query_permutation(op: str, query_args: Sequence[int], key_arg: int = 1, *, mutants: tuple[str, ...]) -> Invariant:
    """G4: permuting queries (and mask rows) permutes the outputs."""

    def check(ops: Any, sample: SampleInput) -> None:
        q, k = sample.args[query_args[0]], sample.args[key_arg]
        explicit = as_mask_sample(sample, q, k)
        perm = np.random.default_rng(3).permutation(q.shape[-2])
        args = list(explicit.args)
        for i in query_args:
            args[i] = args[i][..., perm, :]
        permuted = explicit.with_args(*args, mask=explicit.kwargs["mask"][..., perm, :])
        close(
            "output after permuting queries",
            permuted.call(getattr(ops, op)),
            sample.call(getattr(ops, op))[..., perm, :],
        )

    return Invariant(
        "query_permutation",
        "permuting queries (and mask rows) permutes the outputs",
        check,
        mutants,
        lambda s: s.args[query_args[0]].shape[-2] >= 2,
    )


def gqa_equals_mha(op: str, kv_args: Sequence[int], *, mutants: tuple[str, ...], q_arg: int = 0) -> Invariant:
    """G6: GQA equals MHA with the KV heads repeated contiguously (``np.repeat`` on axis −3)."""

    def check(ops: Any, sample: SampleInput) -> None:
        q, k = sample.args[q_arg], sample.args[kv_args[0]]
        group = q.shape[-3] // k.shape[-3]
        args = list(sample.args)
        for i in kv_args:
            args[i] = np.repeat(args[i], group, axis=-3)
        close(
            "GQA vs MHA on repeated KV heads",
            sample.with_args(*args).call(getattr(ops, op)),
            sample.call(getattr(ops, op)),
        )

    return Invariant(
        "gqa_equals_mha",
        "GQA equals MHA with KV heads repeated contiguously",
        check,
        mutants,
        has_gqa(q_arg, kv_args[0]),
    )


def convex_hull(op: str, *, mutants: tuple[str, ...], value_arg: int = 2) -> Invariant:
    """G2: each output coordinate lies between the min and max of the visible values."""

    def check(ops: Any, sample: SampleInput) -> None:
        q, k, v = repeat_kv(*(np.asarray(sample.args[i]) for i in (0, 1, value_arg)))
        out = sample.call(getattr(ops, op))
        vis = visible_of(sample, q, k)[..., None]
        values = v[..., None, :, :]
        lo = np.min(np.where(vis, values, np.inf), axis=-2)
        hi = np.max(np.where(vis, values, -np.inf), axis=-2)
        has = np.any(vis, axis=-2)
        tol = 1e-12 * (1 + np.abs(v).max())
        inside = ~has | ((out >= lo - tol) & (out <= hi + tol))
        assert np.all(inside), f"output left the hull of the visible values at {np.argwhere(~inside)[0].tolist()}"
        assert np.all(out[np.broadcast_to(~has, out.shape)] == 0.0), "a row with no visible key is not zero"

    return Invariant(
        "convex_hull",
        "each output coordinate lies between the min and max visible value; empty rows are 0",
        check,
        mutants,
    )


def matches_brute_force(
    op: str, brute: Callable[..., np.ndarray], *, mutants: tuple[str, ...], max_n: int = 12, atol: float = 1e-9
) -> Invariant:
    """The vectorised reference equals its scalar loop on small inputs."""

    def check(ops: Any, sample: SampleInput) -> None:
        close("reference vs brute-force loop", sample.call(getattr(ops, op)), sample.call(brute), atol=atol)

    return Invariant(
        "matches_brute_force",
        "equals a plain scalar-loop implementation (written without the reference's helpers) on small inputs",
        check,
        mutants,
        lambda s: longest(s) <= max_n,
    )


# ---------------------------------------------------------------------------------------------
# generic mutants of ``(q, k, v, *, scale, causal, mask)`` operators


def _wrap(attr: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> dict[str, Callable[[Any], Any]]:
    return {attr: wrapper}


def top_left_causal(attr: str, key_arg: int = 1, query_arg: int = 0) -> Mutant:
    """``causal`` aligned top-left (key ``j`` visible iff ``j <= i``), PyTorch SDPA's ``is_causal``."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, causal: bool = False, mask: Any = None, **kwargs: Any) -> Any:
            if not causal:
                return original(*args, mask=mask, **kwargs)
            n, m = np.shape(args[query_arg])[-2], np.shape(args[key_arg])[-2]
            top_left = np.tril(np.ones((n, m), dtype=bool))
            return original(*args, causal=False, mask=top_left if mask is None else top_left & mask, **kwargs)

        return mutated

    return Mutant("top_left_causal", "causal visibility aligned top-left instead of bottom-right", _wrap(attr, wrapper))


def leaky_causal(attr: str, key_arg: int = 1, query_arg: int = 0) -> Mutant:
    """An off-by-one causal triangle: each query also sees the next key."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, causal: bool = False, mask: Any = None, **kwargs: Any) -> Any:
            if not causal:
                return original(*args, mask=mask, **kwargs)
            n, m = np.shape(args[query_arg])[-2], np.shape(args[key_arg])[-2]
            leak = np.tril(np.ones((n, m), dtype=bool), k=m - n + 1)
            return original(*args, causal=False, mask=leak if mask is None else leak & mask, **kwargs)

        return mutated

    return Mutant("leaky_causal", "causal triangle off by one: a query also sees the next key", _wrap(attr, wrapper))


def interleaved_gqa(attr: str, kv_args: Sequence[int], q_arg: int = 0) -> Mutant:
    """Query head ``h`` reads KV head ``h mod H_kv`` instead of ``h // G``."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, **kwargs: Any) -> Any:
            q, k = args[q_arg], args[kv_args[0]]
            if np.ndim(q) < 3 or np.shape(k)[-3] in (1, np.shape(q)[-3]):
                return original(*args, **kwargs)
            h, h_kv = np.shape(q)[-3], np.shape(k)[-3]
            heads = np.arange(h) % h_kv
            new = list(args)
            for i in kv_args:
                new[i] = np.take(np.asarray(args[i]), heads, axis=-3)
            return original(*new, **kwargs)

        return mutated

    return Mutant("interleaved_gqa", "GQA head map h mod H_kv instead of h // G", _wrap(attr, wrapper))


def drops_last_key(attr: str, key_args: Sequence[int]) -> Mutant:
    """The last key (a dropped partial tile) never contributes."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, mask: Any = None, **kwargs: Any) -> Any:
            m = np.shape(args[key_args[0]])[-2]
            if m < 2:
                return original(*args, mask=mask, **kwargs)
            n = np.shape(args[0])[-2]
            keep = np.ones((n, m), dtype=bool)
            keep[:, -1] = False
            return original(*args, mask=keep if mask is None else keep & mask, **kwargs)

        return mutated

    return Mutant("drops_last_key", "the last key never contributes (a dropped partial tile)", _wrap(attr, wrapper))


def wrong_default_scale(attr: str, factor: float = 2.0) -> Mutant:
    """Logits scaled by ``factor`` too much when no ``scale`` is given."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, scale: Any = None, **kwargs: Any) -> Any:
            d = np.shape(args[0])[-1]
            return original(*args, scale=(d**-0.5 if scale is None else scale) * factor, **kwargs)

        return mutated

    return Mutant("wrong_scale", f"logits multiplied by an extra factor {factor}", _wrap(attr, wrapper))


def ignores_mask(attr: str) -> Mutant:
    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, mask: Any = None, **kwargs: Any) -> Any:
            return original(*args, **kwargs)

        return mutated

    return Mutant("ignores_mask", "the boolean mask is ignored", _wrap(attr, wrapper))


def output_nudged(attr: str, row: int = -1, amount: float = 1e-6) -> Mutant:
    """One output row moved by ``amount`` (a lost term of that size)."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def mutated(*args: Any, **kwargs: Any) -> Any:
            out = np.array(original(*args, **kwargs), dtype=np.float64)
            if out.ndim >= 2 and out.shape[-2] >= 1:
                out[..., row, :] += amount
            return out

        return mutated

    return Mutant("output_nudged", f"the last output row moved by {amount:g}", _wrap(attr, wrapper))


def no_max_shift(softmax_attr: str = "masked_softmax") -> Mutant:
    """``masked_softmax`` without subtracting the row max (overflows on large logits)."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def unstable(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
            allowed = np.broadcast_to(allowed, x.shape)
            with np.errstate(over="ignore", invalid="ignore"):
                p = np.where(allowed, np.exp(np.where(allowed, x, 0.0)), 0.0)
                total = np.sum(p, axis=axis, keepdims=True)
                return p / np.where(total > 0.0, total, 1.0)

        return unstable

    return Mutant("no_max_shift", "softmax computed without subtracting the row max", {softmax_attr: make})


# ---------------------------------------------------------------------------------------------
# bad inputs


def bad_arrays(names: Sequence[str], sample: SampleInput) -> list[BadInput]:
    """For each array argument: 1-d, NaN, Inf, integer dtype and a string in its place."""
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


def too_large(label: str, sample: SampleInput, peaks: Mapping[int, float], match: str) -> BadInput:
    """Finite inputs too large for float64: argument ``i`` rescaled so that ``max |·|`` is ``peaks[i]``.
    The operator must reject them with a ``ValueError`` (an intermediate would overflow) and say which
    bound it hit, in ``match``."""
    args = list(sample.args)
    for index, peak in peaks.items():
        args[index] = np.asarray(args[index], dtype=np.float64) * (peak / np.max(np.abs(args[index])))
    return BadInput(label, tuple(args), sample.kwargs, ValueError, match)


def bad_weights(name: str, sample: SampleInput, fields: Mapping[str, str]) -> list[BadInput]:
    """For each array field of the weights dataclass argument ``name`` (``fields`` maps the field to the
    regex its error must match): a NaN entry, an integer dtype, and a missing last row."""
    index = next(i for i, a in enumerate(sample.args) if dataclasses.is_dataclass(a))
    weights = sample.args[index]
    cases = []
    for field, match in fields.items():
        value = getattr(weights, field)

        def swap(new: Any, field: str = field) -> tuple[Any, ...]:
            args = list(sample.args)
            args[index] = dataclasses.replace(weights, **{field: new})
            return tuple(args)

        nan = np.array(value, dtype=np.float64)
        nan.flat[0] = np.nan
        cases += [
            BadInput(f"{name}-{field}-nan", swap(nan), sample.kwargs, ValueError, rf"{match}.*NaN"),
            BadInput(
                f"{name}-{field}-int", swap(np.ones(value.shape, dtype=np.int64)), sample.kwargs, TypeError, match
            ),
            BadInput(f"{name}-{field}-short", swap(value[:-1]), sample.kwargs, ValueError, rf"{match}.*shape"),
        ]
    return cases


def bad_options(sample: SampleInput, options: Sequence[str]) -> list[BadInput]:
    """Bad ``scale``, ``causal`` and ``mask`` options, for those the form takes."""
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


def bad_attention_inputs(sample: SampleInput, names: Sequence[str] = ("q", "k", "v")) -> list[BadInput]:
    """Bad arrays and options of a ``(q, k, v, *, scale, causal, mask)`` call, plus shape mismatches."""
    q, k, v = sample.args[:3]
    _, kn, vn = names
    return [
        *bad_arrays(names, sample),
        *bad_options(sample, ("scale", "causal", "mask")),
        BadInput(
            f"{kn}-head-dim",
            (q, k[..., :-1] if k.shape[-1] > 1 else np.concatenate([k, k], -1), v),
            sample.kwargs,
            ValueError,
            rf"\b{kn}\b.*d_k",
        ),
        BadInput(
            f"{kn}{vn}-length-mismatch",
            (q, k, np.concatenate([v, v], -2)),
            sample.kwargs,
            ValueError,
            rf"\b{kn}\b.*\b{vn}\b",
        ),
        BadInput(
            "kv-heads-not-dividing",
            (q, np.concatenate([k] * 3, -3), np.concatenate([v] * 3, -3)),
            sample.kwargs,
            ValueError,
            rf"\b{kn}\b.*heads",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# FLOP conventions

SOFTMAX_FLOPS = (
    "two GEMMs per head, 4·B·H·n·m·d with d = (d_k + d_v)/2, halved when causal (FlashAttention's convention)"
)


def softmax_flops(sample: SampleInput, *, value_arg: int = 2, maps: int = 1) -> float:
    q, k, v = sample.args[0], sample.args[1], sample.args[value_arg]
    heads = q.shape[-3] if q.ndim >= 3 else 1  # GQA: the query heads do the work
    lead = math.prod(np.broadcast_shapes(q.shape[:-3], k.shape[:-3])) * heads
    n, m = q.shape[-2], k.shape[-2]
    d = (q.shape[-1] + v.shape[-1]) / 2
    return maps * 4.0 * lead * n * m * d * (0.5 if sample.kwargs.get("causal") else 1.0)


# ---------------------------------------------------------------------------------------------
# diagnoses of ``(q, k, v, *, scale, causal, mask)`` implementations (tried by ``attnlab check``)


def attention_diagnoses(reference: Callable[..., np.ndarray], kv_args: Sequence[int] = (1, 2)) -> tuple[Diagnosis, ...]:
    """Known ways a ``(q, k, v)``-style kernel goes wrong, each as the output it would then give."""

    def top_left(sample: SampleInput) -> np.ndarray | None:
        q, k = sample.args[0], sample.args[kv_args[0]]
        n, m = q.shape[-2], k.shape[-2]
        if not sample.kwargs.get("causal") or n == m:
            return None
        tri = np.tril(np.ones((n, m), dtype=bool))
        mask = sample.kwargs.get("mask")
        return sample.with_args(*sample.args, causal=False, mask=tri if mask is None else tri & mask).call(reference)

    def no_causal(sample: SampleInput) -> np.ndarray | None:
        if not sample.kwargs.get("causal"):
            return None
        return sample.with_args(*sample.args, causal=False).call(reference)

    def no_mask(sample: SampleInput) -> np.ndarray | None:
        if sample.kwargs.get("mask") is None:
            return None
        return sample.without("mask").call(reference)

    def scale_as(alternative: Callable[[int], float], label: str) -> Diagnosis:
        def expect(sample: SampleInput) -> np.ndarray | None:
            d = sample.args[0].shape[-1]
            used = sample.kwargs.get("scale") or d**-0.5
            alt = alternative(d)
            if abs(alt - used) <= 1e-12 * used:
                return None
            return sample.with_args(*sample.args, scale=alt).call(reference)

        return Diagnosis(f"off by the scale factor: matches scale = {label} instead of the sample's scale", expect)

    def ignores_given_scale(sample: SampleInput) -> np.ndarray | None:
        if "scale" not in sample.kwargs:
            return None
        return sample.without("scale").call(reference)

    def interleaved(sample: SampleInput) -> np.ndarray | None:
        q, k = sample.args[0], sample.args[kv_args[0]]
        if q.ndim < 3 or k.shape[-3] in (1, q.shape[-3]):
            return None
        heads = np.arange(q.shape[-3]) % k.shape[-3]
        args = list(sample.args)
        for i in kv_args:
            args[i] = np.take(args[i], heads, axis=-3)
        return sample.with_args(*args).call(reference)

    return (
        Diagnosis(
            "matches top-left causal alignment (PyTorch's is_causal); attnlab's causal is bottom-right: "
            "key j is visible to query i iff j <= i + m - n",
            top_left,
        ),
        Diagnosis("ignores causal: matches attention without the causal mask", no_causal),
        Diagnosis("ignores the boolean mask", no_mask),
        Diagnosis("ignores the explicit scale: matches the default d_k ** -0.5", ignores_given_scale),
        scale_as(lambda d: 1.0, "1"),
        scale_as(lambda d: 1.0 / d, "1/d_k"),
        scale_as(lambda d: d**0.5, "sqrt(d_k)"),
        Diagnosis(
            "interleaved GQA head map: query head h reads KV head h mod H_kv instead of h // (H / H_kv)", interleaved
        ),
    )
