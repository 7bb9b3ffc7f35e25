"""Declaration of Agent attention (Han et al., ECCV 2024): pooled agent tokens between queries and keys."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.agent as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.agent import agent_attention
from attnlab.reference.softmax import softmax_attention

OP = "agent_attention"


def _windows(length: int, parts: int) -> list[range]:
    """Adaptive-pooling windows written from the rule ``floor(t·L/P) … ceil((t+1)·L/P) − 1``."""
    out = []
    for t in range(parts):
        start = int(np.floor(t * length / parts))
        stop = int(np.ceil((t + 1) * length / parts))
        out.append(range(start, stop))
    return out


def pooled_agents(q: np.ndarray, num_agents: int, grid: tuple[int, int] | None = None) -> np.ndarray:
    """Agent tokens by explicit averaging loops (independent of the reference's pooling)."""
    n, d = q.shape[-2], q.shape[-1]
    out = np.zeros((*q.shape[:-2], num_agents, d))
    if grid is None:
        for t, window in enumerate(_windows(n, num_agents)):
            out[..., t, :] = sum(q[..., i, :] for i in window) / len(window)
        return out
    h, w = grid
    p = math.isqrt(num_agents)
    for r, rows in enumerate(_windows(h, p)):
        for c, cols in enumerate(_windows(w, p)):
            cells = [q[..., i * w + j, :] for i in rows for j in cols]
            out[..., r * p + c, :] = sum(cells) / len(cells)
    return out


def _agents_of(s: SampleInput, q: np.ndarray) -> np.ndarray:
    kw = s.kwargs
    if kw.get("agents") is not None:
        return np.broadcast_to(kw["agents"], (*q.shape[:-2], *kw["agents"].shape[-2:]))
    return pooled_agents(q, kw.get("num_agents", module.DEFAULT_AGENTS), kw.get("grid"))


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    agents: Any = None,
    num_agents: int = 49,
    grid: tuple[int, int] | None = None,
    scale: float | None = None,
    mask: Any = None,
    agent_bias: Any = None,
    query_bias: Any = None,
) -> Any:
    """Pool by explicit window means, then the two softmax products, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    if agents is not None:
        a = T.tensor(agents, q).expand(*q.shape[:-2], -1, -1)
    elif grid is None:
        a = torch.stack([q[..., w.start : w.stop, :].mean(-2) for w in _windows(n, num_agents)], dim=-2)
    else:
        h, w = grid
        p = math.isqrt(num_agents)
        image = q.reshape(*q.shape[:-2], h, w, q.shape[-1])
        cells = [
            image[..., r.start : r.stop, c.start : c.stop, :].mean((-3, -2))
            for r in _windows(h, p)
            for c in _windows(w, p)
        ]
        a = torch.stack(cells, dim=-2)
    sigma = T.default_scale(scale, q.shape[-1])
    agg = sigma * (a @ k.transpose(-1, -2))
    if agent_bias is not None:
        agg = agg + T.tensor(agent_bias, q)
    allowed = T.visibility(a.shape[-2], m, causal=False, mask=mask, device=q.device)
    agent_values = T.masked_softmax(agg, allowed) @ v
    bcast = sigma * (q @ a.transpose(-1, -2))
    if query_bias is not None:
        bcast = bcast + T.tensor(query_bias, q)
    return torch.softmax(bcast, dim=-1) @ agent_values


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    agents: Any = None,
    num_agents: int = 49,
    grid: tuple[int, int] | None = None,
    scale: float | None = None,
    mask: Any = None,
    agent_bias: Any = None,
    query_bias: Any = None,
) -> np.ndarray:
    """Scalar loops: pooled agents, the agents' softmax over keys, the queries' softmax over agents."""
    q, k, v = sh.repeat_kv(*(np.asarray(x, dtype=np.float64) for x in (q, k, v)))
    lead, n, m = q.shape[:-2], q.shape[-2], k.shape[-2]
    a = (
        pooled_agents(q, num_agents, grid)
        if agents is None
        else np.broadcast_to(agents, (*lead, *np.shape(agents)[-2:]))
    )
    n_a = a.shape[-2]
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    vis = sh.visibility(n_a, m, False, mask, lead)
    b1 = np.zeros((*lead, n_a, m)) if agent_bias is None else np.broadcast_to(agent_bias, (*lead, n_a, m))
    b2 = np.zeros((*lead, n, n_a)) if query_bias is None else np.broadcast_to(query_bias, (*lead, n, n_a))
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        agent_values = sh.softmax_rows_loop(sigma * sh.dot_loop(a[idx], k[idx]) + b1[idx], vis[idx], v[idx])
        out[idx] = sh.softmax_rows_loop(
            sigma * sh.dot_loop(q[idx], a[idx]) + b2[idx], np.ones((n, n_a), bool), agent_values
        )
    return out


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """No causal form; a mask, when asked for, is an (agent, key) mask; ``num_agents`` follows n."""
    shape = replace(shape, causal=False)
    if "num_agents" not in shape.option_dict and "explicit_agents" not in shape.option_dict:
        shape = shape.with_options(num_agents=1 + shape.n // 3)
    return shape


def sample(seed: int, shape: Shape) -> SampleInput:
    """``(q, k, v)``; options ``num_agents``, ``grid``, ``scale``; ``biased`` draws ``B_1, B_2``;
    ``explicit_agents = n_a`` passes random agents; ``masked`` draws an (agent, key) mask with an empty agent."""
    rng = np.random.default_rng(seed)
    q, k, v = sh.qkv(rng, shape)
    extra = cat.rng_for(seed, 17)
    options = shape.option_dict
    biased = options.pop("biased", False)
    explicit = options.pop("explicit_agents", None)
    kwargs: dict[str, Any] = dict(options)
    if explicit is not None:
        kwargs["agents"] = extra.standard_normal((shape.batch, shape.heads, explicit, shape.d))
    n_a = explicit if explicit is not None else kwargs.get("num_agents", module.DEFAULT_AGENTS)
    lead = (shape.batch, shape.heads)
    if shape.masked:
        allowed = extra.random((n_a, shape.keys)) < 0.7
        if n_a > 2:
            allowed[n_a // 2] = False
        kwargs["mask"] = allowed
    if biased:
        kwargs["agent_bias"] = 0.5 * extra.standard_normal((*lead, n_a, shape.keys))
        kwargs["query_bias"] = 0.5 * extra.standard_normal((*lead, shape.n, n_a))
    return SampleInput((q, k, v), kwargs, shape.label())


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = sh.positive_scale(draw, shape)
    if draw(st.booleans()):
        options["explicit_agents"] = draw(st.integers(1, 6))
    else:
        options["num_agents"] = draw(st.integers(1, shape.n + 3))
    if draw(st.booleans()):
        options["biased"] = True
    return options


SHAPES = st.builds(adapt, sh.attention_shapes(causal=False, options=_options))


def _unbiased(s: SampleInput) -> bool:
    return s.kwargs.get("agent_bias") is None and s.kwargs.get("query_bias") is None


def _agent_count(s: SampleInput) -> int:
    if s.kwargs.get("agents") is not None:
        return int(s.kwargs["agents"].shape[-2])
    return int(s.kwargs.get("num_agents", module.DEFAULT_AGENTS))


# ---------------------------------------------------------------------------------------------
# invariants


def _two_hop_softmax(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    qe, ke, ve = sh.repeat_kv(q, k, v)
    agents = _agents_of(s, qe)
    opts = {"scale": s.kwargs["scale"]} if "scale" in s.kwargs else {}
    agent_values = softmax_attention(agents, ke, ve, mask=s.kwargs.get("mask"), **opts)
    want = softmax_attention(qe, agents, agent_values, **opts)
    sh.close("agent attention vs softmax(σQAᵀ)·softmax(σAKᵀ)V", s.call(ops.agent_attention), want)


def _rows_sum_to_one(ops: Any, s: SampleInput) -> None:
    q, k, _ = s.args
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m), (*k.shape[:-2], m, m))
    weights = s.with_args(q, k, identity).call(ops.agent_attention)
    assert np.all(weights >= 0), "negative weight in φ_q(Q) φ_k(K)ᵀ"
    sh.close("row sums of φ_q(Q) φ_k(K)ᵀ", weights.sum(-1), np.ones(weights.shape[:-1]))


def _convex_hull(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    ve = sh.repeat_kv(q, k, v)[2]
    out = s.call(ops.agent_attention)
    vis = sh.visibility(_agent_count(s), k.shape[-2], False, s.kwargs.get("mask"))
    seen = np.any(vis, axis=0)
    if not seen.any():
        assert np.all(out == 0.0), "no agent sees a key, yet the output is not zero"
        return
    lo = np.min(np.where(seen[:, None], ve, np.inf), axis=-2, keepdims=True)
    hi = np.max(np.where(seen[:, None], ve, -np.inf), axis=-2, keepdims=True)
    if not np.all(np.any(vis, axis=1)):  # an agent that sees no key carries 0
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    tol = 1e-12 * (1 + np.abs(ve).max())
    inside = (out >= lo - tol) & (out <= hi + tol)
    assert np.all(inside), f"output left the hull of the visible values at {np.argwhere(~inside)[0].tolist()}"


def _single_agent(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    one = SampleInput(s.args, {key: val for key, val in s.kwargs.items() if key in ("scale",)}, s.label)
    out = one.with_args(q, k, v, num_agents=1).call(ops.agent_attention)
    qe, ke, ve = sh.repeat_kv(q, k, v)
    mean_query = qe.mean(axis=-2, keepdims=True)
    opts = {"scale": s.kwargs["scale"]} if "scale" in s.kwargs else {}
    want = np.broadcast_to(softmax_attention(mean_query, ke, ve, **opts), out.shape)
    sh.close("one agent: every query gets softmax(σ q̄ Kᵀ) V", out, want)


def _key_permutation(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    perm = np.random.default_rng(2).permutation(k.shape[-2])
    kw = dict(s.kwargs)
    if kw.get("mask") is not None:
        kw["mask"] = kw["mask"][..., perm]
    if kw.get("agent_bias") is not None:
        kw["agent_bias"] = kw["agent_bias"][..., perm]
    permuted = SampleInput((q, k[..., perm, :], v[..., perm, :]), kw, s.label)
    sh.close("output after permuting keys/values", permuted.call(ops.agent_attention), s.call(ops.agent_attention))


# ---------------------------------------------------------------------------------------------
# mutants


def _first_query_pool(original: Any) -> Any:
    def pool(q: np.ndarray, num_agents: int, grid: Any = None) -> np.ndarray:
        pooled = original(q, num_agents, grid)
        if grid is None:
            starts = [a for a, _ in module.segments(q.shape[-2], num_agents)]
            pooled = q[..., starts, :]
        return pooled

    return pool


def _aggregate_without_scale(original: Any) -> Any:
    def unscaled(
        agents: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, bias: Any, allowed: np.ndarray
    ) -> np.ndarray:
        return original(agents, k, v, 1.0, bias, allowed)

    return unscaled


def _broadcast_over_keys(original: Any) -> Any:
    def skip(q: np.ndarray, agents: np.ndarray, agent_values: np.ndarray, sigma: float, bias: Any) -> np.ndarray:
        out = original(q, agents, agent_values, sigma, bias)
        return out + 1e-6 * (q[..., :1] - q[..., :1].mean(axis=-2, keepdims=True))

    return skip


def _aggregate_sums(original: Any) -> Any:
    def summed(
        agents: np.ndarray, k: np.ndarray, v: np.ndarray, sigma: float, bias: Any, allowed: np.ndarray
    ) -> np.ndarray:
        return original(agents, k, v, sigma, bias, allowed) * np.broadcast_to(
            allowed, (*agents.shape[:-1], k.shape[-2])
        ).sum(-1, keepdims=True)

    return summed


def _unnormalised(original: Any) -> Any:
    def slack(x: np.ndarray, allowed: np.ndarray, axis: int = -1) -> np.ndarray:
        return original(x, allowed, axis) * (1.0 - 1e-6)

    return slack


def _drops_last_key(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, *, mask: Any = None, **kw: Any) -> Any:
        m = np.shape(k)[-2]
        if m < 2:
            return original(q, k, v, mask=mask, **kw)
        keep = np.ones((1, m), dtype=bool)
        keep[0, -1] = False
        return original(q, k, v, mask=keep if mask is None else keep & mask, **kw)

    return mutated


MUTANTS = (
    sh.interleaved_gqa(OP, (1, 2)),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.output_nudged(OP),
    Mutant(
        "first_query_pool",
        "each agent is the first query of its window instead of the window mean",
        {"pool_agents": _first_query_pool},
    ),
    Mutant("aggregate_without_scale", "the agent aggregation softmax drops σ", {"aggregate": _aggregate_without_scale}),
    Mutant(
        "query_dependent_offset", "the broadcast adds a tiny query-dependent term", {"broadcast": _broadcast_over_keys}
    ),
    Mutant("unnormalised", "softmax weights scaled by 1 − 1e-6", {"masked_softmax": _unnormalised}),
    Mutant(
        "aggregate_sums",
        "agent values are sums of the weighted values times the key count",
        {"aggregate": _aggregate_sums},
    ),
    Mutant("drops_last_key", "the last key never contributes (a dropped partial tile)", {OP: _drops_last_key}),
)

INVARIANTS = (
    Invariant(
        "two_hop_softmax",
        "without biases, agent attention is softmax(σQAᵀ)·(softmax(σAKᵀ)V) by attnlab.reference.softmax, "
        "with agents pooled by explicit window means",
        _two_hop_softmax,
        (
            "first_query_pool",
            "aggregate_without_scale",
            "wrong_scale",
            "ignores_mask",
            "query_dependent_offset",
            "aggregate_sums",
        ),
        _unbiased,
    ),
    Invariant(
        "rows_sum_to_one",
        "the generalised linear weights φ_q(Q)φ_k(K)ᵀ (output for V = I) are >= 0 and rows sum to 1 (no mask)",
        _rows_sum_to_one,
        ("unnormalised",),
        lambda s: s.kwargs.get("mask") is None,
    ),
    Invariant(
        "convex_hull",
        "each output coordinate lies in the hull of the values seen by some agent (and 0)",
        _convex_hull,
        ("aggregate_sums",),
    ),
    Invariant(
        "single_agent_constant",
        "with one agent every query returns softmax(σ q̄ Kᵀ) V, q̄ the mean query",
        _single_agent,
        ("first_query_pool", "query_dependent_offset"),
    ),
    Invariant(
        "key_permutation",
        "jointly permuting keys, values, mask and bias columns leaves the output unchanged",
        _key_permutation,
        ("drops_last_key",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=(
            "first_query_pool",
            "aggregate_without_scale",
            "wrong_scale",
            "ignores_mask",
            "output_nudged",
            "drops_last_key",
        ),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, adapt(Shape(n=6, m=7)))
    q, k, v = s.args
    kw = s.kwargs
    n_a = kw["num_agents"]
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(s, ("scale", "mask")),
        BadInput("k-head-dim", (q, k[..., :-1], v), kw, ValueError, r"\bk\b.*d_k"),
        BadInput("kv-length-mismatch", (q, k, np.concatenate([v, v], -2)), kw, ValueError, r"\bk\b.*\bv\b"),
        BadInput("num-agents-zero", s.args, {**kw, "num_agents": 0}, ValueError, r"\bnum_agents\b.*positive"),
        BadInput("num-agents-float", s.args, {**kw, "num_agents": 2.5}, TypeError, r"\bnum_agents\b"),
        BadInput(
            "grid-wrong-size", s.args, {**kw, "grid": (2, 2), "num_agents": 4}, ValueError, r"\bgrid\b.*\b6\b.*= 4$"
        ),
        BadInput("grid-zero-rows", s.args, {**kw, "grid": (0, 6), "num_agents": 4}, TypeError, r"\bgrid\b.*positive"),
        BadInput("grid-negative", s.args, {**kw, "grid": (-2, -3), "num_agents": 4}, TypeError, r"\bgrid\b.*positive"),
        BadInput("grid-floats", s.args, {**kw, "grid": (2.0, 3.0), "num_agents": 4}, TypeError, r"\bgrid\b.*ints"),
        BadInput("grid-three-sizes", s.args, {**kw, "grid": (2, 3, 1), "num_agents": 4}, TypeError, r"\bgrid\b.*pair"),
        BadInput(
            "grid-not-square-agents",
            s.args,
            {**kw, "grid": (2, 3), "num_agents": 3},
            ValueError,
            r"\bnum_agents\b.*square",
        ),
        BadInput("grid-string", s.args, {**kw, "grid": "2x3"}, TypeError, r"\bgrid\b"),
        BadInput(
            "agents-head-dim", s.args, {"agents": np.ones((1, 1, 2, q.shape[-1] + 1))}, ValueError, r"\bagents\b.*d_k"
        ),
        BadInput(
            "agents-with-num-agents",
            s.args,
            {"agents": np.ones((2, q.shape[-1])), "num_agents": 2},
            ValueError,
            r"\bagents\b",
        ),
        BadInput(
            "agents-lead-mismatch",
            (q[0], k[0], v[0]),
            {"agents": np.ones((3, 2, q.shape[-1]))},
            ValueError,
            rf"\bagents\b.*leading.*of q \({q.shape[1]},\), got shape \(3, 2, {q.shape[-1]}\)",
        ),
        BadInput("agents-nan", s.args, {"agents": np.full((2, q.shape[-1]), np.nan)}, ValueError, r"\bagents\b.*NaN"),
        BadInput(
            "agent-bias-shape",
            s.args,
            {**kw, "agent_bias": np.zeros((n_a + 1, k.shape[-2]))},
            ValueError,
            r"\bagent_bias\b.*shape",
        ),
        BadInput(
            "query-bias-shape",
            s.args,
            {**kw, "query_bias": np.zeros((q.shape[-2], n_a + 1))},
            ValueError,
            r"\bquery_bias\b.*shape",
        ),
        BadInput(
            "query-bias-int",
            s.args,
            {**kw, "query_bias": np.zeros((q.shape[-2], n_a), int)},
            TypeError,
            r"\bquery_bias\b.*dtype",
        ),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = int(np.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])))
    n_a, n, m = _agent_count(s), q.shape[-2], k.shape[-2]
    return 2.0 * lead * (n_a * m * (q.shape[-1] + v.shape[-1]) + n * n_a * (q.shape[-1] + v.shape[-1]))


FORM = Form(
    order=17,
    name="agent",
    title="Agent attention (pooled agent tokens aggregate, then broadcast)",
    equation=(
        r"O = \operatorname{softmax}(\sigma Q A^\top + B_2)\,\operatorname{softmax}(\sigma A K^\top + B_1)\,V,"
        r"\quad A = \operatorname{pool}(Q)"
    ),
    reference=agent_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("han2024agent"), "§3.2, Eq. (3)–(4); code agent_deit.py::AgentAttention"),
    status="exact",
    note=(
        "Agents are the queries average-pooled to n_a tokens (1-d adaptive pooling along the tokens, or the "
        "code's AdaptiveAvgPool2d over an (h, w) grid), or passed explicitly. The code's interpolated position "
        "biases enter as additive agent_bias/query_bias arrays; its depthwise convolution on V (added to the "
        "output) and class-token handling are layers around the operator, not part of it. No causal form: "
        "pooling mixes every query; the mask is an (agent, key) mask. Not permutation-equivariant in the queries."
    ),
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=12, m=9, d=4, d_v=3, options=(("grid", (3, 4)), ("num_agents", 4))),
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=7,
            m=10,
            d=5,
            d_v=2,
            masked=True,
            options=(("biased", True), ("num_agents", 3)),
        ),
        Shape(batch=2, heads=2, kv_heads=2, n=6, m=6, d=3, d_v=4, options=(("explicit_agents", 4), ("scale", 0.6))),
        Shape(batch=1, heads=2, kv_heads=2, n=9, m=5, d=4, d_v=3, options=(("num_agents", 1),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="four GEMMs per head: 2·B·H·(n_a·m + n·n_a)·(d_k + d_v)",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, options=(("num_agents", 4),)), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, options=(("num_agents", 49),)), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64, options=(("num_agents", 49),)), ("full",)),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=16384, d=64, d_v=64, options=(("num_agents", 64),)), ("cuda",)
        ),
    ),
    diagnoses=(),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.agent:agent_attention",
            "numpy",
            supports=_unbiased,
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.agent:agent_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
