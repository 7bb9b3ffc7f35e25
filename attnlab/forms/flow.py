"""Declaration of Flow-Attention (Flowformer, Wu et al., ICML 2022): conserved flows, competition, allocation."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st
from scipy.special import expit

import attnlab.reference.flow as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape, Tolerance
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.flow import flow_attention
from attnlab.reference.linear import linear_attention

OP = "flow_attention"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logistic(x: np.ndarray) -> np.ndarray:
    """The logistic function from SciPy, apart from the reference's (a feature map for linear attention)."""
    return np.asarray(expit(np.asarray(x)))


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    eps: float = 0.0,
    clamp: float | None = None,
    competition: bool = True,
    allocation: bool = True,
    form: str = "linear_time",
) -> Any:
    """The quadratic form in torch: explicit ``n × m`` flow matrices, their row and column sums."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    fq, fk = torch.sigmoid(q), torch.sigmoid(k)
    n, m = fq.shape[-2], fk.shape[-2]
    keep = T.visibility(n, m, causal=causal, mask=None, device=q.device).to(q.dtype)
    rows = (
        torch.arange(1, n + 1, dtype=q.dtype, device=q.device)
        if causal
        else torch.ones(n, dtype=q.dtype, device=q.device)
    )
    cols = (
        torch.arange(1, m + 1, dtype=q.dtype, device=q.device)
        if causal
        else torch.ones(m, dtype=q.dtype, device=q.device)
    )
    sink_flow = keep * ((fq + eps) @ fk.transpose(-1, -2))
    source_flow = (keep if causal else 1.0) * ((fk + eps) @ fq.transpose(-1, -2))  # (m, n); causal has n = m
    pad_q, pad_k = eps * (fq + eps).sum(-1), eps * (fk + eps).sum(-1)
    incoming = (sink_flow.sum(-1) + pad_q) / rows
    outgoing = (source_flow.sum(-1) + pad_k) / cols
    sink = ((sink_flow / outgoing[..., None, :]).sum(-1) + pad_q) / rows
    source = ((source_flow / incoming[..., None, :]).sum(-1) + pad_k) / cols
    if clamp is not None:
        source = source.clamp(-clamp, clamp)
    if causal:
        weights_c = torch.exp(source - torch.logcumsumexp(source, dim=-1)) * cols
        alloc = torch.sigmoid(sink)
    else:
        weights_c = torch.softmax(source, dim=-1) * m
        alloc = torch.sigmoid(sink * (n / m))
    values = v * weights_c[..., None] if competition else v
    out = (keep * (fq @ fk.transpose(-1, -2))) @ values / (incoming * rows)[..., None]
    return out * alloc[..., None] if allocation else out


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    eps: float = 0.0,
    clamp: float | None = None,
    competition: bool = True,
    allocation: bool = True,
    form: str = "linear_time",
) -> np.ndarray:
    """Scalar loops over sinks and sources, the flows written out entry by entry."""
    q, k, v = sh.repeat_kv(*(np.asarray(x, dtype=np.float64) for x in (q, k, v)))
    lead, n, m, d = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1]
    out = np.zeros((*lead, n, v.shape[-1]))
    for idx in np.ndindex(*lead):
        fq = [[_sigmoid(x) for x in row] for row in q[idx]]
        fk = [[_sigmoid(x) for x in row] for row in k[idx]]

        def seen(i: int) -> range:  # the sources sink i sees
            return range(i + 1) if causal else range(m)

        def feeds(j: int) -> range:  # the sinks source j reaches
            return range(j + 1) if causal else range(n)

        def count(i: int) -> float:
            return float(i + 1) if causal else 1.0

        def dot_eps(a: list[float], b: list[float]) -> float:
            return sum((a[t] + eps) * (b[t] + eps) for t in range(d))

        inc = [dot_eps(fq[i], [sum(fk[j][t] for j in seen(i)) for t in range(d)]) / count(i) for i in range(n)]
        outg = [dot_eps(fk[j], [sum(fq[i][t] for i in feeds(j)) for t in range(d)]) / count(j) for j in range(m)]
        sink = [
            dot_eps(fq[i], [sum(fk[j][t] / outg[j] for j in seen(i)) for t in range(d)]) / count(i) for i in range(n)
        ]
        source = [
            dot_eps(fk[j], [sum(fq[i][t] / inc[i] for i in feeds(j)) for t in range(d)]) / count(j) for j in range(m)
        ]
        if clamp is not None:
            source = [min(max(x, -clamp), clamp) for x in source]
        if causal:
            peaks = [max(source[: j + 1]) for j in range(m)]
            comp = [
                (j + 1) * math.exp(source[j] - peaks[j]) / sum(math.exp(source[t] - peaks[j]) for t in range(j + 1))
                for j in range(m)
            ]
            alloc = [_sigmoid(x) for x in sink]
        else:
            peak = max(source)
            total = sum(math.exp(x - peak) for x in source)
            comp = [m * math.exp(x - peak) / total for x in source]
            alloc = [_sigmoid(x * n / m) for x in sink]
        for i in range(n):
            for c in range(v.shape[-1]):
                acc = sum(
                    sum(fq[i][t] * fk[j][t] for t in range(d)) * (comp[j] if competition else 1.0) * v[idx][j, c]
                    for j in seen(i)
                )
                out[idx][i, c] = acc / (inc[i] * count(i)) * (alloc[i] if allocation else 1.0)
    return out


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """No mask; causal needs one token set (``m = n``)."""
    shape = replace(shape, masked=False)
    return replace(shape, m=None) if shape.causal else shape


def sample(seed: int, shape: Shape) -> SampleInput:
    rng = np.random.default_rng(seed)
    return SampleInput(sh.qkv(rng, shape), {"causal": shape.causal, **shape.option_dict}, shape.label())


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["eps"] = draw(st.sampled_from([1e-6, 0.1]))
    if draw(st.booleans()):
        options["clamp"] = draw(st.sampled_from([1.0, 0.3]))
    if draw(st.integers(0, 3)) == 0:
        options["competition"] = False
    if draw(st.integers(0, 3)) == 0:
        options["allocation"] = False
    if draw(st.booleans()):
        options["form"] = "quadratic"
    return options


SHAPES = st.builds(adapt, sh.attention_shapes(masks=False, options=_options))


def _is_causal(s: SampleInput) -> bool:
    return bool(s.kwargs.get("causal"))


# ---------------------------------------------------------------------------------------------
# invariants


def _linear_equals_quadratic(ops: Any, s: SampleInput) -> None:
    kw = {key: val for key, val in s.kwargs.items() if key != "form"}
    q, k, v = s.args
    linear = ops.flow_attention(q, k, v, form="linear_time", **kw)
    sh.close("linear-time form vs quadratic form", linear, ops.flow_attention(q, k, v, form="quadratic", **kw))
    flows = {key: kw[key] for key in ("causal", "eps", "clamp") if key in kw}
    for name, a, b in zip(
        module.FlowParts._fields, ops.flow_parts(q, k, **flows), ops.flow_parts(q, k, form="quadratic", **flows)
    ):
        sh.close(f"{name}, linear vs quadratic", a, b)


def _conserved_flow(ops: Any, s: SampleInput) -> None:
    """ε = 0: every sink receives unit flow (Σ_j φ(q_i)·φ(k_j)/I_i = 1), the competition spends exactly m
    (causally: (t+1)·share of the prefix), the allocation is a logistic in [0, 1]."""
    q, k, _ = s.args
    causal = _is_causal(s)
    kw = {"causal": causal, "clamp": s.kwargs.get("clamp")}
    ones = np.ones((*k.shape[:-1], 1))
    unit = ops.flow_attention(q, k, ones, eps=0.0, competition=False, allocation=False, **kw)
    sh.close("incoming flow of every sink (V = 1, no competition or allocation)", unit, np.ones_like(unit))
    parts = ops.flow_parts(q, k, eps=0.0, **kw)
    m = k.shape[-2]
    if causal:
        source = parts.conserved_source
        want = np.empty_like(source)
        peak, acc = np.full(source.shape[:-1], -np.inf), np.zeros(source.shape[:-1])
        for t in range(m):  # an online (running max) share of the prefix
            new_peak = np.maximum(peak, source[..., t])
            acc = acc * np.exp(peak - new_peak) + np.exp(source[..., t] - new_peak)
            want[..., t] = (t + 1) * np.exp(source[..., t] - new_peak) / acc
            peak = new_peak
        sh.close("causal competition (t+1)·e^{Ô_t}/Σ_{j<=t} e^{Ô_j}", parts.competition, want)
        sh.close("first source's competition", parts.competition[..., 0], np.ones(parts.competition.shape[:-1]))
    else:
        sh.close("Σ_j competition_j = m", parts.competition.sum(-1), np.full(parts.competition.shape[:-1], float(m)))
    assert np.all((parts.allocation >= 0) & (parts.allocation <= 1)), "allocation outside [0, 1]"
    ratio = 1.0 if causal else q.shape[-2] / m
    sh.close("allocation vs logistic(Î·n/m)", parts.allocation, _logistic(parts.conserved_sink * ratio))


def _flows_by_definition(ops: Any, s: SampleInput) -> None:
    """``I_i = (φ(q_i) + ε)·(S_k + ε)`` and ``O_j = (φ(k_j) + ε)·(S_q + ε)`` with SciPy's logistic as φ; causally
    the sums are prefix sums and each flow is divided by its position count ``t + 1``."""
    q, k, _ = s.args
    flows = {key: s.kwargs[key] for key in ("causal", "eps", "clamp", "form") if key in s.kwargs}
    parts = ops.flow_parts(q, k, **flows)
    fq, fk = (_logistic(x) for x in sh.repeat_kv(q, k))
    eps = s.kwargs.get("eps", 0.0)
    if _is_causal(s):
        sum_q, sum_k, count = np.cumsum(fq, -2), np.cumsum(fk, -2), np.arange(1, fq.shape[-2] + 1)
    else:
        sum_q, sum_k, count = fq.sum(-2, keepdims=True), fk.sum(-2, keepdims=True), np.ones(1)
    sh.close("incoming flow I", parts.incoming, np.sum((fq + eps) * (sum_k + eps), -1) / count)
    sh.close("outgoing flow O", parts.outgoing, np.sum((fk + eps) * (sum_q + eps), -1) / count)


def _reduces_to_linear_attention(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    causal = _is_causal(s)
    got = ops.flow_attention(q, k, v, causal=causal, eps=0.0, competition=False, allocation=False)
    want = linear_attention(q, k, v, feature_map=_logistic, eps=0.0, causal=causal)
    sh.close("no competition, no allocation, ε = 0 vs linear attention with φ = sigmoid", got, want)


def _key_permutation(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    perm = np.random.default_rng(2).permutation(k.shape[-2])
    sh.close(
        "output after permuting sources",
        s.with_args(q, k[..., perm, :], v[..., perm, :]).call(ops.flow_attention),
        s.call(ops.flow_attention),
    )


def _query_permutation(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    perm = np.random.default_rng(3).permutation(q.shape[-2])
    sh.close(
        "output after permuting sinks",
        s.with_args(q[..., perm, :], k, v).call(ops.flow_attention),
        s.call(ops.flow_attention)[..., perm, :],
    )


# ---------------------------------------------------------------------------------------------
# mutants


def _exclusive_prefix(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, values: np.ndarray, causal: bool) -> np.ndarray:
        out = original(fq, fk, values, causal)
        if not causal:
            return out
        return out - np.einsum("...td,...td,...tc->...tc", fq, fk, values)

    return mutated


def _leaky_prefix(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, values: np.ndarray, causal: bool) -> np.ndarray:
        out = original(fq, fk, values, causal)
        if not causal or fq.shape[-2] < 2:
            return out
        ahead = np.einsum("...td,...td,...tc->...tc", fq[..., :-1, :], fk[..., 1:, :], values[..., 1:, :])
        return np.concatenate([out[..., :-1, :] + ahead, out[..., -1:, :]], axis=-2)  # key t + 1 leaks into t

    return mutated


def _drops_last_source(original: Any) -> Any:
    def mutated(q: Any, k: Any, v: Any, **kw: Any) -> Any:
        v = np.array(v, dtype=float)
        v[..., -1, :] = 0.0  # the last source's value never arrives (a dropped partial tile)
        return original(q, k, v, **kw)

    return mutated


def _mean_incoming(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, eps: float, causal: bool) -> tuple[np.ndarray, ...]:
        incoming, outgoing, sink, source = original(fq, fk, eps, causal)
        return incoming * fk.shape[-2] / (fk.shape[-2] + 1), outgoing, sink, source

    return mutated


def _outgoing_from_keys(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, eps: float, causal: bool) -> tuple[np.ndarray, ...]:
        incoming, _, sink, source = original(fq, fk, eps, causal)
        total = np.cumsum(fk, axis=-2) if causal else fk.sum(axis=-2, keepdims=True)
        count = np.arange(1, fk.shape[-2] + 1) if causal else 1.0
        return incoming, np.sum((fk + eps) * (total + eps), axis=-1) / count, sink, source

    return mutated


def _competition_unscaled(original: Any) -> Any:
    def mutated(source: np.ndarray, causal: bool) -> np.ndarray:
        return original(source, causal) / source.shape[-1]

    return mutated


def _allocation_unbounded(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, eps: float, clamp: Any, causal: bool, form: str) -> Any:
        parts = original(fq, fk, eps, clamp, causal, form)
        return parts._replace(allocation=parts.conserved_sink * (1.0 if causal else fq.shape[-2] / fk.shape[-2]))

    return mutated


def _steep_feature(original: Any) -> Any:
    def mutated(x: np.ndarray) -> np.ndarray:
        return original(1.5 * x)

    return mutated


def _quadratic_pad_missing(original: Any) -> Any:
    def mutated(fq: np.ndarray, fk: np.ndarray, eps: float, causal: bool) -> tuple[np.ndarray, ...]:
        return original(fq, fk, 0.0, causal)

    return mutated


MUTANTS = (
    sh.interleaved_gqa(OP, (1, 2)),
    sh.output_nudged(OP),
    Mutant(
        "exclusive_prefix",
        "the causal linear product leaves out the diagonal key j = i",
        {"linear_product": _exclusive_prefix},
    ),
    Mutant("drops_last_source", "the last source's value never arrives", {OP: _drops_last_source}),
    Mutant("leaky_prefix", "the causal linear product also sees key t + 1", {"linear_product": _leaky_prefix}),
    Mutant("mean_incoming", "the incoming flow uses m/(m+1) of the key sum", {"linear_flows": _mean_incoming}),
    Mutant(
        "outgoing_from_keys",
        "the outgoing flow sums the keys' features (S_k) where it should sum the queries' (S_q)",
        {"linear_flows": _outgoing_from_keys},
    ),
    Mutant(
        "competition_unscaled",
        "the competition is softmax(Ô) without the factor m (or t+1)",
        {"competition_weights": _competition_unscaled},
    ),
    Mutant(
        "allocation_unbounded",
        "the allocation is Î·n/m itself, without the sigmoid",
        {"flow_quantities": _allocation_unbounded},
    ),
    Mutant("steep_feature", "φ(x) = sigmoid(1.5 x) instead of sigmoid(x)", {"sigmoid": _steep_feature}),
    Mutant(
        "quadratic_eps_dropped", "the quadratic form's flow sums drop ε", {"quadratic_flows": _quadratic_pad_missing}
    ),
)

INVARIANTS = (
    Invariant(
        "linear_equals_quadratic",
        "the linear-time evaluation equals the quadratic one that materialises the flow matrices (and their parts)",
        _linear_equals_quadratic,
        ("exclusive_prefix", "leaky_prefix", "mean_incoming", "quadratic_eps_dropped"),
    ),
    Invariant(
        "conserved_flow",
        "ε = 0: each sink receives unit incoming flow, the competition spends m (causally (t+1)·prefix share), "
        "and the allocation is the logistic of Î·n/m (Î alone causally), in [0, 1]",
        _conserved_flow,
        ("mean_incoming", "competition_unscaled", "allocation_unbounded"),
    ),
    Invariant(
        "flows_by_definition",
        "the incoming and outgoing flows are (φ(q_i) + ε)·(S_k + ε) and (φ(k_j) + ε)·(S_q + ε), prefix sums over "
        "the position count t + 1 when causal",
        _flows_by_definition,
        ("outgoing_from_keys", "mean_incoming"),
    ),
    Invariant(
        "reduces_to_linear_attention",
        "without competition and allocation, ε = 0: linear attention with φ = sigmoid (attnlab.reference.linear)",
        _reduces_to_linear_attention,
        ("steep_feature", "mean_incoming", "exclusive_prefix"),
    ),
    sh.causal_prefix(
        OP,
        [0],
        [1, 2],
        mutants=("leaky_prefix",),
        force_causal=False,
        applies=lambda s: _is_causal(s) and s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "key_permutation",
        "non-causal: permuting sources (keys with their values) leaves the output unchanged",
        _key_permutation,
        ("drops_last_source",),
        lambda s: not _is_causal(s) and s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "query_permutation",
        "non-causal: permuting sinks permutes the outputs",
        _query_permutation,
        ("output_nudged",),
        lambda s: not _is_causal(s) and s.args[0].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP,
        brute_force,
        mutants=(
            "output_nudged",
            "competition_unscaled",
            "steep_feature",
            "mean_incoming",
            "exclusive_prefix",
            "allocation_unbounded",
        ),
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=5, m=6))
    q, k, v = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        BadInput("k-head-dim", (q, k[..., :-1], v), kw, ValueError, r"\bk\b.*d_k"),
        BadInput("kv-length-mismatch", (q, k, np.concatenate([v, v], -2)), kw, ValueError, r"\bk\b.*\bv\b"),
        BadInput("causal-n-ne-m", s.args, {**kw, "causal": True}, ValueError, r"\bq/k\b.*causal"),
        # no batch axis: (H, n, d) against (H, m, d), so a message reading another axis shows d or H
        BadInput("causal-n-ne-m-unbatched", (q[0], k[0], v[0]), {**kw, "causal": True}, ValueError, r"n=5, m=6"),
        BadInput("causal-string", s.args, {**kw, "causal": "yes"}, TypeError, r"\bcausal\b"),
        BadInput("eps-negative", s.args, {**kw, "eps": -1e-6}, ValueError, r"\beps\b"),
        BadInput("eps-bool", s.args, {**kw, "eps": True}, ValueError, r"\beps\b"),
        BadInput("clamp-zero", s.args, {**kw, "clamp": 0.0}, ValueError, r"\bclamp\b"),
        BadInput("clamp-string", s.args, {**kw, "clamp": "1"}, ValueError, r"\bclamp\b"),
        BadInput("competition-int", s.args, {**kw, "competition": 1}, TypeError, r"\bcompetition\b"),
        BadInput("allocation-int", s.args, {**kw, "allocation": 1}, TypeError, r"\ballocation\b"),
        BadInput("form-unknown", s.args, {**kw, "form": "chunked"}, ValueError, r"\bform\b"),
        BadInput("mask-not-taken", s.args, {**kw, "mask": np.ones((5, 6), bool)}, TypeError, r"\bmask\b"),
    ]


def _flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = int(np.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])))
    n, m, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    return 2.0 * lead * (m * d * dv + n * d * dv) + 8.0 * lead * (n + m) * d


FORM = Form(
    order=18,
    name="flow",
    title="Flow-Attention (Flowformer: conserved flows with competition and allocation)",
    equation=(
        r"o_i = \sigma\!\left(\hat I_i \tfrac{n}{m}\right) \sum_j \frac{\phi(q_i)\cdot\phi(k_j)}{I_i}\,"
        r"\big(m\operatorname{softmax}(\hat O)\big)_j v_j,\quad \phi = \operatorname{sigmoid}"
    ),
    reference=flow_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("wu2022flowformer"), "§3, Flow-Attention; code Flow_Attention.py"),
    status="exact",
    note=(
        "The paper's equations have no ε and no clamp (defaults eps=0, clamp=None); the released code adds "
        "ε = 1e-6 inside the flow sums and clamps Ô to [−1, 1] (eps=1e-6, clamp=1.0 reproduce it). Causal: "
        "the code's position-count normalisation, competition normalised by each source's own prefix, "
        "allocation without n/m. No mask; causal needs n = m."
    ),
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=2, kv_heads=1, n=7, d=4, d_v=3, causal=True, options=(("clamp", 1.0), ("eps", 1e-6))),
        Shape(batch=1, heads=4, kv_heads=2, n=6, m=9, d=5, d_v=2, options=(("clamp", 1.0), ("eps", 1e-6))),
        Shape(batch=2, heads=2, kv_heads=2, n=8, m=5, d=3, d_v=4, options=(("competition", False), ("eps", 0.2))),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=6,
            d=4,
            d_v=3,
            causal=True,
            options=(("allocation", False), ("form", "quadratic")),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=_flops,
    flop_convention="linear form: 2·B·H·(m + n)·d·d_v for the two products, 8·B·H·(n + m)·d for the flows",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=1, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64), ("full",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64, causal=True), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=16384, d=64, d_v=64), ("cuda",)),
    ),
    fast_paths=(
        FastPath(
            "numba",
            "attnlab.fastpath.numba.flow:flow_attention",
            "numpy",
            tiles=(64,),
        ),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.flow:flow_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
            tolerance=Tolerance(
                floors={"float64": 1e-8},
                reason=(
                    "float64 gradients on the saturated large-value sample (|q|, |k| ~ 50: sigmoid features at "
                    "1 − 1e-22, incoming flows ~1e-8, Ô ~ 1e7) are cancellation noise in every evaluation order: the "
                    "quadratic oracle and the linear path differ by 1e-8 relative there, while a float64 central "
                    "difference of either output is exactly 0"
                ),
            ),
        ),
    ),
)
