"""Declaration of Infinite Self-Attention (InfSA, Roffo 2026): a discounted Neumann series over the token graph."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.infsa as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.infsa import DEFAULT_EPS, DEFAULT_RHO, MAX_TERMS, infsa_attention

OP = "infsa_attention"


def _graph_loop(q: np.ndarray, k: np.ndarray, sigma: float, eps: float) -> np.ndarray:
    raw = np.maximum(sigma * sh.dot_loop(q, k), 0.0)
    norm = math.sqrt(sum(x * x for x in raw.ravel())) + eps
    return raw / norm if norm > 0 else raw


def _solve_loop(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Gaussian elimination with partial pivoting, one scalar at a time."""
    a = [list(row) + list(r) for row, r in zip(matrix.astype(float), rhs.astype(float))]
    n, width = len(a), len(a[0])
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                for c in range(col, width):
                    a[r][c] -= f * a[col][c]
    return np.array([[a[r][c] / a[r][r] for c in range(n, width)] for r in range(n)])


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    rho: float = DEFAULT_RHO,
    mode: str = "neumann",
    terms: int | None = None,
    scale: float | None = None,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Scalar loops: the graph entry by entry; Neumann by Gaussian elimination; the pooled mode by sums."""
    q, k, v = sh.repeat_kv(*(np.asarray(x, dtype=np.float64) for x in (q, k, v)))
    lead, n, m, d = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1]
    sigma = 1.0 / d if scale is None else scale
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        qs, ks, vs = q[idx], k[idx], v[idx]
        if mode == "pooled":
            energy = [math.sqrt(sigma * sum(x * x for x in row)) for row in qs]
            total = sum(energy) + eps
            summary = [sum(energy[t] / total * math.sqrt(sigma) * qs[t, c] for t in range(n)) for c in range(d)]
            scores = [max(0.0, sum(math.sqrt(sigma) * ks[j, c] * summary[c] for c in range(d))) for j in range(m)]
            norm = sum(scores) + eps
            row = [rho * sum(scores[j] / norm * vs[j, c] for j in range(m)) for c in range(v.shape[-1])]
            out[idx] = np.array([row] * n)
            continue
        graph = _graph_loop(qs, ks, sigma, eps)
        one_hop = rho * sh.dot_loop(graph, vs.T)
        if mode == "pure":
            out[idx] = one_hop
        elif mode == "series":
            hop, total_v = vs, np.zeros_like(vs)
            for _ in range(int(terms or 0)):
                hop = rho * sh.dot_loop(graph, hop.T)
                total_v = total_v + hop
            out[idx] = total_v
        else:
            out[idx] = _solve_loop(np.eye(n) - rho * graph, one_hop)
    return out


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    rho: float = DEFAULT_RHO,
    mode: str = "neumann",
    terms: int | None = None,
    scale: float | None = None,
    eps: float = DEFAULT_EPS,
) -> Any:
    """The graph and ``(I − ρÂ)⁻¹ − I`` by an explicit inverse, in torch (pooled mode by its sums)."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    sigma = 1.0 / q.shape[-1] if scale is None else float(scale)
    if mode == "pooled":
        qs, ks = q * sigma**0.5, k * sigma**0.5
        energy = qs.norm(dim=-1)
        summary = ((energy / (energy.sum(-1, keepdim=True) + eps))[..., None] * qs).sum(-2)
        scores = torch.relu((ks * summary[..., None, :]).sum(-1))
        scores = scores / (scores.sum(-1, keepdim=True) + eps)
        pooled = rho * (scores[..., None] * v).sum(-2, keepdim=True)
        return pooled.expand(*v.shape[:-2], q.shape[-2], v.shape[-1])
    raw = torch.relu(sigma * (q @ k.transpose(-1, -2)))
    graph = raw / (raw.flatten(-2).norm(dim=-1)[..., None, None] + eps)
    if mode == "pure":
        return rho * graph @ v
    if mode == "series":
        powers, hop = torch.zeros_like(v), v
        for _ in range(int(terms or 0)):
            hop = rho * graph @ hop
            powers = powers + hop
        return powers
    eye = torch.eye(graph.shape[-1], dtype=q.dtype, device=q.device)
    return (torch.linalg.inv(eye - rho * graph) - eye) @ v


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """No mask or causal form; the graph modes need one token set."""
    shape = replace(shape, masked=False, causal=False)
    if shape.option_dict.get("mode", "neumann") in ("neumann", "series"):
        shape = replace(shape, m=None)
    return shape


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    return SampleInput(sh.qkv(rng, shape), dict(shape.option_dict), shape.label())


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {"rho": draw(st.sampled_from([0.3, 0.7, 0.95]))}
    mode = draw(st.sampled_from(["neumann", "neumann", "series", "pure", "pooled"]))
    if mode != "neumann":
        options["mode"] = mode
    if mode == "series":
        options["terms"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        options["scale"] = float(np.exp(draw(st.floats(np.log(0.05), np.log(2.0)))))
    return options


SHAPES = st.builds(adapt, sh.attention_shapes(masks=False, causal=False, options=_options))


def _mode(s: SampleInput) -> str:
    return str(s.kwargs.get("mode", "neumann"))


def _graph_mode(s: SampleInput) -> bool:
    return _mode(s) in ("neumann", "series")


def _rho(s: SampleInput) -> float:
    return float(s.kwargs.get("rho", DEFAULT_RHO))


def _graph_kwargs(s: SampleInput) -> dict[str, Any]:
    return {key: s.kwargs[key] for key in ("rho", "scale", "eps") if key in s.kwargs}


# ---------------------------------------------------------------------------------------------
# invariants


def _series_converges_to_neumann(ops: Any, s: SampleInput) -> None:
    """``‖Y_∞ − Y_T‖_F <= ρ^{T+1}/(1 − ρ)·‖V‖_F`` per slice (as ``‖Â‖₂ <= 1``), and equality once that bound is
    below rounding."""
    q, k, v = s.args
    kw = _graph_kwargs(s)
    rho = _rho(s)
    limit = ops.infsa_attention(q, k, v, mode="neumann", **kw)
    ve = sh.repeat_kv(q, k, v)[2]
    norm_v = np.sqrt(np.sum(ve * ve, axis=(-2, -1)))
    for terms in (1, 3, 10):
        gap = np.sqrt(
            np.sum((limit - ops.infsa_attention(q, k, v, mode="series", terms=terms, **kw)) ** 2, axis=(-2, -1))
        )
        bound = rho ** (terms + 1) / (1 - rho) * norm_v
        assert np.all(gap <= bound * (1 + 1e-9) + 1e-12), (
            f"T = {terms}: ‖Y_∞ − Y_T‖ = {gap.max():.3e} above the bound {bound.max():.3e}"
        )
    deep = math.ceil(math.log(1e-14 * (1 - rho)) / math.log(rho))
    sh.close(
        f"Neumann solve vs the series to T = {deep}",
        limit,
        ops.infsa_attention(q, k, v, mode="series", terms=deep, **kw),
        atol=1e-10,
    )


def _first_hop_is_pure(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    kw = _graph_kwargs(s)
    sh.close(
        "series with T = 1 vs the code's single hop ρÂV",
        ops.infsa_attention(q, k, v, mode="series", terms=1, **kw),
        ops.infsa_attention(q, k, v, mode="pure", **kw),
    )


def _solve_residual(ops: Any, s: SampleInput) -> None:
    """``(I − ρÂ) Y = ρÂV`` with ``Â`` built here from its definition."""
    q, k, v = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    sigma = s.kwargs.get("scale", 1.0 / q.shape[-1])
    eps = s.kwargs.get("eps", DEFAULT_EPS)
    rho = _rho(s)
    raw = np.maximum(sigma * np.einsum("...id,...jd->...ij", qe, ke), 0.0)
    graph = raw / (np.linalg.norm(raw, axis=(-2, -1), keepdims=True) + eps)
    y = ops.infsa_attention(q, k, v, mode="neumann", **_graph_kwargs(s))
    sh.close("(I − ρÂ) Y vs ρÂV", y - rho * graph @ y, rho * graph @ ve)


def _scale_invariance(ops: Any, s: SampleInput) -> None:
    """ε = 0: Â is invariant to Q <- cQ, K <- c'K (c, c' > 0), and Y is linear in V."""
    q, k, v = s.args
    kw = {**{key: val for key, val in s.kwargs.items() if key != "eps"}, "eps": 0.0}
    base = ops.infsa_attention(q, k, v, **kw)
    sh.close("output after Q <- 3.7 Q, K <- 0.2 K", ops.infsa_attention(3.7 * q, 0.2 * k, v, **kw), base, atol=1e-9)
    # far below 1 every normaliser (‖·‖_F, the pooled sums) is < 1: dividing by it must still undo the scale
    sh.close("output after Q <- 1e-3 Q, K <- 1e-2 K", ops.infsa_attention(1e-3 * q, 1e-2 * k, v, **kw), base, atol=1e-9)
    w = np.random.default_rng(5).standard_normal(v.shape)
    sh.close(
        "linearity in V",
        ops.infsa_attention(q, k, 2.0 * v - w, **kw),
        2.0 * base - ops.infsa_attention(q, k, w, **kw),
        atol=1e-9,
    )


def _scale_applies(s: SampleInput) -> bool:
    """Some positive affinity (an all-zero graph or pooled score is invariant trivially)."""
    q, k = sh.repeat_kv(*s.args[:2])
    return bool(np.any(np.einsum("...id,...jd->...ij", q, k) > 0))


def _pooled_rows_identical(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    out = s.call(ops.infsa_attention)
    sh.close("every position returns the pooled vector", out, np.broadcast_to(out[..., :1, :], out.shape), atol=0.0)
    ve = sh.repeat_kv(q, k, v)[2]
    rho = _rho(s)
    lo, hi = np.minimum(ve.min(axis=-2, keepdims=True), 0.0), np.maximum(ve.max(axis=-2, keepdims=True), 0.0)
    tol = 1e-12 * (1 + np.abs(ve).max())
    assert np.all((out / rho >= lo - tol) & (out / rho <= hi + tol)), (
        "pooled output / ρ left the hull of the values and 0"
    )


def _token_relabelling(ops: Any, s: SampleInput) -> None:
    """One graph: relabelling the tokens (q, k, v together) relabels the outputs."""
    q, k, v = s.args
    perm = np.random.default_rng(3).permutation(q.shape[-2])
    moved = s.with_args(q[..., perm, :], k[..., perm, :], v[..., perm, :]).call(ops.infsa_attention)
    sh.close("output after relabelling the tokens", moved, s.call(ops.infsa_attention)[..., perm, :])


# ---------------------------------------------------------------------------------------------
# mutants


def _neumann_without_rho(original: Any) -> Any:
    def mutated(graph: np.ndarray, v: np.ndarray, rho: float) -> np.ndarray:
        return original(graph, v, rho) / rho  # solves (I − ρÂ)Y = ÂV

    return mutated


def _neumann_keeps_identity(original: Any) -> Any:
    def mutated(graph: np.ndarray, v: np.ndarray, rho: float) -> np.ndarray:
        return original(graph, v, rho) + v  # (I − ρÂ)⁻¹ V, the t = 0 term kept

    return mutated


def _series_extra_hop(original: Any) -> Any:
    def mutated(graph: np.ndarray, v: np.ndarray, rho: float, terms: int) -> np.ndarray:
        return original(graph, v, rho, terms + 1)

    return mutated


def _row_normalised(original: Any) -> Any:
    def mutated(q: np.ndarray, k: np.ndarray, sigma: float, eps: float) -> np.ndarray:
        raw = np.maximum(sigma * (q @ np.swapaxes(k, -1, -2)), 0.0)
        return raw / (raw.sum(axis=-1, keepdims=True) + 1.0)

    return mutated


def _softplus_affinity(original: Any) -> Any:
    def mutated(q: np.ndarray, k: np.ndarray, sigma: float, eps: float) -> np.ndarray:
        raw = np.logaddexp(0.0, sigma * (q @ np.swapaxes(k, -1, -2)))
        return raw / (np.sqrt(np.sum(raw * raw, axis=(-2, -1), keepdims=True)) + eps)

    return mutated


def _pool_per_query(original: Any) -> Any:
    def mutated(q: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, rho: float, eps: float) -> np.ndarray:
        out = original(q, k, v, sigma, rho, eps)
        return out + 1e-6 * np.tanh(q[..., :1])

    return mutated


def _pool_unnormalised(original: Any) -> Any:
    def mutated(q: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, rho: float, eps: float) -> np.ndarray:
        return original(q, k, v, sigma, rho, eps) * (k.shape[-2] + 1)

    return mutated


MUTANTS = (
    sh.interleaved_gqa(OP, (1, 2)),
    sh.output_nudged(OP),
    Mutant("neumann_without_rho", "the solve has ÂV on the right, not ρÂV", {"neumann": _neumann_without_rho}),
    Mutant(
        "neumann_keeps_identity",
        "(I − ρÂ)⁻¹V: the zero-hop term V is not removed",
        {"neumann": _neumann_keeps_identity},
    ),
    Mutant("series_extra_hop", "the truncated series sums T + 1 hops", {"series": _series_extra_hop}),
    Mutant(
        "row_normalised",
        "the graph is row-normalised (plus one) instead of Frobenius-normalised",
        {"affinity": _row_normalised},
    ),
    Mutant(
        "softplus_affinity",
        "softplus instead of ReLU in the affinity (not scale invariant)",
        {"affinity": _softplus_affinity},
    ),
    Mutant("pool_per_query", "the pooled mode lets each position's query leak in", {"pooled": _pool_per_query}),
    Mutant("pool_unnormalised", "the pooled scores are not normalised to sum to 1", {"pooled": _pool_unnormalised}),
)

INVARIANTS = (
    Invariant(
        "series_converges_to_neumann",
        "the truncated series is within ρ^{T+1}/(1 − ρ)‖V‖_F of the Neumann solve for T = 1, 3, 10 and equals it "
        "once that bound is below rounding",
        _series_converges_to_neumann,
        ("neumann_without_rho", "neumann_keeps_identity"),
        _graph_mode,
    ),
    Invariant(
        "first_hop_is_pure",
        "the series with one hop is the released code's single-hop operator ρÂV",
        _first_hop_is_pure,
        ("series_extra_hop",),
        _graph_mode,
    ),
    Invariant(
        "solve_residual",
        "the Neumann output solves (I − ρÂ)Y = ρÂV with Â rebuilt from its definition",
        _solve_residual,
        ("row_normalised", "neumann_without_rho", "neumann_keeps_identity", "softplus_affinity"),
        _graph_mode,
    ),
    Invariant(
        "scale_invariance",
        "with ε = 0 the normalisations (Frobenius; the pooled mode's sums) make Y invariant to Q <- cQ, K <- c'K, "
        "for scales above and far below 1; Y is linear in V",
        _scale_invariance,
        ("softplus_affinity",),
        _scale_applies,
    ),
    Invariant(
        "pooled_rows_identical",
        "Linear-InfSA returns one pooled vector at every position, ρ times a convex combination of values (and 0)",
        _pooled_rows_identical,
        ("pool_per_query", "pool_unnormalised"),
        lambda s: _mode(s) == "pooled",
    ),
    Invariant(
        "token_relabelling",
        "relabelling the tokens (q, k, v together) relabels the outputs of the graph modes",
        _token_relabelling,
        ("output_nudged",),
        lambda s: _mode(s) != "pooled" and s.args[0].shape[-2] == s.args[1].shape[-2] and s.args[0].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=("output_nudged", "neumann_without_rho", "row_normalised", "series_extra_hop", "pool_unnormalised"),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=5))
    q, k, v = s.args
    cross = (q, np.concatenate([k, k], -2), np.concatenate([v, v], -2))
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        BadInput("k-head-dim", (q, k[..., :-1], v), {}, ValueError, r"\bk\b.*d_k"),
        BadInput("kv-length-mismatch", (q, k, np.concatenate([v, v], -2)), {}, ValueError, r"\bk\b.*\bv\b"),
        BadInput("rho-one", s.args, {"rho": 1.0}, ValueError, r"\brho\b"),
        BadInput("rho-zero", s.args, {"rho": 0.0}, ValueError, r"\brho\b"),
        BadInput("rho-string", s.args, {"rho": "0.9"}, TypeError, r"\brho\b"),
        BadInput("mode-unknown", s.args, {"mode": "katz"}, ValueError, r"\bmode\b"),
        BadInput("series-without-terms", s.args, {"mode": "series"}, TypeError, r"\bterms\b"),
        BadInput("terms-without-series", s.args, {"terms": 3}, ValueError, r"\bterms\b"),
        BadInput(
            "terms-above-limit", s.args, {"mode": "series", "terms": MAX_TERMS + 1}, ValueError, r"\bterms\b.*at most"
        ),
        BadInput("neumann-cross", cross, {}, ValueError, r"\bq/k\b.*n == m"),
        # without a batch axis (H, n, d): the message's n and m are the token axes, not axis 2 (d = 8 here)
        BadInput(
            "series-cross-without-batch-axis",
            tuple(a[0] for a in cross),
            {"mode": "series", "terms": 2},
            ValueError,
            r"\bq/k\b.*n == m.*n=5, m=10",
        ),
        BadInput("scale-negative", s.args, {"scale": -1.0}, ValueError, r"\bscale\b"),
        BadInput("eps-negative", s.args, {"eps": -1.0}, ValueError, r"\beps\b"),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = int(np.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])))
    n, m, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    mode = _mode(s)
    if mode == "pooled":
        return 4.0 * lead * (n + m) * d
    hops = {"pure": 1, "series": int(s.kwargs.get("terms") or 1)}.get(mode, 1)
    solve = 2.0 * n**3 / 3.0 if mode == "neumann" else 0.0
    return lead * (2.0 * n * m * d + hops * 2.0 * n * m * dv + solve + (2.0 * n * n * dv if mode == "neumann" else 0.0))


FORM = Form(
    order=23,
    name="infsa",
    title="Infinite Self-Attention (discounted Neumann series over the ReLU token graph)",
    equation=(
        r"Y = \sum_{t\ge1}\rho^t \hat A^t V = \big((I-\rho\hat A)^{-1} - I\big)V,\quad "
        r"\hat A = \frac{\operatorname{ReLU}(QK^\top/d)}{\|\operatorname{ReLU}(QK^\top/d)\|_F + \epsilon}"
    ),
    reference=infsa_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("roffo2026infinite"), "abstract (Neumann series); code infsa/core.py", abstract_level=True),
    status="exact",
    note=(
        "The paper's operator is the Neumann series (mode='neumann', solved as (I − ρÂ)Y = ρÂV); the released code "
        "computes one hop ρÂV (mode='pure', multi-hop 'through stacked layers') and a pooled Linear-InfSA whose every "
        "position returns the same vector (mode='pooled'). Â is the code's Frobenius-normalised ReLU(QKᵀ/d). "
        "No causal form or mask; the graph modes need n = m."
    ),
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=7, d=4, d_v=3, options=(("mode", "series"), ("rho", 0.7), ("terms", 4))),
        Shape(batch=1, heads=4, kv_heads=2, n=6, m=9, d=5, d_v=2, options=(("mode", "pure"),)),
        Shape(batch=2, heads=2, kv_heads=2, n=8, m=5, d=3, d_v=4, options=(("mode", "pooled"), ("rho", 0.9))),
        Shape(batch=1, heads=2, kv_heads=2, n=9, d=4, d_v=3, options=(("mode", "pooled"),)),
        Shape(batch=1, heads=2, kv_heads=2, n=6, d=4, d_v=3, options=(("rho", 0.3), ("scale", 0.5))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention=(
        "2·n·m·d for the graph, 2·n·m·d_v per hop, 2n³/3 for the solve (Neumann), 4·(n + m)·d for the pooled mode"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=256, d=64, d_v=64), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=2048, d=128, d_v=128), ("cuda",)),
    ),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.infsa:infsa_attention",
            "torch",
            dtypes=("float32", "float64"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
