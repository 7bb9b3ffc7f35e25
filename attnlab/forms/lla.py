"""Declaration of Local Linear Attention (LLA, Zuo et al. 2025): the intercept of a local affine fit per query."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.lla as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.lla import lla_attention
from attnlab.reference.softmax import attention_weights, softmax_attention

OP = "lla_attention"


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
    form: str = "parallel",
) -> Any:
    """``o = v̄ + Cov(v, k)(Σ + λ'I)⁻¹(q − μ)`` with every moment formed explicitly, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device).expand(*q.shape[:-2], n, m)
    logits = T.default_scale(scale, d) * (q @ k.transpose(-1, -2))
    a = T.masked_softmax(logits, allowed)
    center = k.mean(-2, keepdim=True)
    kc, qc = k - center, q - center
    mu = a @ kc
    diff = kc[..., None, :, :] - mu[..., :, None, :]  # (..., n, m, d)
    cov = torch.einsum("...nm,...nmd,...nme->...nde", a, diff, diff)
    v_bar = a @ v
    cross = torch.einsum("...nm,...mc,...nmd->...ncd", a, v, diff)
    if lam_convention == "objective":
        lse = torch.logsumexp(logits.masked_fill(~allowed, -math.inf), dim=-1)
        ceiling = 0.5 * math.log(torch.finfo(q.dtype).max)  # e^{−lse} past it is "infinite"
        ridge = torch.where(torch.isfinite(lse), 2 * lam * torch.exp((-lse).clamp(max=ceiling)), torch.ones_like(lse))
    else:
        ridge = torch.full(a.shape[:-1], float(lam), dtype=q.dtype, device=q.device)
    eye = torch.eye(d, dtype=q.dtype, device=q.device)
    # the pseudo-inverse is the inverse where λ' > 0 and the λ' → 0⁺ limit where λ' = 0
    system = cov + ridge[..., None, None] * eye
    r = (torch.linalg.pinv(system, hermitian=True, rtol=1e-10) @ (qc - mu)[..., None])[..., 0]
    out = v_bar + (cross @ r[..., None])[..., 0]
    return torch.where(allowed.any(-1, keepdim=True), out, torch.zeros_like(out))


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
    form: str = "parallel",
) -> np.ndarray:
    """Per query, the weighted ridge least squares for ``(b, W)`` by its normal equations in coordinates
    centred at the weighted key mean (where they decouple: ``b̃ = v̄``, ``(Σ + λ'I) Wᵀ = Cᵀ``), ``o = b̃ + W(q − μ)``.
    A ridge below 1e-10 of the system's size is the ``λ' → 0⁺`` limit: the minimum-norm ``W`` by ``pinv``."""
    q, k, v = sh.repeat_kv(*(np.asarray(x, dtype=np.float64) for x in (q, k, v)))
    lead, n, m, d = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1]
    sigma = d**-0.5 if scale is None else scale
    vis = sh.visibility(n, m, causal, mask, lead)
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        qs, ks, vs = q[idx], k[idx], v[idx]
        for i in range(n):
            seen = [j for j in range(m) if vis[idx][i, j]]
            if not seen:
                continue
            logits = {j: sigma * sum(qs[i, t] * ks[j, t] for t in range(d)) for j in seen}
            top = max(logits.values())
            w = {j: math.exp(s - top) for j, s in logits.items()}
            total = sum(w.values())
            a = {j: x / total for j, x in w.items()}
            heavy = max(seen, key=lambda j: a[j])
            mu = ks[heavy] + sum(a[j] * (ks[j] - ks[heavy]) for j in seen)
            v_bar = sum(a[j] * vs[j] for j in seen)
            cov = np.sum([a[j] * np.outer(ks[j] - mu, ks[j] - mu) for j in seen], axis=0)
            cross = np.sum([a[j] * np.outer(vs[j], ks[j] - mu) for j in seen], axis=0)
            ridge = lam if lam_convention == "normalised" else 2 * lam * math.exp(min(-top, 700.0)) / total
            size = np.trace(cov) + d * ridge
            if ridge > 1e-10 * size:  # else the ridge is negligible: the λ' → 0⁺ limit
                # divided by its size, so a tiny (even subnormal) ridge on a tiny Σ solves as well as a large one
                slope = np.linalg.solve(cov / size + ridge / size * np.eye(d), cross.T / size)  # Wᵀ
            else:
                design = np.array([math.sqrt(a[j]) * (ks[j] - mu) for j in seen])
                target = np.array([math.sqrt(a[j]) * vs[j] for j in seen])
                slope = np.linalg.pinv(design, rcond=1e-5) @ target  # minimum-norm Wᵀ
            out[idx][i] = v_bar + (qs[i] - mu) @ slope
    return out


# ---------------------------------------------------------------------------------------------
# samples


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = sh.positive_scale(draw, shape)
    options["lam"] = draw(st.sampled_from([1.0, 1.0, 0.1, 3.0, 0.0]))
    if draw(st.integers(0, 3)) == 0:
        options["lam_convention"] = "objective"
    if draw(st.booleans()):
        options["form"] = "blocked"
    return options


def _well_posed(s: SampleInput) -> bool:
    """One strictly positive ridge for every row (λ' = lam > 0 on the normalised weights)."""
    return float(s.kwargs.get("lam", 1.0)) > 0 and s.kwargs.get("lam_convention", "normalised") == "normalised"


# ---------------------------------------------------------------------------------------------
# invariants


def _when_well_posed(invariant: Invariant) -> Invariant:
    """The invariant on samples with a positive ridge: without one (``lam = 0``, or the objective convention's
    vanishing ``λ'`` at large logits) the fit's conditioning, not the operator, decides the last digits."""
    return replace(invariant, applies=lambda s: invariant.applies(s) and _well_posed(s))


def _full_rank_rows(s: SampleInput, qe: np.ndarray, ke: np.ndarray, max_cond: float = 1e4) -> np.ndarray:
    """Rows where the unregularised fit is well posed: the visible keys' covariance (under the softmax
    weights) has condition <= max_cond, and the query lies within ``sqrt(max_cond)`` key spreads of their
    mean (``(q − μ)ᵀ Σ⁻¹ (q − μ) <= max_cond``; far beyond, the fit extrapolates and rounding grows with it)."""
    opts = {"scale": s.kwargs["scale"]} if "scale" in s.kwargs else {}
    vis = sh.visible_of(s, qe, ke)
    a = attention_weights(qe, ke, mask=np.array(vis), **opts)
    mu = a @ ke
    diff = ke[..., None, :, :] - mu[..., :, None, :]
    cov = np.einsum("...nm,...nmd,...nme->...nde", a, diff, diff)
    vals, vecs = np.linalg.eigh(cov)
    spread = vals[..., -1:] / max_cond
    coords = np.einsum("...dk,...d->...k", vecs, qe - mu)
    leverage = np.sum(coords**2 / np.maximum(vals, np.maximum(spread, 1e-300)), axis=-1)
    return np.any(vis, axis=-1) & (vals[..., 0] > spread[..., 0]) & (vals[..., 0] > 1e-8) & (leverage <= max_cond)


def _affine_targets_exact(ops: Any, s: SampleInput) -> None:
    q, k, _ = s.args
    qe, ke = sh.repeat_kv(q, k)
    rng = np.random.default_rng(9)
    amap, shift = rng.standard_normal((3, q.shape[-1])), rng.standard_normal(3)
    v_affine = k @ amap.T + shift
    out = s.with_args(q, k, v_affine, lam=0.0, lam_convention="normalised").call(ops.lla_attention)
    rows = _full_rank_rows(s, qe, ke)
    want = qe @ amap.T + shift
    sh.close("λ = 0, v = A k + c: output vs A q + c on well-posed rows", out[rows], want[rows], atol=1e-8)


def _affine_applies(s: SampleInput) -> bool:
    qe, ke = sh.repeat_kv(*s.args[:2])
    return bool(np.any(_full_rank_rows(s, qe, ke)))


def _large_ridge_expansion(ops: Any, s: SampleInput) -> None:
    """``o − o_softmax = C (Σ + λ'I)⁻¹ (q − μ)``: at most ``‖C‖₂ ‖q − μ‖ / λ'``, and ``λ'(o − o_softmax) → C (q − μ)``
    with a remainder below ``‖C‖₂ ‖q − μ‖ ‖Σ‖₂ / λ'`` (``C = Cov(v, k)``, moments under the softmax weights)."""
    q, k, v = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    kw = {key: val for key, val in s.kwargs.items() if key in ("scale", "causal", "mask")}
    vis = np.array(sh.visible_of(s, qe, ke))
    opts = {"scale": kw["scale"]} if "scale" in kw else {}
    a = attention_weights(qe, ke, mask=vis, **opts)
    mu = a @ ke
    diff = ke[..., None, :, :] - mu[..., :, None, :]
    cov = np.einsum("...nm,...nmd,...nme->...nde", a, diff, diff)
    cross = np.einsum("...nm,...mc,...nmd->...ncd", a, ve, diff)
    spread = float(np.max(np.linalg.norm(cov, ord=2, axis=(-2, -1))))
    ridge = 1e6 * (1.0 + spread)
    got = ops.lla_attention(q, k, v, lam=ridge, lam_convention="normalised", **kw)
    soft = softmax_attention(qe, ke, ve, mask=vis, **opts)
    reach = np.linalg.norm(cross, ord=2, axis=(-2, -1)) * np.linalg.norm(qe - mu, axis=-1)  # ‖C‖₂ ‖q − μ‖ per row
    rounding = 1e-13 * (1.0 + np.abs(soft).max(axis=-1))
    gap = np.linalg.norm(got - soft, axis=-1)
    assert np.all(gap <= reach / ridge * (1 + 1e-9) + rounding), "o moved further from softmax than ‖C‖‖q − μ‖/λ'"
    first = np.einsum("...cd,...d->...c", cross, qe - mu)
    err = np.linalg.norm(ridge * (got - soft) - first, axis=-1)
    allowed = reach * spread / ridge * (1 + 1e-6) + ridge * rounding + 1e-9 * (1 + reach)
    assert np.all(err <= allowed), (
        f"λ'(o − o_softmax) is {np.max(err - allowed):.2e} further from C(q − μ) than its remainder"
    )


def _matches_brute_force(ops: Any, s: SampleInput) -> None:
    got, want = s.call(ops.lla_attention), s.call(brute_force)
    if not _well_posed(s):
        qe, ke = sh.repeat_kv(*s.args[:2])
        single = cat.visible_counts(s, qe, ke)[..., 0] <= 1
        rows = _full_rank_rows(s, qe, ke) | single
        got, want = got[rows], want[rows]
    sh.close("reference vs brute-force loop", got, want, atol=1e-8)


def _weights_sum_to_one(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = s.with_args(q, k, identity).call(ops.lla_attention)
    has = np.any(sh.visible_of(s, *sh.repeat_kv(q, k)), axis=-1)
    sh.close("row sums of the local-fit weights", weights.sum(-1), has.astype(float), atol=1e-8)


def _blocked_equals_parallel(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    kw = {key: val for key, val in s.kwargs.items() if key != "form"}
    dense = ops.lla_attention_parallel(q, k, v, **kw)
    for block in (1, 3):
        sh.close(
            f"blocked (block {block}) vs parallel",
            ops.lla_attention_blocked(q, k, v, block_size=block, **kw),
            dense,
            atol=1e-8,
        )
    qe, ke, ve = sh.repeat_kv(q, k, v)
    vis = np.array(sh.visible_of(s, qe, ke))
    split = ke.shape[-2] // 2
    rest = {key: val for key, val in kw.items() if key not in ("causal", "mask")}
    _, state = ops.lla_attention_blocked(
        qe, ke[..., :split, :], ve[..., :split, :], mask=vis[..., :split], return_state=True, **rest
    )
    resumed = ops.lla_attention_blocked(
        qe, ke[..., split:, :], ve[..., split:, :], mask=vis[..., split:], initial_state=state, **rest
    )
    sh.close("split-then-resume vs one call", resumed, dense, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# mutants


def _uncentred_covariance(original: Any) -> Any:
    def mutated(a: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, ...]:
        _, cross, offset = original(a, k, v, q)
        return np.einsum("...nm,...md,...me->...nde", a, k, k), cross, offset  # E[k kᵀ], not the covariance

    return mutated


def _cross_not_centred(original: Any) -> Any:
    def mutated(a: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, ...]:
        cov, _, offset = original(a, k, v, q)
        centre = k - k.mean(axis=-2, keepdims=True)
        return cov, np.einsum("...nm,...mc,...md->...ncd", a, v, centre), offset  # around the key mean, not μ_i

    return mutated


def _ridge_doubled(original: Any) -> Any:
    def mutated(cov: np.ndarray, cross: np.ndarray, rhs: np.ndarray, ridge: np.ndarray) -> np.ndarray:
        return original(cov, cross, rhs, 2.0 * ridge)

    return mutated


def _softmax_only(original: Any) -> Any:
    def mutated(a: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, ...]:
        cov, cross, offset = original(a, k, v, q)
        return cov, np.zeros_like(cross), offset

    return mutated


def _no_rescale(original: Any) -> Any:
    def stale(state: Any, factor: np.ndarray) -> Any:
        return original(state, np.ones_like(factor))  # old sums stay on the previous running max

    return stale


MUTANTS = (
    *cat.attention_mutants(OP),
    Mutant(
        "uncentred_covariance",
        "the fit uses E[k kᵀ] instead of the covariance around μ_i",
        {"local_moments": _uncentred_covariance},
    ),
    Mutant(
        "cross_not_centred",
        "the value–key cross moment is taken around the key mean, not μ_i",
        {"local_moments": _cross_not_centred},
    ),
    Mutant(
        "ridge_doubled", "the solve uses 2λ' (the objective's factor ½ dropped)", {"fit_correction": _ridge_doubled}
    ),
    Mutant(
        "softmax_only", "the local-linear correction is dropped (softmax attention)", {"local_moments": _softmax_only}
    ),
    Mutant("no_rescale", "streamed moments are not rescaled to the new running max", {"rescale": _no_rescale}),
)

INVARIANTS = (
    Invariant(
        "affine_targets_exact",
        "λ = 0 and affine targets v = A k + c: o_i = A q_i + c exactly wherever the visible keys span (for any kernel)",
        _affine_targets_exact,
        ("uncentred_covariance", "softmax_only"),
        _affine_applies,
    ),
    Invariant(
        "large_ridge_expansion",
        "λ' → ∞ gives softmax attention: λ'(o − o_softmax) → Cov(v, k)(q − μ) (attnlab.reference.softmax)",
        _large_ridge_expansion,
        ("ridge_doubled", "softmax_only", "top_left_causal", "ignores_mask"),
    ),
    Invariant(
        "weights_sum_to_one",
        "the equivalent-kernel weights (output for V = I) of each visible row sum to 1 (they may be negative)",
        _weights_sum_to_one,
        ("cross_not_centred",),
        _well_posed,
    ),
    Invariant(
        "blocked_equals_parallel",
        "streamed moments (block sizes 1 and 3, and split-then-resume) equal the weights form",
        _blocked_equals_parallel,
        ("no_rescale",),
        lambda s: _well_posed(s) and s.args[1].shape[-2] >= 2,
    ),
    sh.causal_prefix(OP, [0], [1, 2], mutants=("leaky_causal",)),
    _when_well_posed(sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",))),
    sh.query_permutation(OP, [0], mutants=("output_nudged",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    Invariant(
        "matches_brute_force",
        "equals the normal-equation solution per query, by scalar loops (on rows the fit determines to rounding)",
        _matches_brute_force,
        ("top_left_causal", "wrong_scale", "ignores_mask", "output_nudged", "ridge_doubled", "uncentred_covariance"),
        lambda s: sh.longest(s) <= 12,
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sh.attention_sample(0, Shape(n=5, m=6))
    kw = s.kwargs
    return [
        *sh.bad_attention_inputs(s),
        BadInput("lam-negative", s.args, {**kw, "lam": -1.0}, ValueError, r"\blam\b.*non-negative"),
        BadInput("lam-nan", s.args, {**kw, "lam": float("nan")}, ValueError, r"\blam\b"),
        BadInput("lam-string", s.args, {**kw, "lam": "1"}, TypeError, r"\blam\b"),
        BadInput("lam-convention-unknown", s.args, {**kw, "lam_convention": "raw"}, ValueError, r"\blam_convention\b"),
        BadInput("form-unknown", s.args, {**kw, "form": "chunked"}, ValueError, r"\bform\b"),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = int(np.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])))
    n, m, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    return lead * (2.0 * n * m * (2 * d + dv) + 2.0 * n * m * d * d + n * d**3 / 3.0)


FORM = Form(
    order=22,
    name="lla",
    title="Local Linear Attention (intercept of a kernel-weighted local affine fit)",
    equation=(
        r"o_i = \hat b_i,\ (\hat b_i, \hat W_i) = \arg\min_{b, W} \tfrac12 \sum_j w_{ij} \|v_j - b - W(k_j - q_i)\|^2"
        r" + \lambda \|W\|_F^2,\ w_{ij} = e^{\sigma q_i\cdot k_j}"
    ),
    reference=lla_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("zuo2025local"), "the regularised local linear regression objective"),
    status="reading",
    note=(
        "Reading: the kernel is softmax's exp(σ q·k) and lam_convention='normalised' puts λ' = lam on the "
        "normalised weights (one ridge for every query, invariant to logit row shifts); 'objective' is the "
        "objective as written (λ'_i = 2λ/Σ_j w_ij). lam = 0 is the pseudo-inverse (λ' → 0⁺) limit. No code was "
        "released with the paper. Two evaluations: the weights form and streamed key-block moments (resumable)."
    ),
    array_args=("q", "k", "v"),
    row_args=(0,),
    sample=sh.attention_sample,
    shapes=sh.attention_shapes(max_n=16, max_d=6, options=_options),
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=6, m=14, d=3, d_v=2, causal=True, options=(("lam", 0.0),)),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=12, d=2, d_v=3, masked=True, options=(("lam", 0.0), ("scale", 0.4))),
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=7,
            m=9,
            d=4,
            d_v=2,
            causal=True,
            options=(("lam", 2.0), ("lam_convention", "objective")),
        ),
        Shape(batch=2, heads=1, kv_heads=1, n=6, d=3, d_v=3, causal=True, options=(("form", "blocked"), ("lam", 0.5))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention=(
        "per head: 2·n·m·(2d + d_v) for logits and moments, 2·n·m·d² for the covariances, n·d³/3 for the solves"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=4, kv_heads=4, n=256, d=32, d_v=32, causal=True), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=2, heads=16, kv_heads=16, n=2048, d=64, d_v=64, causal=True), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(lla_attention),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.lla:lla_attention",
            "torch",
            dtypes=("float32", "float64"),
            devices=("cpu", "cuda"),
            differentiable=True,
            # Judged where one positive ridge regularises every row: without it (lam = 0, or the objective
            # convention's vanishing λ' at large logits) which eigenvalues count as zero is a float64 decision that
            # float32 cannot reproduce (its null eigenvalues are ~eps·d, not 0); tests/forms/test_lla.py checks
            # those options in float64.
            supports=_well_posed,
        ),
    ),
)
