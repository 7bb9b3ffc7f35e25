"""Declaration of Sinkhorn (entropic optimal-transport) attention, Geometric Attention's plan regime."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.sinkhorn as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.sinkhorn import sinkhorn_attention
from attnlab.reference.softmax import softmax_attention

OP = "sinkhorn_attention"

#: Steps and tolerance of the convergence checks: the tamed samples (see :func:`_tame`) meet 1e-13 in ~160 steps.
CONVERGED: dict[str, Any] = {"iterations": 1000, "tol": 1e-13}


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    epsilon: float = 1.0,
    iterations: int = 3,
    tol: float = 0.0,
    row_marginal: Any = None,
    col_marginal: Any = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Log-domain Sinkhorn on the materialised ``(n, m)`` logits, written plainly in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    allowed = T.visibility(n, m, causal=causal, mask=mask, device=q.device).expand(*q.shape[:-2], n, m)
    logits = (T.default_scale(scale, q.shape[-1]) / epsilon) * (q @ k.transpose(-1, -2))
    r = torch.ones(n, dtype=q.dtype) if row_marginal is None else T.tensor(row_marginal, q)
    c = torch.ones(m, dtype=q.dtype) if col_marginal is None else T.tensor(col_marginal, q)
    log_r, log_c = torch.log(r / r.sum(-1, keepdim=True)), torch.log(c / c.sum(-1, keepdim=True))
    row_has, col_has = allowed.any(-1), allowed.any(-2)

    def lse(x: Any, dim: int, has: Any) -> Any:
        # rows/columns without support are filled with zeros (a finite gradient) and reported as −∞
        filled = torch.where(has.unsqueeze(dim), x.masked_fill(~allowed, -torch.inf), torch.zeros_like(x))
        return torch.where(has, torch.logsumexp(filled, dim=dim), torch.full_like(filled.sum(dim), -torch.inf))

    def potential(log_marginal: Any, total: Any) -> Any:
        return torch.where(
            torch.isfinite(total), log_marginal - torch.nan_to_num(total, neginf=0.0), torch.zeros_like(total)
        )

    g = torch.zeros(*logits.shape[:-2], m, dtype=q.dtype)
    f = potential(log_r, lse(logits + g[..., None, :], -1, row_has))
    for _ in range(iterations):
        g = potential(log_c, lse(logits + f[..., :, None], -2, col_has))
        f = potential(log_r, lse(logits + g[..., None, :], -1, row_has))
        if tol > 0:
            plan = torch.exp(logits + f[..., :, None] + g[..., None, :]).masked_fill(~allowed, 0.0)
            if float(((plan.sum(-2) - torch.exp(log_c)).abs() * col_has).max()) <= tol:
                break
    weights = torch.exp(
        (logits + f[..., :, None] - log_r[..., :, None] + g[..., None, :]).masked_fill(~allowed, -torch.inf)
    )
    return weights @ v


def _lse_loop(values: list[float]) -> float:
    finite = [x for x in values if x != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(x - top) for x in finite))


def _potentials_loop(
    logit: list[list[float]], log_r: list[float], log_c: list[float], iterations: int, tol: float
) -> tuple[list[float], list[float]]:
    """Sinkhorn potentials of one ``(n, m)`` logit table (``-inf`` off the support), one scalar at a time."""
    n, m = len(log_r), len(log_c)
    f, g = [0.0] * n, [0.0] * m
    supported = [any(logit[i][j] != -math.inf for i in range(n)) for j in range(m)]

    def rows() -> None:
        for i in range(n):
            total = _lse_loop([logit[i][j] + g[j] for j in range(m)])
            f[i] = log_r[i] - total if total != -math.inf else 0.0

    rows()
    for _ in range(iterations):
        for j in range(m):
            total = _lse_loop([logit[i][j] + f[i] for i in range(n)])
            g[j] = log_c[j] - total if total != -math.inf else 0.0
        rows()
        if tol > 0:
            gaps = [
                abs(
                    sum(math.exp(logit[i][j] + f[i] + g[j]) for i in range(n) if logit[i][j] != -math.inf)
                    - math.exp(log_c[j])
                )
                for j in range(m)
                if supported[j]
            ]
            if max(gaps, default=0.0) <= tol:
                break
    return f, g


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    epsilon: float = 1.0,
    iterations: int = 3,
    tol: float = 0.0,
    row_marginal: Any = None,
    col_marginal: Any = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar-loop log-domain Sinkhorn: one potential at a time, each a log-sum-exp over its row or column."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    n, m = q.shape[-2], k.shape[-2]
    vis = sh.visibility(n, m, causal, mask, q.shape[:-2])
    rows_w = np.broadcast_to(1.0 if row_marginal is None else row_marginal, (*q.shape[:-2], n))
    cols_w = np.broadcast_to(1.0 if col_marginal is None else col_marginal, (*q.shape[:-2], m))
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        log_r = [math.log(x / sum(rows_w[idx])) for x in rows_w[idx]]
        log_c = [math.log(x / sum(cols_w[idx])) for x in cols_w[idx]]
        raw = sh.dot_loop(q[idx], k[idx])
        logit = [[sigma * raw[i, j] / epsilon if vis[idx][i, j] else -math.inf for j in range(m)] for i in range(n)]
        f, g = _potentials_loop(logit, log_r, log_c, iterations, tol)
        for i in range(n):
            for col in range(v.shape[-1]):
                out[idx][i, col] = sum(
                    math.exp(logit[i][j] + f[i] - log_r[i] + g[j]) * v[idx][j, col]
                    for j in range(m)
                    if logit[i][j] != -math.inf
                )
    return out


# ---------------------------------------------------------------------------------------------
# samples


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {"iterations": draw(st.integers(0, 12))}
    if draw(st.booleans()):
        options["epsilon"] = cat.log_uniform(draw, 0.3, 3.0)
    if draw(st.booleans()):
        options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
    return options


SHAPES = sh.attention_shapes(max_n=16, options=_options)


def sample(seed: int, shape: Shape) -> SampleInput:
    s = sh.attention_sample(seed, shape)
    opts = shape.option_dict
    if opts.pop("marginals", False):
        rng = np.random.default_rng(seed + 1)
        extra = {"row_marginal": rng.uniform(0.5, 2.0, shape.n), "col_marginal": rng.uniform(0.5, 2.0, shape.keys)}
        return SampleInput(s.args, {**{k: v for k, v in s.kwargs.items() if k != "marginals"}, **extra}, s.label)
    return s


def _explicit_marginals(s: SampleInput) -> bool:
    return "row_marginal" in s.kwargs or "col_marginal" in s.kwargs


def _spread(q: np.ndarray, k: np.ndarray, s: SampleInput) -> float:
    qe, ke = sh.repeat_kv(q, k)
    sigma = s.kwargs.get("scale") or q.shape[-1] ** -0.5
    logits = (sigma / s.kwargs.get("epsilon", 1.0)) * (qe @ np.swapaxes(ke, -1, -2))
    return float(np.max(logits.max(axis=(-1, -2)) - logits.min(axis=(-1, -2))))


def _convergent(s: SampleInput) -> bool:
    """Full support and no explicit marginals: the plan exists and Sinkhorn converges (the checks tame
    the logits first, see :func:`_tame`)."""
    return s.kwargs.get("mask") is None and not s.kwargs.get("causal") and not _explicit_marginals(s)


def _tame(q: np.ndarray, k: np.ndarray, s: SampleInput) -> np.ndarray:
    """``q`` scaled so the logits spread over at most 3: Sinkhorn then contracts by ``tanh(3/2)² ≈ 0.82``
    per iteration (Birkhoff's bound), converging to 1e-13 in well under ``CONVERGED`` steps. The
    properties checked hold at any scale; a near-permutation plan would only converge slowly."""
    spread = _spread(q, k, s)
    return q * (3.0 / spread) if spread > 3.0 else q


# ---------------------------------------------------------------------------------------------
# invariants


def _softmax_at_zero(ops: Any, sample: SampleInput) -> None:
    q = sample.args[0]
    sigma = sample.kwargs.get("scale") or q.shape[-1] ** -0.5
    eps = sample.kwargs.get("epsilon", 1.0)
    got = ops.sinkhorn_attention(*sample.args, **{**sample.kwargs, "iterations": 0})
    want = softmax_attention(
        *sample.args, scale=sigma / eps, causal=sample.kwargs.get("causal", False), mask=sample.kwargs.get("mask")
    )
    sh.close("zero column steps vs softmax(S/ε)", got, want)


def _row_stochastic(ops: Any, sample: SampleInput) -> None:
    q, k = sample.args[:2]
    weights = cat.weights_of(ops.sinkhorn_attention, sample)
    qe, ke = sh.repeat_kv(q, k)
    has = np.any(sh.visible_of(sample, qe, ke), axis=-1)
    assert np.all(weights >= 0), "negative attention weight"
    sh.close("row sums", weights.sum(-1), has.astype(float))


def _doubly_stochastic(ops: Any, sample: SampleInput) -> None:
    q, k = sample.args[:2]
    n, m = q.shape[-2], k.shape[-2]
    tamed = SampleInput((_tame(q, k, sample), *sample.args[1:]), sample.kwargs)
    weights = cat.weights_of(ops.sinkhorn_attention, tamed, **CONVERGED)
    sh.close("row sums at convergence", weights.sum(-1), np.ones(weights.shape[:-1]), atol=1e-9)
    sh.close("column sums at convergence (n/m)", weights.sum(-2), np.full((*weights.shape[:-2], m), n / m), atol=1e-9)


def _augment(
    q: np.ndarray, k: np.ndarray, sigma: float, rng: np.random.Generator, columns: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(q', k')`` with ``σ q'·k' = σ q·k + a_i (+ b_j)``: two extra coordinates carry the offsets."""
    a = 3.0 * rng.standard_normal((*q.shape[:-1], 1))
    b = 3.0 * rng.standard_normal((*k.shape[:-1], 1)) if columns else np.zeros((*k.shape[:-1], 1))
    q2 = np.concatenate([q, a / sigma, np.ones_like(a)], axis=-1)
    k2 = np.concatenate([k, np.ones_like(b), b / sigma], axis=-1)
    return q2, k2


def _row_offsets(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    sigma = sample.kwargs.get("scale") or q.shape[-1] ** -0.5
    q2, k2 = _augment(q, k, sigma, np.random.default_rng(3), columns=False)
    moved = ops.sinkhorn_attention(q2, k2, v, **{**sample.kwargs, "scale": sigma})
    sh.close("output after S_ij += a_i (any iteration count)", moved, sample.call(ops.sinkhorn_attention), atol=1e-9)


def _row_column_offsets(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    q = _tame(q, k, sample)
    sigma = sample.kwargs.get("scale") or q.shape[-1] ** -0.5
    q2, k2 = _augment(q, k, sigma, np.random.default_rng(4), columns=True)
    moved = ops.sinkhorn_attention(q2, k2, v, **{**sample.kwargs, "scale": sigma, **CONVERGED})
    base = ops.sinkhorn_attention(q, k, v, **{**sample.kwargs, **CONVERGED})
    sh.close("converged output after S_ij += a_i + b_j", moved, base, atol=1e-8)


def _symmetric_plan(ops: Any, sample: SampleInput) -> None:
    q = sample.args[0]
    spread = _spread(q, q, sample)
    if spread > 3.0:  # the self-scores scale as |q|²: tame them like the other convergence checks
        q = q * np.sqrt(3.0 / spread)
    weights = cat.weights_of(ops.sinkhorn_attention, SampleInput((q, q, q), sample.kwargs), **CONVERGED)
    sh.close(
        "converged plan of a symmetric score matrix vs its transpose", weights, np.swapaxes(weights, -1, -2), atol=1e-9
    )


def _square_self(s: SampleInput) -> bool:
    return _convergent(s)


# ---------------------------------------------------------------------------------------------
# mutants


def _column_first(original: Any) -> Any:
    def potentials(logits: Any, log_r: Any, log_c: Any, iterations: int, tol: float) -> Any:
        g = module.column_step(logits, log_c, np.zeros(log_r.shape))
        f = module.row_step(logits, log_r, g)
        for _ in range(iterations):
            g = module.column_step(logits, log_c, f)
            f = module.row_step(logits, log_r, g)
        return f, g

    return potentials


def _ends_on_column(original: Any) -> Any:
    def potentials(logits: Any, log_r: Any, log_c: Any, iterations: int, tol: float) -> Any:
        f, g = original(logits, log_r, log_c, iterations, tol)
        return f, module.column_step(logits, log_c, f) if iterations > 0 else g

    return potentials


def _column_ignores_rows(original: Any) -> Any:
    def step(logits: Any, log_c: Any, f: Any) -> Any:
        return original(logits, log_c, np.zeros_like(f))

    return step


def _skewed_marginal(original: Any) -> Any:
    def marginal(name: str, given: Any, size: int, lead: Any, dtype: Any) -> Any:
        if given is None and name == "col_marginal":
            weights = np.arange(1, size + 1, dtype=float)
            return np.broadcast_to(np.log(weights / weights.sum()), (*lead, size))
        return original(name, given, size, lead, dtype)

    return marginal


def _empty_rows_see_all(original: Any) -> Any:
    def mutated(*args: Any, mask: Any = None, causal: bool = False, **kwargs: Any) -> Any:
        out = np.array(original(*args, mask=mask, causal=causal, **kwargs))
        empty = np.all(out == 0.0, axis=-1, keepdims=True)
        return np.where(empty, original(*args, **kwargs), out)

    return mutated


def _row_offset_leak(original: Any) -> Any:
    def step(logits: Any, log_r: Any, g: Any) -> Any:
        f = original(logits, log_r, g)
        # the row potential absorbs only half of a row offset
        return 0.5 * (f + original(logits - logits.max(axis=-1, keepdims=True).clip(-1e300), log_r, g))

    return step


MUTANTS = (
    cat.wrapping("column_first", "the first normalisation is a column step", "sinkhorn_potentials", _column_first),
    cat.wrapping(
        "ends_on_column_step",
        "the iterations end on a column step (rows no longer sum to 1)",
        "sinkhorn_potentials",
        _ends_on_column,
    ),
    cat.wrapping(
        "column_step_ignores_rows", "the column step forgets the row potentials", "column_step", _column_ignores_rows
    ),
    cat.wrapping(
        "skewed_column_marginal", "the default column marginal is ∝ j + 1, not uniform", "_marginal", _skewed_marginal
    ),
    cat.wrapping("empty_rows_see_all", "a query with no visible key attends to every key", OP, _empty_rows_see_all),
    cat.wrapping(
        "row_offset_leak", "the row potential picks up half of its row's largest logit", "row_step", _row_offset_leak
    ),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.drops_last_key(OP, (1, 2)),
    sh.output_nudged(OP),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.top_left_causal(OP),
)

INVARIANTS = (
    Invariant(
        "softmax_at_zero_iterations",
        "with no column step the plan is row-normalised: softmax attention at scale σ/ε",
        _softmax_at_zero,
        ("column_first", "wrong_scale", "ignores_mask", "top_left_causal"),
    ),
    Invariant(
        "rows_sum_to_one",
        "weights (the output for V = I) are >= 0 and every row with support sums to 1, at any iteration count",
        _row_stochastic,
        ("ends_on_column_step",),
    ),
    Invariant(
        "doubly_stochastic_at_convergence",
        "at convergence rows sum to 1 and columns to n/m (uniform marginals, full support)",
        _doubly_stochastic,
        ("column_step_ignores_rows", "skewed_column_marginal"),
        _convergent,
    ),
    Invariant(
        "row_offsets",
        "S_ij + a_i changes nothing at any iteration count (the row potential absorbs it)",
        _row_offsets,
        ("row_offset_leak",),
        lambda s: not _explicit_marginals(s),
    ),
    Invariant(
        "row_column_offsets",
        "the converged plan is invariant to S_ij + a_i + b_j (GA: unary row/column score fields are quotiented)",
        _row_column_offsets,
        ("row_offset_leak",),
        _convergent,
    ),
    Invariant(
        "symmetric_plan",
        "a symmetric score matrix (K = Q) with square uniform marginals converges to a symmetric plan",
        _symmetric_plan,
        ("skewed_column_marginal",),
        _square_self,
    ),
    Invariant(
        "key_permutation",
        "jointly permuting keys, values and mask columns leaves the output unchanged",
        sh.key_permutation(OP, [1, 2], mutants=("drops_last_key",)).check,
        ("drops_last_key",),
        lambda s: s.args[1].shape[-2] >= 2 and not _explicit_marginals(s),
    ),
    Invariant(
        "query_permutation",
        "permuting queries (and mask rows) permutes the outputs",
        sh.query_permutation(OP, [0], mutants=("output_nudged",)).check,
        ("output_nudged",),
        lambda s: s.args[0].shape[-2] >= 2 and not _explicit_marginals(s),
    ),
    sh.convex_hull(OP, mutants=("empty_rows_see_all",)),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("column_first", "wrong_scale", "column_step_ignores_rows", "top_left_causal")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sh.attention_sample(0, Shape())
    kw = {k: v for k, v in s.kwargs.items() if k != "mask"}
    return [
        *sh.bad_attention_inputs(s),
        BadInput("epsilon-zero", s.args, {**kw, "epsilon": 0.0}, ValueError, r"\bepsilon\b.*positive"),
        # logits ~1e15: their float64 spacing (~0.1 nat) decides the plan, not the inputs
        BadInput(
            "logits-unresolvable",
            (s.args[0] * 3e7, s.args[1] * 3e7, s.args[2]),
            kw,
            ValueError,
            r"^q/k: the logits .* beyond 2\.8\de\+14",
        ),
        BadInput("epsilon-tiny", s.args, {**kw, "epsilon": 1e-16}, ValueError, r"^q/k: the logits .*raise epsilon$"),
        BadInput("epsilon-string", s.args, {**kw, "epsilon": "warm"}, TypeError, r"\bepsilon\b"),
        BadInput("iterations-negative", s.args, {**kw, "iterations": -1}, ValueError, r"\biterations\b.*non-negative"),
        BadInput("iterations-float", s.args, {**kw, "iterations": 2.5}, TypeError, r"\biterations\b"),
        BadInput("tol-negative", s.args, {**kw, "tol": -1e-3}, ValueError, r"\btol\b"),
        BadInput("tol-string", s.args, {**kw, "tol": "tight"}, TypeError, r"^tol: .*got str"),
        BadInput("tol-bool", s.args, {**kw, "tol": True}, TypeError, r"^tol: .*got bool"),
        BadInput(
            "iterations-above-limit", s.args, {**kw, "iterations": 10**6 + 1}, ValueError, r"^iterations: .*at most"
        ),
        BadInput(
            "row-marginal-zero", s.args, {**kw, "row_marginal": np.zeros(8)}, ValueError, r"\brow_marginal\b.*positive"
        ),
        BadInput(
            "col-marginal-shape",
            s.args,
            {**kw, "col_marginal": np.ones(5)},
            ValueError,
            r"\bcol_marginal\b.*broadcastable",
        ),
        BadInput(
            "col-marginal-nan", s.args, {**kw, "col_marginal": np.full(8, np.nan)}, ValueError, r"\bcol_marginal\b.*NaN"
        ),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, m = q.shape[-2], k.shape[-2]
    steps = 2 * s.kwargs.get("iterations", 3) + 1
    return lead * (2.0 * n * m * (q.shape[-1] + v.shape[-1]) + 3.0 * n * m * steps)


FORM = Form(
    name="sinkhorn",
    title="Sinkhorn attention: entropic optimal transport plan (Geometric Attention's plan regime)",
    equation=(
        r"O = \operatorname{diag}(r)^{-1} P V,\quad P = \operatorname{diag}(e^{f}) e^{\sigma QK^\top/\varepsilon}"
        r"\operatorname{diag}(e^{g}),\quad P\mathbf 1 = r,\ P^\top\mathbf 1 \to c"
    ),
    reference=sinkhorn_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("freytes2026geometric"), "abstract (plan-based anchors: entropic OT/Sinkhorn)", abstract_level=True
    ),
    status="reading",
    note=(
        "Geometric Attention (arXiv 2601.11618) names the entropic-OT/Sinkhorn anchor as a regime but, at the level "
        "read, gives no formulas; the operator is the Sinkformer construction (Sander et al. 2022, arXiv 2110.11773) "
        "in log domain: one row step, then `iterations` column+row steps, row-anchored (rows sum to 1). "
        "Marginals are normalised to sum 1 and default to uniform. Masks restrict the support; rows and columns "
        "without support are left out of the constraints. Not causal in the G3 sense even with causal=True: the "
        "column constraints couple all queries."
    ),
    order=30,
    array_args=("q", "k", "v"),
    sample=sample,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=6, d=4, d_v=3, options=(("epsilon", 0.5), ("iterations", 7))),
        Shape(batch=1, heads=2, kv_heads=2, n=5, m=7, d=3, d_v=2, options=(("iterations", 4), ("marginals", True))),
        Shape(
            batch=1, heads=1, kv_heads=1, n=7, d=5, d_v=4, options=(("epsilon", 2.0), ("iterations", 1), ("scale", 0.8))
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="two GEMMs (4·B·H·n·m·(d_k + d_v)/2) plus 3·n·m per normalisation step (1 + 2·iterations steps)",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=256, d=64, d_v=64, options=(("iterations", 5),)), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, options=(("iterations", 5),)), ("full",)),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=2048, d=128, d_v=128, options=(("iterations", 5),)),
            ("cuda",),
            frozenset({"numpy"}),
        ),
    ),
    diagnoses=sh.attention_diagnoses(sinkhorn_attention),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.sinkhorn:sinkhorn_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
