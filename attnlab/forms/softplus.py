"""Declaration of softplus attention with a length scale and re-weighting (LSSA / LSSAR, Gao et al. 2025)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.softplus as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.softplus import DEFAULT_BASE_LENGTH, softplus_attention

OP = "softplus_attention"


def _log_softplus_scalar(x: float) -> float:
    """``log(log(1 + e^x))`` from :mod:`math`, exact for every real ``x``."""
    if x > 0:
        return math.log(x + math.log1p(math.exp(-x)))
    y = math.exp(x)
    return x if y == 0.0 else x + math.log(math.log1p(y) / y)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    length_scale: bool = True,
    base_length: int = DEFAULT_BASE_LENGTH,
    power: float | None = None,
    reweight: str = "power",
) -> Any:
    """The LSSA/LSSAR weight matrix formed explicitly in torch (softplus through its log, then l1)."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device).expand(*q.shape[:-2], n, m)
    counts = allowed.sum(-1, keepdim=True).to(q.dtype)
    kappa = torch.log(counts.clamp(min=1)) / math.log(base_length) if length_scale else torch.ones_like(counts)
    x = kappa * T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    # log softplus by ranges, each branch fed only its own inputs (finite gradients in every branch)
    deep = torch.where(x < -30, x, torch.full_like(x, -30.0))
    mid = torch.where((x >= -30) & (x <= 0), x, torch.zeros_like(x))
    top = torch.where(x > 0, x, torch.ones_like(x))
    log_sp = torch.where(
        x < -30,
        deep - torch.exp(deep) / 2,
        torch.where(
            x <= 0,
            mid + torch.log(torch.log1p(torch.exp(mid)) / torch.exp(mid)),
            torch.log(top + torch.log1p(torch.exp(-top))),
        ),
    )
    weights = T.masked_softmax(log_sp, allowed)
    if power is not None and reweight == "power":
        weights = T.masked_softmax(power * log_sp, allowed)
    elif power is not None:
        excess = counts * weights - 1
        above = allowed & (excess > 0)
        sharp = T.masked_softmax(power * torch.log(torch.where(above, excess, torch.ones_like(excess))), above)
        weights = torch.where(above.any(-1, keepdim=True), sharp, weights)
    return weights @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    length_scale: bool = True,
    base_length: int = DEFAULT_BASE_LENGTH,
    power: float | None = None,
    reweight: str = "power",
) -> np.ndarray:
    """Scalar loops over each row's visible keys with :mod:`math` softplus."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    lead, n, m = q.shape[:-2], q.shape[-2], k.shape[-2]
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        logits = sigma * sh.dot_loop(q[idx], k[idx])
        for i in range(n):
            seen = [j for j in range(m) if vis[idx][i, j]]
            if not seen:
                continue
            kappa = math.log(len(seen)) / math.log(base_length) if length_scale else 1.0
            logs = {j: _log_softplus_scalar(kappa * logits[i, j]) for j in seen}
            top = max(logs.values())
            w = {j: math.exp(lw - top) for j, lw in logs.items()}
            total = sum(w.values())
            w = {j: x / total for j, x in w.items()}
            if power is not None and reweight == "power":
                top = max(logs.values())
                w = {j: math.exp(power * (lw - top)) for j, lw in logs.items()}
                total = sum(w.values())
                w = {j: x / total for j, x in w.items()}
            elif power is not None:
                excess = {j: len(seen) * x - 1.0 for j, x in w.items() if len(seen) * x - 1.0 > 0}
                if excess:
                    peak = max(excess.values())
                    raw = {j: (e / peak) ** power for j, e in excess.items()}
                    total = sum(raw.values())
                    w = {j: raw.get(j, 0.0) / total for j in seen}
            for c in range(v.shape[-1]):
                out[idx][i, c] = sum(w[j] * v[idx][j, c] for j in seen)
    return out


# ---------------------------------------------------------------------------------------------
# samples


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = sh.positive_scale(draw, shape)
    kind = draw(st.sampled_from(["lssa", "lssa", "power", "threshold", "unscaled"]))
    if kind == "unscaled":
        options["length_scale"] = False
    elif kind != "lssa":
        options["power"] = draw(st.sampled_from([0.5, 1.0, 2.0, 3.7]))
        options["reweight"] = kind
    if draw(st.booleans()):
        options["base_length"] = draw(st.integers(2, 64))
    return options


def _kappa(s: SampleInput, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    counts = cat.visible_counts(s, q, k)
    base = s.kwargs.get("base_length", DEFAULT_BASE_LENGTH)
    return np.log(np.maximum(counts, 1)) / math.log(base)


def _lssa(s: SampleInput) -> SampleInput:
    return s.without("power", "reweight")


# ---------------------------------------------------------------------------------------------
# invariants


def _rows_sum_to_one(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = s.with_args(q, k, identity).call(ops.softplus_attention)
    has = np.any(sh.visible_of(s, *sh.repeat_kv(q, k)), axis=-1)
    assert np.all(weights >= 0), "negative attention weight"
    sh.close("row sums", weights.sum(-1), has.astype(float))


def _row_shifts(s: SampleInput) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-row logit shifts ``c_i = −max_j s_ij`` and the rows where softplus weights must then move: a second
    visible key within 20 (scaled) of the row's top logit, and at least 0.05 below it, with a value 0.05 away
    from the top key's (further down, both weights are already 0 or 1 to double precision)."""
    q, k, v = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    sigma = s.kwargs.get("scale", q.shape[-1] ** -0.5)
    logits = sigma * np.einsum("...id,...jd->...ij", qe, ke)
    vis = sh.visible_of(s, qe, ke)
    kappa = _kappa(s, qe, ke) if s.kwargs.get("length_scale", True) else np.ones((*logits.shape[:-1], 1))
    masked = np.where(vis, logits, -np.inf)
    top = np.max(masked, axis=-1, keepdims=True)
    shift = np.where(np.isfinite(top), -top, 0.0)
    best = np.argmax(masked, axis=-1)
    top_value = np.take_along_axis(ve[..., None, :, :], best[..., :, None, None], axis=-2)  # (..., n, 1, d_v)
    below = kappa * (np.where(np.isfinite(top), top, 0.0) - logits)  # rows with no key have no vis anyway
    differ = np.max(np.abs(ve[..., None, :, :] - top_value), axis=-1) > 0.05
    rows = np.any(vis & (below <= 20.0) & (below > 0.05) & differ, axis=-1)
    return shift, rows, sigma


def _not_shift_invariant(ops: Any, s: SampleInput) -> None:
    """Adding c_i to every logit of row i (an extra query/key coordinate) must move the output."""
    q, k, v = s.args
    shift, rows, sigma = _row_shifts(s)
    qe, ke, ve = sh.repeat_kv(q, k, v)
    q_aug = np.concatenate([qe, shift / sigma], axis=-1)
    k_aug = np.concatenate([ke, np.ones((*ke.shape[:-1], 1))], axis=-1)
    shifted = s.with_args(q_aug, k_aug, ve, scale=sigma).call(ops.softplus_attention)
    moved = np.max(np.abs(shifted - s.call(ops.softplus_attention)), axis=-1)
    assert np.max(moved[rows]) > 1e-9, (
        f"the output ignores per-row logit shifts (moved {np.max(moved[rows]):.1e}): softmax-like, not softplus"
    )


def _shift_applies(s: SampleInput) -> bool:
    return s.kwargs.get("power") is None and bool(np.any(_row_shifts(s)[1]))


def _power_one_is_lssa(ops: Any, s: SampleInput) -> None:
    base = _lssa(s)
    sh.close(
        "LSSAR(p = 1, power) vs LSSA",
        base.with_args(*s.args, power=1.0, reweight="power").call(ops.softplus_attention),
        base.call(ops.softplus_attention),
    )


def _large_power_is_argmax(ops: Any, s: SampleInput) -> None:
    """``A^p / ΣA^p → one-hot at argmax A``: the deviation is at most ``Σ_{j≠top} (A_j/A_top)^p · 2 max|v|``."""
    q, k, v = s.args
    base = _lssa(s)
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = base.with_args(q, k, identity).call(ops.softplus_attention)
    p = 400.0
    sharp = base.with_args(q, k, v, power=p, reweight="power").call(ops.softplus_attention)
    ve = sh.repeat_kv(q, k, v)[2]
    top = np.argmax(weights, axis=-1)
    a_top = np.take_along_axis(weights, top[..., None], -1)
    ratio = np.where(weights < a_top, weights / np.where(a_top > 0, a_top, 1.0), 0.0)
    unique = np.sum(weights >= a_top * (1 - 1e-12), axis=-1) == 1
    bound = np.sum(ratio**p, axis=-1) * 2 * np.abs(ve).max() + 1e-9 * (1 + np.abs(ve).max())
    want = np.take_along_axis(ve, top[..., None], -2)
    err = np.max(np.abs(sharp - want), axis=-1)
    bad = unique & (a_top[..., 0] > 0) & (err > bound)
    assert not bad.any(), (
        f"p = {p:g} output is {err[bad].max():.2e} from the argmax value (bound {bound[bad].min():.1e})"
    )


def _length_scale_is_query_scaling(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    scaled = s.with_args(qe * _kappa(s, qe, ke), ke, ve, length_scale=False).call(ops.softplus_attention)
    sh.close("κ-scaled logits vs query rows scaled by log N_i / log N_0", s.call(ops.softplus_attention), scaled)


# ---------------------------------------------------------------------------------------------
# mutants


def _exp_positivity(original: Any) -> Any:
    def identity(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float)

    return identity


def _length_scale_total(original: Any) -> Any:
    def total(counts: np.ndarray, base_length: int) -> np.ndarray:
        return original(np.full_like(counts, float(np.max(counts))), base_length)

    return total


def _power_doubled(original: Any) -> Any:
    def doubled(logits: np.ndarray, allowed: np.ndarray, kappa: np.ndarray, power: Any, reweight: str) -> np.ndarray:
        return original(logits, allowed, kappa, None if power is None else 2 * power, reweight)

    return doubled


def _power_ignored(original: Any) -> Any:
    def ignored(logits: np.ndarray, allowed: np.ndarray, kappa: np.ndarray, power: Any, reweight: str) -> np.ndarray:
        return original(logits, allowed, kappa, None, reweight)

    return ignored


def _offset_positivity(original: Any) -> Any:
    def signed(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
        allowed = np.broadcast_to(allowed, x.shape)
        raw = np.where(allowed, np.exp(np.minimum(x, 700.0)) - 0.5, 0.0)
        total = np.sum(raw, axis=axis, keepdims=True)
        return raw / np.where(total != 0, total, 1.0)

    return signed


MUTANTS = (
    *cat.attention_mutants(OP),
    Mutant(
        "exp_positivity",
        "exp instead of softplus as the positivity map (softmax attention)",
        {"log_softplus": _exp_positivity},
    ),
    Mutant(
        "length_scale_total",
        "κ from the longest row's key count instead of each row's visible count",
        {"length_scales": _length_scale_total},
    ),
    Mutant("power_doubled", "the re-weighting uses 2p", {"softplus_weights": _power_doubled}),
    Mutant("power_ignored", "the re-weighting is skipped", {"softplus_weights": _power_ignored}),
    Mutant(
        "offset_positivity",
        "weights ∝ softplus − ½ (a positivity map that can go negative)",
        {"masked_softmax": _offset_positivity},
    ),
)

INVARIANTS = (
    Invariant(
        "rows_sum_to_one",
        "weights (the output for V = I) are >= 0 and each visible row sums to 1",
        _rows_sum_to_one,
        ("offset_positivity",),
    ),
    sh.convex_hull(OP, mutants=("offset_positivity",)),
    Invariant(
        "not_shift_invariant",
        "unlike softmax, adding a constant c_i to every logit of row i moves the output (G5 must fail)",
        _not_shift_invariant,
        ("exp_positivity",),
        _shift_applies,
    ),
    Invariant(
        "power_one_is_lssa",
        "LSSAR with p = 1 (power re-weighting) is LSSA",
        _power_one_is_lssa,
        ("power_doubled",),
    ),
    Invariant(
        "large_power_is_argmax",
        "LSSAR with p = 400 returns the value of the largest LSSA weight, within Σ_{j≠top}(A_j/A_top)^p",
        _large_power_is_argmax,
        ("power_ignored",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "length_scale_is_query_scaling",
        "the length scale equals scaling query row i by κ_i = log N_i / log N_0 with the scale off",
        _length_scale_is_query_scaling,
        ("length_scale_total",),
        lambda s: s.kwargs.get("length_scale", True),
    ),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)),
    sh.query_permutation(OP, [0], mutants=("output_nudged",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("top_left_causal", "wrong_scale", "ignores_mask", "output_nudged", "exp_positivity", "power_ignored"),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sh.attention_sample(0, Shape(n=5, m=6))
    kw = s.kwargs
    return [
        *sh.bad_attention_inputs(s),
        BadInput("power-zero", s.args, {**kw, "power": 0.0}, ValueError, r"\bpower\b.*positive"),
        BadInput("power-string", s.args, {**kw, "power": "2"}, TypeError, r"\bpower\b"),
        BadInput("power-inf", s.args, {**kw, "power": float("inf")}, ValueError, r"\bpower\b"),
        BadInput("reweight-unknown", s.args, {**kw, "power": 2.0, "reweight": "cube"}, ValueError, r"\breweight\b"),
        BadInput("base-length-one", s.args, {**kw, "base_length": 1}, ValueError, r"\bbase_length\b"),
        BadInput("base-length-float", s.args, {**kw, "base_length": 512.0}, TypeError, r"\bbase_length\b"),
        BadInput("length-scale-string", s.args, {**kw, "length_scale": "yes"}, TypeError, r"\blength_scale\b"),
    ]


FORM = Form(
    order=19,
    name="softplus",
    title="Softplus attention with a length scale (LSSA) and power re-weighting (LSSAR)",
    equation=(
        r"A_{ij} = \frac{\operatorname{softplus}(\kappa_i s_{ij})}"
        r"{\sum_{j'} \operatorname{softplus}(\kappa_i s_{ij'})},"
        r"\ \kappa_i = \log_{N_0} N_i,\quad \tilde A_{ij} = \frac{A_{ij}^p}{\sum_{j'} A_{ij'}^p},\quad O = \tilde A V"
    ),
    reference=softplus_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("gao2025softplus"), "abstract", abstract_level=True),
    status="reading",
    note=(
        "Reading of the abstract: Softplus replaces exp before the l1-normalisation; the 'dynamic scale factor "
        "based on invariance entropy' is taken as κ_i = log N_i / log N_0 on the logits of row i (N_i visible "
        "keys, N_0 = base_length, default 512), the entropy-invariant log_{N_0} N scale; the re-weighting is "
        "A^p renormalised (reweight='power') or ReLU(N A − 1)^p renormalised (reweight='threshold'). Neither "
        "the scale function nor the re-weighting rule is given in the abstract; both are arguments. The code "
        "the paper cites (iminfine/freeatten) was not inspected."
    ),
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sh.attention_sample,
    shapes=sh.attention_shapes(options=_options),
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=7, m=9, d=4, d_v=3, causal=True, options=(("power", 3.0),)),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=6,
            m=8,
            d=5,
            d_v=2,
            masked=True,
            options=(("power", 2.0), ("reweight", "threshold")),
        ),
        Shape(batch=1, heads=4, kv_heads=2, n=5, d=3, d_v=4, causal=True, options=(("base_length", 4), ("scale", 0.8))),
        Shape(batch=2, heads=1, kv_heads=1, n=6, m=7, d=4, d_v=3, masked=True, options=(("length_scale", False),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=sh.softmax_flops,
    flop_convention=sh.SOFTMAX_FLOPS,
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=64, d_v=64, causal=True), ("quick",)),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=2048, d=64, d_v=64, causal=True, options=(("power", 3.0),)), ("full",)
        ),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=4096, d=128, d_v=128, causal=True), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(softplus_attention),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.softplus:softplus_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
