"""Declaration of EcoFormer attention (binary codes from kernelised hashing; linear time)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.ecoformer as module
from attnlab.core import BadInput, BenchCase, Diagnosis, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.ecoformer import ecoformer_attention

OP = "ecoformer_attention"
ARRAYS = ("qk", "v", "anchors", "hash_weights", "kernel_mean")
#: Shape options that size the sample's hash (consumed by :func:`sample`, never passed to the operator).
SIZES = ("bits", "anchors")


def oracle(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """The quadratic form in torch: normalise, Gaussian kernel, centre, hash, sign, weighted average."""
    import torch

    from attnlab.forms import _torch as T

    qk, v, anchors, hash_weights, kernel_mean = (T.tensor(a) for a in (qk, v, anchors, hash_weights, kernel_mean))
    u = qk / torch.linalg.vector_norm(qk, dim=-1, keepdim=True)
    dist = ((u[..., :, None, :] - anchors[..., None, :, :]) ** 2).sum(-1)
    width = dist.mean(dim=(-2, -1), keepdim=True) if bandwidth is None else bandwidth
    features = torch.exp(-dist / (2 * width)) - kernel_mean[..., None, :]
    projected = features @ hash_weights.transpose(-1, -2)
    codes = torch.where(projected >= 0, 1.0, -1.0).to(v.dtype)
    bits = codes.shape[-1]
    weights = codes @ codes.transpose(-1, -2) + (bits + 1 if offset is None else offset)
    n = codes.shape[-2]
    allowed = T.visibility(n, n, causal=causal, mask=mask, device=v.device)
    weights = weights.masked_fill(~allowed.expand(weights.shape), 0.0)
    total = weights.sum(-1, keepdim=True)
    return torch.where(total > 0, (weights @ v) / torch.where(total > 0, total, torch.ones_like(total)), 0.0)


def brute_force(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops over every (batch, head) slice, from the definition."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (qk, v, anchors, hash_weights)]
    mean = np.asarray(kernel_mean, dtype=np.float64)[..., None, :]
    lead = np.broadcast_shapes(*(a.shape[:-2] for a in [*arrays, mean]))
    x_all, v_all, a_all, w_all, mu_all = (np.broadcast_to(a, (*lead, *a.shape[-2:])) for a in [*arrays, mean])
    n, bits, anchor_count = x_all.shape[-2], w_all.shape[-2], a_all.shape[-2]
    c = bits + 1.0 if offset is None else float(offset)
    vis = sh.visibility(n, n, causal, mask, lead)
    out = np.zeros((*lead, n, v_all.shape[-1]))
    for idx in np.ndindex(*lead):
        x, a, w, mu = x_all[idx], a_all[idx], w_all[idx], mu_all[idx][0]
        units = [
            [x[i, t] / math.sqrt(sum(x[i, s] ** 2 for s in range(x.shape[1]))) for t in range(x.shape[1])]
            for i in range(n)
        ]
        dist = [
            [sum((units[i][t] - a[r, t]) ** 2 for t in range(x.shape[1])) for r in range(anchor_count)]
            for i in range(n)
        ]
        width = sum(map(sum, dist)) / (n * anchor_count) if bandwidth is None else bandwidth
        kappa = [[math.exp(-dist[i][r] / (2 * width)) - mu[r] for r in range(anchor_count)] for i in range(n)]
        codes = [
            [1 if sum(w[k, r] * kappa[i][r] for r in range(anchor_count)) >= 0 else -1 for k in range(bits)]
            for i in range(n)
        ]
        for i in range(n):
            weights = {j: c + sum(codes[i][k] * codes[j][k] for k in range(bits)) for j in range(n) if vis[idx][i, j]}
            total = sum(weights.values())
            if total == 0:
                continue
            for col in range(v_all.shape[-1]):
                out[idx][i, col] = sum(wt * v_all[idx][j, col] for j, wt in weights.items()) / total
    return out


# ---------------------------------------------------------------------------------------------
# samples


def _kernel_mean(qk: np.ndarray, anchors: np.ndarray, bandwidth: float | None) -> np.ndarray:
    """The buffered kernel mean as the released code records it: the mean kernel feature over tokens and batch."""
    u = qk / np.linalg.norm(qk, axis=-1, keepdims=True)
    dist = np.sum((u[..., :, None, :] - anchors[..., None, :, :]) ** 2, axis=-1)
    width = dist.mean(axis=(-2, -1), keepdims=True) if bandwidth is None else bandwidth
    return np.exp(-dist / (2 * width)).mean(axis=(0, -2))


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(qk, v, anchors, hash_weights, kernel_mean)`` for ``B × H`` slices; ``bits`` and ``anchors`` size the
    hash (defaults 6 and 5). Beyond ``normal`` values the last hash row is 0, so that bit's projection is
    exactly 0 for every token (``sign(0) = +1`` decides it)."""
    rng = np.random.default_rng(seed)
    options = shape.option_dict
    bits, count = int(options.pop("bits", 6)), int(options.pop("anchors", 5))
    lead = (shape.batch, shape.heads)
    qk = sh.qk_values(rng, (*lead, shape.n, shape.d), shape.values)
    v = sh.value_values(rng, (*lead, shape.n, shape.d_v), shape.values)
    anchors = rng.standard_normal((shape.heads, count, shape.d))
    # directions with radii in [0.5, 1.5): never all on the unit sphere with the tokens (zero bandwidth)
    anchors *= rng.uniform(0.5, 1.5, size=(shape.heads, count, 1)) / np.linalg.norm(anchors, axis=-1, keepdims=True)
    hash_weights = rng.standard_normal((shape.heads, bits, count))
    if shape.values != "normal" and bits >= 2:
        hash_weights[:, -1, :] = 0.0
    kernel_mean = _kernel_mean(qk, anchors, options.get("bandwidth"))
    kwargs: dict[str, Any] = {"causal": shape.causal, **options}
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, replace(shape, m=None))
    return SampleInput((qk, v, anchors, hash_weights, kernel_mean), kwargs, shape.label())


def adapt(shape: Shape) -> Shape:
    """Self-attention only (``Q = K``, so no GQA and ``m = n``); causal shapes get a fixed bandwidth."""
    adapted = replace(shape, kv_heads=shape.heads, m=None)
    sizes: dict[str, Any] = {"bits": shape.d + 3, "anchors": shape.d + 1}
    if shape.causal:
        sizes["bandwidth"] = 0.8
    return adapted.with_options(**{**sizes, **shape.option_dict})


@st.composite
def shapes(draw: Any) -> Shape:
    heads = draw(st.sampled_from([1, 2, 3]))
    causal = draw(st.booleans())
    bits = draw(st.integers(1, 12))
    options: dict[str, Any] = {"bits": bits, "anchors": draw(st.integers(1, 8))}
    if causal or draw(st.booleans()):
        options["bandwidth"] = draw(st.floats(0.05, 4.0))
    if draw(st.booleans()):
        options["offset"] = bits + draw(st.floats(0.01, 3.0))
    return Shape(
        batch=draw(st.integers(1, 2)),
        heads=heads,
        kv_heads=heads,
        n=draw(st.integers(1, 20)),
        d=draw(st.integers(1, 10)),
        d_v=draw(st.integers(1, 6)),
        causal=causal,
        masked=draw(st.booleans()),
        values=draw(st.sampled_from(["normal", "normal", "large", "shifted", "tied", "near_tied"])),
        options=tuple(sorted(options.items())),
    )


# ---------------------------------------------------------------------------------------------
# invariants


def _unmasked(sample: SampleInput) -> bool:
    return sample.kwargs.get("mask") is None


def _linear_equals_quadratic(ops: Any, sample: SampleInput) -> None:
    kwargs = {k: val for k, val in sample.kwargs.items() if k != "mask"}
    sh.close(
        "linear-time vs quadratic form",
        ops.ecoformer_attention_linear(*sample.args, **kwargs),
        sample.call(ops.ecoformer_attention),
    )


def _code_distance(ops: Any, sample: SampleInput) -> None:
    qk, v, anchors, hash_weights, kernel_mean = sample.args
    codes = ops.binary_codes(qk, anchors, hash_weights, kernel_mean, bandwidth=sample.kwargs.get("bandwidth"))
    assert np.all(np.abs(codes) == 1.0), f"a code entry is not ±1: {np.unique(codes).tolist()}"
    bits = codes.shape[-1]
    distance = np.sum(codes[..., :, None, :] != codes[..., None, :, :], axis=-1)
    inner = codes @ np.swapaxes(codes, -1, -2)
    assert np.array_equal(inner, bits - 2 * distance), "h_i·h_j != b − 2·(number of differing bits)"
    offset = sample.kwargs.get("offset")
    c = bits + 1.0 if offset is None else offset
    weights = np.where(
        sh.visibility(qk.shape[-2], qk.shape[-2], sample.kwargs.get("causal", False), sample.kwargs.get("mask")),
        bits + c - 2.0 * distance,
        0.0,
    )
    total = weights.sum(-1, keepdims=True)
    want = np.where(total > 0, (weights @ v) / np.where(total > 0, total, 1.0), 0.0)
    sh.close("output from the code distances", sample.call(ops.ecoformer_attention), want)


def _positive_rescaling(ops: Any, sample: SampleInput) -> None:
    qk = sample.args[0]
    # powers of two rescale exactly, so the normalised tokens (and every code bit) are bit-identical
    factors = 2.0 ** np.random.default_rng(6).integers(-6, 7, size=(*qk.shape[:-1], 1))
    scaled = sample.with_args(qk * factors, *sample.args[1:])
    sh.close(
        "output after qk_i <- 2^k_i qk_i", scaled.call(ops.ecoformer_attention), sample.call(ops.ecoformer_attention)
    )


def _token_permutation(ops: Any, sample: SampleInput) -> None:
    qk, v = sample.args[:2]
    explicit = sh.as_mask_sample(sample, qk, qk)
    perm = np.random.default_rng(2).permutation(qk.shape[-2])
    mask = explicit.kwargs["mask"][..., perm, :][..., perm]
    permuted = explicit.with_args(qk[..., perm, :], v[..., perm, :], *sample.args[2:], mask=mask)
    sh.close(
        "output after permuting tokens",
        permuted.call(ops.ecoformer_attention),
        sample.call(ops.ecoformer_attention)[..., perm, :],
    )


def _weights_positive(ops: Any, sample: SampleInput) -> None:
    qk = sample.args[0]
    n = qk.shape[-2]
    identity = np.broadcast_to(np.eye(n), (*qk.shape[:-2], n, n))
    weights = ops.ecoformer_attention(qk, identity, *sample.args[2:], **sample.kwargs)  # W · I = W
    visible = np.broadcast_to(
        sh.visibility(n, n, sample.kwargs.get("causal", False), sample.kwargs.get("mask")), weights.shape
    )
    assert np.all(weights[visible] > 0.0), "a visible key has a weight <= 0"
    assert np.all(weights[~visible] == 0.0), "a hidden key has a non-zero weight"
    sh.close("row sums", weights.sum(-1), np.any(visible, axis=-1).astype(float))


def _slice_by_slice(ops: Any, sample: SampleInput) -> None:
    qk, v, anchors, hash_weights, kernel_mean = sample.args
    kw = sample.kwargs
    batch, heads, n = qk.shape[0], qk.shape[1], qk.shape[-2]
    # a different mask for every (batch, head) slice, so that each slice must read its own
    own = np.random.default_rng(4).random((batch, heads, n, n)) < 0.8
    mask = own & sh.visibility(n, n, kw.get("causal", False), kw.get("mask"), (batch, heads))
    masked = {**kw, "causal": False, "mask": mask}
    unmasked = {key: val for key, val in kw.items() if key != "mask"}
    whole = ops.ecoformer_attention(*sample.args, **masked)
    whole_linear = ops.ecoformer_attention_linear(*sample.args, **unmasked)
    for b in range(batch):
        got = ops.ecoformer_attention(qk[b], v[b], anchors, hash_weights, kernel_mean, **{**masked, "mask": mask[b]})
        sh.close(f"batch {b} alone as (H, n, d) arrays", got, whole[b])
        for h in range(heads):
            one = (qk[b, h], v[b, h], anchors[h], hash_weights[h], kernel_mean[h])
            got = ops.ecoformer_attention(*one, **{**masked, "mask": mask[b, h]})
            sh.close(f"slice ({b}, {h}) alone as 2-d arrays (kernel_mean (R,))", got, whole[b, h])
            got = ops.ecoformer_attention_linear(*one, **unmasked)
            sh.close(f"linear form, slice ({b}, {h}) alone as 2-d arrays", got, whole_linear[b, h])


# ---------------------------------------------------------------------------------------------
# mutants


def _exclusive_prefix(original: Any) -> Any:
    def mutated(x: np.ndarray, causal: bool) -> np.ndarray:
        full = original(x, causal)
        return full - x if causal else full

    return mutated


def _offset_only_below(original: Any) -> Any:
    def mutated(codes: np.ndarray, v: np.ndarray, offset: float, causal: bool) -> np.ndarray:
        n = codes.shape[-2]
        visible = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
        inner = visible * (codes @ np.swapaxes(codes, -1, -2))
        # the offset enters the key counts of the denominator but not the value sums of the numerator
        return (inner @ v) / np.sum(inner + offset * visible, axis=-1, keepdims=True)

    return mutated


def _bandwidth_from_prefix(original: Any) -> Any:
    def mutated(dist: np.ndarray) -> np.ndarray:
        return original(dist[..., : (dist.shape[-2] + 1) // 2, :])

    return mutated


def _bandwidth_per_token(original: Any) -> Any:
    def mutated(dist: np.ndarray) -> np.ndarray:
        return np.mean(dist, axis=-1, keepdims=True)

    return mutated


def _bandwidth_over_batch(original: Any) -> Any:
    def mutated(dist: np.ndarray) -> np.ndarray:
        return np.mean(dist, keepdims=True)

    return mutated


def _not_centred(original: Any) -> Any:
    def mutated(u: np.ndarray, anchors: np.ndarray, kernel_mean: np.ndarray, bandwidth: float | None) -> np.ndarray:
        return original(u, anchors, np.zeros_like(kernel_mean), bandwidth)

    return mutated


MUTANTS = (
    Mutant(
        "sign_zero_is_zero",
        "codes by np.sign: a projection of exactly 0 gives a 0 bit",
        {"sign_code": lambda original: np.sign},
    ),
    Mutant("no_unit_rows", "the shared projection is not ℓ2-normalised", {"unit_rows": lambda original: lambda x: x}),
    Mutant("prefix_excludes_self", "causal prefix sums stop at j < i", {"running_sums": _exclusive_prefix}),
    Mutant(
        "linear_offset_only_below",
        "the linear form keeps the offset in the denominator only",
        {"aggregate_linear": _offset_only_below},
    ),
    Mutant(
        "zero_offset",
        "similarity h_i·h_j without the offset (negative weights)",
        {"default_offset": lambda original: lambda bits: 0.0},
    ),
    Mutant(
        "bandwidth_from_prefix",
        "the bandwidth averages only the first half of the tokens",
        {"kernel_bandwidth": _bandwidth_from_prefix},
    ),
    Mutant(
        "bandwidth_per_token",
        "one bandwidth per token (mean over anchors only)",
        {"kernel_bandwidth": _bandwidth_per_token},
    ),
    Mutant(
        "bandwidth_over_batch",
        "one bandwidth pooled over every batch and head slice",
        {"kernel_bandwidth": _bandwidth_over_batch},
    ),
    Mutant("kernel_not_centred", "kernel features not centred by the buffered mean", {"kernel_features": _not_centred}),
    sh.leaky_causal(OP, key_arg=0, query_arg=0),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
)


def _has_bandwidth(sample: SampleInput) -> bool:
    return "bandwidth" in sample.kwargs and sample.args[0].shape[-2] >= 2


INVARIANTS = (
    Invariant(
        "linear_equals_quadratic",
        "the linear-time evaluation (prefix sums when causal) equals the quadratic binary-code form",
        _linear_equals_quadratic,
        ("prefix_excludes_self", "linear_offset_only_below"),
        _unmasked,
    ),
    Invariant(
        "code_distance",
        "codes are ±1 with h_i·h_j = b − 2·(differing bits), and the output is the average weighted by "
        "c + b − 2·(code distance)",
        _code_distance,
        ("sign_zero_is_zero",),
    ),
    Invariant(
        "positive_rescaling",
        "rescaling any token of qk by a positive factor leaves the output unchanged (ℓ2 normalisation)",
        _positive_rescaling,
        ("no_unit_rows",),
    ),
    Invariant(
        "token_permutation",
        "permuting tokens (qk, v, mask rows and columns) permutes the outputs: the bandwidth is a "
        "permutation-invariant mean",
        _token_permutation,
        ("bandwidth_from_prefix",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "weights_positive",
        "the weights (the output for V = I) are > 0 on visible keys, 0 elsewhere, and rows sum to 1",
        _weights_positive,
        ("zero_offset",),
    ),
    Invariant(
        "slice_by_slice",
        "each (batch, head) slice computes alone: one batch element as (H, n, d) arrays and one slice as 2-d "
        "arrays (kernel_mean (R,)) give that slice of the batched output, with a different mask per slice, "
        "in both the quadratic and the linear-time form",
        _slice_by_slice,
        ("bandwidth_over_batch",),
    ),
    sh.convex_hull(OP, mutants=("zero_offset",), value_arg=1),
    sh.causal_prefix(OP, [0], [1], mutants=("leaky_causal",), applies=_has_bandwidth),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("sign_zero_is_zero", "bandwidth_per_token", "kernel_not_centred", "ignores_mask", "output_nudged"),
    ),
)


# ---------------------------------------------------------------------------------------------
# bad inputs, FLOPs, diagnoses


def bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3, options=(("anchors", 3), ("bits", 4))))
    qk, v, anchors, hash_weights, kernel_mean = base.args
    kw = base.kwargs
    zero_row = qk.copy()
    zero_row[0, 1, 2] = 0.0
    # every token along e_0 and every anchor at e_0: all squared distances, so the default bandwidth, are 0
    on_anchor = np.zeros_like(qk)
    on_anchor[..., 0] = 2.0
    anchor_at_token = np.zeros_like(anchors)
    anchor_at_token[..., 0] = 1.0
    return [
        *sh.bad_arrays(ARRAYS[:4], base),
        *sh.bad_options(base, ("causal", "mask")),
        BadInput(
            "anchors-dim", (qk, v, anchors[..., :-1], hash_weights, kernel_mean), kw, ValueError, r"\banchors\b.*qk"
        ),
        BadInput(
            "hash-weights-anchor-count",
            (qk, v, anchors, hash_weights[..., :-1], kernel_mean),
            kw,
            ValueError,
            r"\bhash_weights\b.*anchors",
        ),
        BadInput(
            "kernel-mean-length",
            (qk, v, anchors, hash_weights, kernel_mean[..., :-1]),
            kw,
            ValueError,
            r"\bkernel_mean\b",
        ),
        BadInput(
            "kernel-mean-int",
            (qk, v, anchors, hash_weights, kernel_mean.astype(int)),
            kw,
            TypeError,
            r"\bkernel_mean\b.*dtype",
        ),
        BadInput(
            "v-length", (qk, v[..., :-1, :], anchors, hash_weights, kernel_mean), kw, ValueError, r"\bqk\b.*\bv\b"
        ),
        BadInput(
            "anchors-heads",
            (qk, v, np.concatenate([anchors] * 3, 0), hash_weights, kernel_mean),
            kw,
            ValueError,
            r"\banchors\b",
        ),
        BadInput("qk-zero-token", (zero_row, *base.args[1:]), kw, ValueError, r"\bqk\b.*zero"),
        BadInput("offset-below-bits", base.args, {**kw, "offset": 2.0}, ValueError, r"\boffset\b.*b = 4"),
        BadInput("offset-equal-bits", base.args, {**kw, "offset": 4.0}, ValueError, r"\boffset\b"),
        BadInput("offset-string", base.args, {**kw, "offset": "b+1"}, TypeError, r"\boffset\b"),
        # anchored at the start: the message must come from the bandwidth check, not from the zero-width kernel
        BadInput("bandwidth-zero", base.args, {**kw, "bandwidth": 0.0}, ValueError, r"^bandwidth: .*positive finite"),
        BadInput("bandwidth-negative", base.args, {**kw, "bandwidth": -1.0}, ValueError, r"^bandwidth: .*positive"),
        BadInput("bandwidth-inf", base.args, {**kw, "bandwidth": np.inf}, ValueError, r"^bandwidth: .*finite"),
        BadInput(
            "tokens-on-the-anchors",
            (on_anchor, v, anchor_at_token, hash_weights, kernel_mean),
            kw,
            ValueError,
            r"\bqk/anchors\b.*bandwidth",
        ),
        BadInput("v-heads", (qk, np.concatenate([v] * 3, 1)[:, :3], *base.args[2:]), kw, ValueError, r"\bqk\b.*\bv\b"),
        BadInput(
            "hash-weights-heads",
            (qk, v, anchors, np.concatenate([hash_weights] * 3, 0)[:3], kernel_mean),
            kw,
            ValueError,
            r"\bhash_weights\b",
        ),
        BadInput(
            "kernel-mean-heads",
            (qk, v, anchors, hash_weights, np.concatenate([kernel_mean] * 3, 0)[:3]),
            kw,
            ValueError,
            r"^kernel_mean: .*broadcast",
        ),
        BadInput("bandwidth-string", base.args, {**kw, "bandwidth": "mean"}, TypeError, r"\bbandwidth\b"),
        BadInput("causal-without-bandwidth", base.args, {**kw, "causal": True}, ValueError, r"\bcausal\b.*bandwidth"),
    ]


FLOP_CONVENTION = (
    "linear-time form: kernel features 3·n·R·d, hash 2·n·R·b, then 2·n·b·d_v for Hᵀ V and 2·n·b·d_v for H(Hᵀ V) "
    "per (batch, head) slice; the quadratic form (masks) would be 2·n²·(b + d_v)"
)


def flops(sample: SampleInput) -> float:
    qk, v, anchors, hash_weights, _ = sample.args
    slices = math.prod(np.broadcast_shapes(qk.shape[:-2], v.shape[:-2]))
    n, d, d_v = qk.shape[-2], qk.shape[-1], v.shape[-1]
    r, bits = anchors.shape[-2], hash_weights.shape[-2]
    return float(slices * (3 * n * r * d + 2 * n * r * bits + 4 * n * bits * d_v))


def _without_mask(sample: SampleInput) -> Any:
    return None if sample.kwargs.get("mask") is None else sample.without("mask").call(ecoformer_attention)


def _offset_b(sample: SampleInput) -> Any:
    if sample.kwargs.get("offset") is not None:
        return None
    bits = sample.args[3].shape[-2]
    return sample.with_args(*sample.args, offset=bits + 1e-9).call(ecoformer_attention)


FORM = Form(
    name="ecoformer",
    order=12,
    title="EcoFormer: binary codes from kernelised hashing, linear-time attention",
    equation=(
        r"h_i = \operatorname{sign}\!\big(A(\kappa(u_i) - \mu)\big),\ u_i = x_i/\lVert x_i\rVert,\quad "
        r"o_i = \frac{\sum_j (h_i^\top h_j + c)\,v_j}{\sum_j (h_i^\top h_j + c)},\ c = b + 1"
    ),
    reference=ecoformer_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("liu2022ecoformer"),
        "abstract; operator as in the authors' code (ziplab/EcoFormer@6ff7155)",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator is the released code's (ziplab/EcoFormer@6ff7155, pvt/performer.py and pvt/hashing/ksh.py): "
        "Q = K shared and ℓ2-normalised; kernel bandwidth = mean squared token–anchor distance of the current "
        "sequence (per batch and head), so codes are not token-local; offset c = b + 1 (a code choice giving "
        "strictly positive weights; the paper's abstract states the similarity only via the code distance). "
        "sign(0) = +1 (the code's straight-through sign gives 0 there). Anchors, kernel mean and hash weights are "
        "inputs (buffers set once by the code's hashing step, which is not part of the operator). causal is an "
        "extension (prefix sums) and needs a fixed bandwidth; boolean masks use the quadratic form."
    ),
    array_args=ARRAYS,
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=2, n=9, d=5, d_v=3, options=(("anchors", 4), ("bits", 1), ("offset", 1.5))),
        Shape(
            batch=2,
            heads=1,
            kv_heads=1,
            n=11,
            d=6,
            d_v=2,
            masked=True,
            options=(("anchors", 1), ("bandwidth", 0.3), ("bits", 7)),
        ),
        Shape(
            batch=1,
            heads=3,
            kv_heads=3,
            n=10,
            d=3,
            d_v=4,
            causal=True,
            values="tied",
            options=(("anchors", 6), ("bandwidth", 2.5), ("bits", 9), ("offset", 11.0)),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention=FLOP_CONVENTION,
    bench=(
        BenchCase(
            Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, options=(("anchors", 8), ("bits", 8))), ("tiny",)
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, options=(("anchors", 20), ("bits", 16))),
            ("quick",),
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64, options=(("anchors", 20), ("bits", 16))),
            ("full",),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=8,
                kv_heads=8,
                n=2048,
                d=64,
                d_v=64,
                causal=True,
                options=(("anchors", 20), ("bandwidth", 0.5), ("bits", 16)),
            ),
            ("full",),
        ),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=8192, d=64, d_v=64, options=(("anchors", 20), ("bits", 16))),
            ("cuda",),
        ),
    ),
    diagnoses=(
        Diagnosis("ignores the boolean mask", _without_mask),
        Diagnosis("uses the similarity offset b (the code length) instead of b + 1", _offset_b),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.ecoformer:ecoformer_attention",
            "numpy",
            tiles=(64,),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.ecoformer:ecoformer_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
            tiles=(64,),
        ),
    ),
)
