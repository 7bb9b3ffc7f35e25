"""Declaration of Gaussian Adaptive Attention (GAAM, Ioannides et al. 2024): per-head Gaussian feature weights."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.gaam as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.gaam import DEFAULT_EPS, gaussian_adaptive_attention

OP = "gaussian_adaptive_attention"
PAD = -2.5  # not 0: a zero pad would hide an output that re-weights it (0·w = 0)


def _chunks(length: int, heads: int) -> list[range]:
    size = length // heads
    return [range(h * size, length if h == heads - 1 else (h + 1) * size) for h in range(heads)]


def brute_force(
    x: Any,
    mean_offsets: Any,
    scales: Any,
    *,
    axis: int = -1,
    eps: float = DEFAULT_EPS,
    padding_value: float | None = None,
    combine: str = "product",
) -> np.ndarray:
    """Scalar loops over every line along ``axis`` and every head chunk of it."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    delta, c = np.asarray(mean_offsets, dtype=float), np.asarray(scales, dtype=float)
    out = np.array(x)
    for line in np.ndindex(*x.shape[:-1]):
        for h, cols in enumerate(_chunks(x.shape[-1], delta.shape[0])):
            vals = [x[line][i] for i in cols]
            kept = [0.0 if padding_value is not None and v == padding_value else v for v in vals]
            mean = sum(kept) / len(kept)
            sigma = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1) + eps)
            raw = []
            for v in vals:
                terms = [
                    math.exp(-(((v - mean - delta[h, g]) / sigma) ** 2) / (2 * c[h, g] ** 2))
                    / math.sqrt(2 * math.pi * c[h, g] ** 2)
                    for g in range(delta.shape[1])
                ]
                raw.append(math.prod(terms) if combine == "product" else sum(terms) / len(terms))
            total = max(sum(raw), eps)
            for i, v, w in zip(cols, vals, raw):
                if padding_value is None or v != padding_value:
                    out[line][i] = v * w / total
    return np.moveaxis(out, -1, axis)


def oracle(
    x: Any,
    mean_offsets: Any,
    scales: Any,
    *,
    axis: int = -1,
    eps: float = DEFAULT_EPS,
    padding_value: float | None = None,
    combine: str = "product",
) -> Any:
    """One head at a time in torch, as the released module loops over its heads."""
    import torch

    from attnlab.forms import _torch as T

    x = T.tensor(x)
    delta, c = T.tensor(mean_offsets, x), T.tensor(scales, x)
    outputs = []
    for h, cols in enumerate(_chunks(x.shape[axis], delta.shape[0])):
        chunk = x.narrow(axis, cols.start, len(cols))
        keep = None if padding_value is None else chunk != padding_value
        values = chunk if keep is None else torch.where(keep, chunk, torch.zeros_like(chunk))
        mean = values.mean(dim=axis, keepdim=True)
        var = values.var(dim=axis, keepdim=True) + eps
        parts = [
            torch.exp(-(((chunk - (mean + delta[h, g])) / torch.sqrt(var)) ** 2) / (2 * c[h, g] ** 2))
            / torch.sqrt(2 * math.pi * c[h, g] ** 2)
            for g in range(delta.shape[1])
        ]
        mixture = torch.stack(parts).prod(0) if combine == "product" else torch.stack(parts).mean(0)
        mixture = mixture / mixture.sum(dim=axis, keepdim=True).clamp(min=eps)
        outputs.append(chunk * mixture if keep is None else torch.where(keep, chunk * mixture, chunk))
    return torch.cat(outputs, dim=axis)


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """``x`` is ``(batch, n, d)`` with ``heads`` head chunks along ``axis``; each chunk needs >= 2 entries."""
    shape = replace(shape, masked=False, causal=False, m=None)
    options = shape.option_dict
    axis = options.get("axis", -1)
    if axis == -2 and shape.n < 2 * shape.heads:
        shape = shape.with_options(axis=-1)
        axis = -1
    if axis == -1 and shape.d < 2 * shape.heads:
        shape = replace(shape, d=2 * shape.heads + 1)
    return shape


def sample(seed: int, shape: Shape) -> SampleInput:
    """``x ~ (batch, n, d)`` and per-head offsets ``δ ~ U(−0.5, 0.5)``, widths ``c ~ U(0.5, 2)``;
    ``padded`` sets a fifth of the entries to the padding value PAD."""
    rng = np.random.default_rng(seed)
    x = sh.qk_values(rng, (shape.batch, shape.n, shape.d), shape.values)
    options = shape.option_dict
    gaussians = options.pop("gaussians", 2)
    padded = options.pop("padded", False)
    extra = cat.rng_for(seed, 23)
    delta = extra.uniform(-0.5, 0.5, (shape.heads, gaussians))
    c = extra.uniform(0.5, 2.0, (shape.heads, gaussians))
    if options.pop("zero_offsets", False):
        delta = np.zeros_like(delta)
    if padded:
        x = np.where(extra.random(x.shape) < 0.2, PAD, x)
        options["padding_value"] = PAD
    return SampleInput((x, delta, c), options, shape.label())


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {"gaussians": draw(st.integers(1, 4))}
    if draw(st.booleans()):
        options["axis"] = -2
    if draw(st.integers(0, 3)) == 0:
        options["padded"] = True
    if draw(st.integers(0, 3)) == 0:
        options["combine"] = "mean"
    if draw(st.booleans()):
        options["eps"] = draw(st.sampled_from([1e-6, 1e-3]))
    return options


SHAPES = st.builds(adapt, sh.attention_shapes(gqa=False, cross=False, masks=False, causal=False, options=_options))


def _axis(s: SampleInput) -> int:
    return int(s.kwargs.get("axis", -1))


def _lines(s: SampleInput) -> np.ndarray:
    """``x`` with the GAAM axis last."""
    return np.moveaxis(s.args[0], _axis(s), -1)


def _spread_chunks(s: SampleInput, min_var: float = 1e-2) -> bool:
    """Every head chunk of every line has a variance well above ε (so ε's effect stays tiny)."""
    x = _lines(s)
    pad = s.kwargs.get("padding_value")
    for cols in _chunks(x.shape[-1], s.args[1].shape[0]):
        chunk = x[..., cols.start : cols.stop]
        chunk = chunk if pad is None else np.where(chunk != pad, chunk, 0.0)
        if np.any(chunk.var(axis=-1, ddof=1) < min_var):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# invariants


def _raw_chunk_sums(s: SampleInput) -> list[np.ndarray]:
    """``Σ_chunk Π_g N_g`` of every head chunk, before normalising (written here from the definition)."""
    _, delta, c = s.args
    lines = _lines(s)
    pad = s.kwargs.get("padding_value")
    eps = float(s.kwargs.get("eps", DEFAULT_EPS))
    sums = []
    for h, cols in enumerate(_chunks(lines.shape[-1], delta.shape[0])):
        chunk = lines[..., cols.start : cols.stop]
        kept = chunk if pad is None else np.where(chunk != pad, chunk, 0.0)
        mean = kept.mean(-1, keepdims=True)
        sigma = np.sqrt(kept.var(-1, ddof=1, keepdims=True) + eps)
        dens = [
            np.exp(-0.5 * ((chunk - mean - delta[h, g]) / (sigma * c[h, g])) ** 2) / (np.sqrt(2 * np.pi) * abs(c[h, g]))
            for g in range(delta.shape[1])
        ]
        raw = np.prod(dens, axis=0) if s.kwargs.get("combine", "product") == "product" else np.mean(dens, axis=0)
        sums.append(raw.sum(-1))
    return sums


def _weights_normalised(ops: Any, s: SampleInput) -> None:
    x, delta = s.args[:2]
    weights = s.call(ops.gaussian_adaptive_weights)
    assert np.all(weights >= 0), "negative weight"
    w = np.moveaxis(weights, _axis(s), -1)
    eps = float(s.kwargs.get("eps", DEFAULT_EPS))
    for cols, raw in zip(_chunks(w.shape[-1], delta.shape[0]), _raw_chunk_sums(s)):
        sums = w[..., cols.start : cols.stop].sum(-1)
        want = np.where(raw >= eps, 1.0, raw / eps)  # below the floor the weights are raw / ε
        sh.close(f"weights of head chunk {cols.start}:{cols.stop} sum to 1 (raw / ε below the floor)", sums, want)
    out = s.call(ops.gaussian_adaptive_attention)
    pad = s.kwargs.get("padding_value")
    want_out = x * weights if pad is None else np.where(x != pad, x * weights, x)
    sh.close("output vs x ⊙ w", out, want_out)


def _affine_invariance(ops: Any, s: SampleInput) -> None:
    """δ = 0: ``w(a x + b) = w(x)`` for ``a > 0`` chunk by chunk (up to ε's share of the variance)."""
    x, delta, c = s.args
    zero = np.zeros_like(delta)
    kw = {key: val for key, val in s.kwargs.items() if key != "padding_value"}
    base = ops.gaussian_adaptive_weights(x, zero, c, **kw)
    lines = np.moveaxis(x, _axis(s), -1)
    moved = np.empty_like(lines)
    rng = np.random.default_rng(6)
    for cols in _chunks(lines.shape[-1], delta.shape[0]):
        moved[..., cols.start : cols.stop] = rng.uniform(0.5, 3.0) * lines[..., cols.start : cols.stop] + rng.normal(
            0, 5
        )
    sh.close(
        "weights after x <- a x + b per head chunk",
        ops.gaussian_adaptive_weights(np.moveaxis(moved, -1, _axis(s)), zero, c, **kw),
        base,
        atol=1e-5,
    )


def _one_gaussian(s: SampleInput) -> SampleInput:
    """The sample with each head's G Gaussians replaced by the one Gaussian they multiply to."""
    x, delta, c = s.args
    precision = np.sum(1.0 / c**2, axis=-1, keepdims=True)
    return s.with_args(x, np.sum(delta / c**2, axis=-1, keepdims=True) / precision, 1.0 / np.sqrt(precision))


def _product_is_one_gaussian(ops: Any, s: SampleInput) -> None:
    """Π_g N(y; δ_g, c_g) ∝ N(y; δ*, c*) with 1/c*² = Σ 1/c_g², δ* = c*² Σ δ_g/c_g²: after normalising, one
    Gaussian (on the head chunks where neither raw sum is below the floor ε, which the constant factors move)."""
    one = _one_gaussian(s)
    eps = float(s.kwargs.get("eps", DEFAULT_EPS))
    got = np.moveaxis(s.call(ops.gaussian_adaptive_weights), _axis(s), -1)
    want = np.moveaxis(one.call(ops.gaussian_adaptive_weights), _axis(s), -1)
    chunks = _chunks(got.shape[-1], s.args[1].shape[0])
    for cols, raw, raw_one in zip(chunks, _raw_chunk_sums(s), _raw_chunk_sums(one)):
        fine = (raw >= eps) & (raw_one >= eps)
        sh.close(
            f"head chunk {cols.start}:{cols.stop}: G Gaussians vs the one they multiply to",
            got[..., cols.start : cols.stop][fine],
            want[..., cols.start : cols.stop][fine],
        )


def _product_applies(s: SampleInput) -> bool:
    if s.kwargs.get("combine", "product") != "product" or s.args[1].shape[1] < 2:
        return False
    eps = float(s.kwargs.get("eps", DEFAULT_EPS))
    return any(np.any((a >= eps) & (b >= eps)) for a, b in zip(_raw_chunk_sums(s), _raw_chunk_sums(_one_gaussian(s))))


def _padding_passes_through(ops: Any, s: SampleInput) -> None:
    x = s.args[0]
    pad = s.kwargs["padding_value"]
    out = s.call(ops.gaussian_adaptive_attention)
    assert np.array_equal(out[x == pad], x[x == pad]), "a padded entry was changed"
    moved = np.where(x == pad, pad, x)
    sh.close(
        "output with the padding untouched", s.with_args(moved, *s.args[1:]).call(ops.gaussian_adaptive_attention), out
    )


def _heads_independent(ops: Any, s: SampleInput) -> None:
    """Perturbing head chunk h (the last one holding the remainder) changes no other head's output."""
    x, delta, _ = s.args
    base = np.moveaxis(s.call(ops.gaussian_adaptive_attention), _axis(s), -1)
    lines = np.moveaxis(x, _axis(s), -1)
    chunks = _chunks(lines.shape[-1], delta.shape[0])
    rng = np.random.default_rng(8)
    for h, cols in enumerate(chunks):
        moved = np.array(lines)
        moved[..., cols.start : cols.stop] += rng.standard_normal(moved[..., cols.start : cols.stop].shape)
        out = np.moveaxis(
            s.with_args(np.moveaxis(moved, -1, _axis(s)), *s.args[1:]).call(ops.gaussian_adaptive_attention),
            _axis(s),
            -1,
        )
        others = np.ones(lines.shape[-1], dtype=bool)
        others[cols.start : cols.stop] = False
        sh.close(f"other heads after perturbing head {h}", out[..., others], base[..., others])


# ---------------------------------------------------------------------------------------------
# mutants


def _global_normalisation(original: Any) -> Any:
    def mutated(x: Any, mean_offsets: Any, scales: Any, **kw: Any) -> Any:
        weights = original(x, mean_offsets, scales, **kw)
        return weights / np.sum(weights, axis=kw.get("axis", -1), keepdims=True)  # over every head at once

    return mutated


def _raw_second_moment(original: Any) -> Any:
    def mutated(x: np.ndarray, keep: Any, eps: float) -> tuple[np.ndarray, np.ndarray]:
        mean, _ = original(x, keep, eps)
        values = x if keep is None else np.where(keep, x, 0.0)
        return mean, np.sqrt(np.mean(values * values, axis=-1, keepdims=True) + eps)

    return mutated


def _sum_of_gaussians(original: Any) -> Any:
    def mutated(
        x: np.ndarray, mean: np.ndarray, sigma: np.ndarray, offsets: np.ndarray, scales: np.ndarray, combine: str
    ) -> np.ndarray:
        return original(x, mean, sigma, offsets, scales, "mean")

    return mutated


def _scale_not_squared(original: Any) -> Any:
    def mutated(
        x: np.ndarray, mean: np.ndarray, sigma: np.ndarray, offsets: np.ndarray, scales: np.ndarray, combine: str
    ) -> np.ndarray:
        return original(x, mean, sigma, offsets, np.sqrt(np.abs(scales)), combine)

    return mutated


def _pads_weighted(original: Any) -> Any:
    def mutated(x: Any, mean_offsets: Any, scales: Any, *, padding_value: Any = None, **kw: Any) -> Any:
        weights = module.gaussian_adaptive_weights(x, mean_offsets, scales, padding_value=padding_value, **kw)
        return np.asarray(x, dtype=float) * weights

    return mutated


def _remainder_first(original: Any) -> Any:
    def mutated(length: int, heads: int) -> list[tuple[int, int]]:
        bounds = np.linspace(0, length, heads + 1)
        edges = [int(np.ceil(b)) for b in bounds]  # the remainder spread over the first heads
        return list(itertools.pairwise(edges))

    return mutated


MUTANTS = (
    sh.output_nudged(OP),
    Mutant(
        "global_normalisation",
        "the weights are normalised over the whole axis, not per head chunk",
        {"gaussian_adaptive_weights": _global_normalisation},
    ),
    Mutant(
        "raw_second_moment",
        "σ² is the raw second moment E[x²], not the variance",
        {"chunk_moments": _raw_second_moment},
    ),
    Mutant(
        "sum_of_gaussians",
        "the head's Gaussians are averaged instead of multiplied",
        {"gaussian_product": _sum_of_gaussians},
    ),
    Mutant(
        "scale_not_squared",
        "N_g uses c_g instead of c_g² (as if c were a variance)",
        {"gaussian_product": _scale_not_squared},
    ),
    Mutant("pads_weighted", "padded entries are re-weighted like the others", {OP: _pads_weighted}),
    Mutant(
        "remainder_first",
        "the remainder goes to the first heads (as numpy.array_split), not the last",
        {"head_chunks": _remainder_first},
    ),
)

INVARIANTS = (
    Invariant(
        "weights_normalised",
        "the weights are >= 0 and sum to 1 over each head chunk (raw/ε where the sum is below the floor ε); "
        "out = x ⊙ w off the padding",
        _weights_normalised,
        ("global_normalisation", "pads_weighted"),
    ),
    Invariant(
        "affine_invariance",
        "with δ = 0 the weights are invariant to x <- a x + b (a > 0) applied per head chunk",
        _affine_invariance,
        ("raw_second_moment",),
        lambda s: (
            s.kwargs.get("padding_value") is None
            and _spread_chunks(s)
            and float(s.kwargs.get("eps", DEFAULT_EPS)) <= 1e-8
        ),
    ),
    Invariant(
        "product_is_one_gaussian",
        "a head's product of G Gaussians equals, after normalising, the single Gaussian with 1/c*² = Σ 1/c_g², "
        "δ* = c*² Σ δ_g/c_g²",
        _product_is_one_gaussian,
        ("sum_of_gaussians", "scale_not_squared"),
        _product_applies,
    ),
    Invariant(
        "padding_passes_through",
        "entries equal to padding_value are returned unchanged",
        _padding_passes_through,
        ("pads_weighted",),
        lambda s: s.kwargs.get("padding_value") is not None,
    ),
    Invariant(
        "heads_independent",
        "perturbing one head chunk (the last holding the remainder) changes no other head's output",
        _heads_independent,
        ("remainder_first",),
        lambda s: s.args[1].shape[0] >= 2,
    ),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("output_nudged", "raw_second_moment", "sum_of_gaussians", "pads_weighted", "remainder_first"),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, adapt(Shape(n=6, d=6)))
    x, delta, c = s.args
    return [
        *sh.bad_arrays(("x", "mean_offsets", "scales"), s),
        BadInput("scales-zero", (x, delta, np.zeros_like(c)), {}, ValueError, r"\bscales\b.*non-zero"),
        BadInput("offsets-scales-mismatch", (x, delta, c[:, :1]), {}, ValueError, r"\bmean_offsets/scales\b"),
        BadInput("offsets-3d", (x, delta[None], c[None]), {}, ValueError, r"\bmean_offsets\b.*2-d"),
        BadInput("axis-out-of-range", s.args, {"axis": 3}, ValueError, r"\baxis\b"),
        BadInput("axis-float", s.args, {"axis": -1.0}, TypeError, r"\baxis\b"),
        BadInput("too-many-heads", (x, np.zeros((4, 2)), np.ones((4, 2))), {}, ValueError, r"\bx\b.*per head"),
        BadInput("eps-zero", s.args, {"eps": 0.0}, ValueError, r"\beps\b.*positive"),
        BadInput("eps-bool", s.args, {"eps": True}, ValueError, r"\beps\b.*positive"),
        BadInput("eps-string", s.args, {"eps": "1e-8"}, ValueError, r"\beps\b.*positive"),
        BadInput("combine-unknown", s.args, {"combine": "max"}, ValueError, r"\bcombine\b"),
        BadInput("padding-string", s.args, {"padding_value": "pad"}, TypeError, r"\bpadding_value\b"),
    ]


def _flops(s: SampleInput) -> float:
    x, delta, _ = s.args
    return float(x.size) * (8.0 * delta.shape[1] + 6.0)


FORM = Form(
    order=21,
    name="gaam",
    title="Gaussian Adaptive Attention (per-head Gaussian re-weighting of normalised features)",
    equation=(
        r"\mathrm{out} = x \odot \frac{w}{\max(\sum w, \epsilon)},\quad "
        r"w = \prod_g \mathcal N\!\left(\tfrac{x - \mu - \delta_g}{\sigma}; 0, c_g^2\right),"
        r"\ \mu, \sigma^2 \text{ per head chunk}"
    ),
    reference=gaussian_adaptive_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("ioannides2024gaussian"), "§3, GAAM; code GaussianBlock.py"),
    status="exact",
    note=(
        "The released code multiplies each head's Gaussians (combine='product', one unimodal Gaussian per head); "
        "the abstract's 'mixture' reading, the average of the Gaussians, is combine='mean'. Unbiased variance, "
        "ε = 1e-8 on the variance and as the floor of the normalising sum; padding counts as 0 in the moments "
        "(the count is not reduced), enters the normalising sum and passes through. The block's residual "
        "x + GAAM(x) is outside the operator."
    ),
    array_args=("x", "mean_offsets", "scales"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=2, heads=2, kv_heads=2, n=5, d=7, options=(("gaussians", 3), ("padded", True))),
        Shape(batch=1, heads=4, kv_heads=4, n=11, d=3, options=(("axis", -2), ("gaussians", 1))),
        Shape(batch=1, heads=2, kv_heads=2, n=6, d=9, options=(("combine", "mean"), ("gaussians", 2))),
        Shape(batch=1, heads=1, kv_heads=1, n=4, d=10, options=(("gaussians", 4), ("zero_offsets", True))),
        Shape(batch=1, heads=3, kv_heads=3, n=10, d=4, options=(("axis", -2), ("padded", True))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="about (8G + 6) operations per entry of x (G Gaussians, the moments and the normalisation)",
    bench=(
        BenchCase(Shape(batch=2, heads=2, kv_heads=2, n=16, d=8), ("tiny",)),
        BenchCase(Shape(batch=8, heads=8, kv_heads=8, n=512, d=512, options=(("gaussians", 4),)), ("quick",)),
        BenchCase(Shape(batch=16, heads=8, kv_heads=8, n=2048, d=1024, options=(("gaussians", 4),)), ("full",)),
        BenchCase(Shape(batch=32, heads=16, kv_heads=16, n=4096, d=1024, options=(("gaussians", 4),)), ("cuda",)),
    ),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.gaam:gaussian_adaptive_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
