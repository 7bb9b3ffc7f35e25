"""Declaration of BASED: Taylor-feature linear attention and sliding-window attention (Arora et al. 2024)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.based as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.based import FORMS, LAYOUTS, based_attention
from attnlab.reference.gna import gna_attention
from attnlab.reference.linear import linear_attention
from attnlab.reference.softmax import softmax_attention

OP = "based_attention"


def taylor_map(x: np.ndarray) -> np.ndarray:
    """``[1, x/d^{1/4}, (x_a x_b)_{a,b}/(√2 √d)]`` written again from the definition."""
    d = x.shape[-1]
    pairs = np.einsum("...a,...b->...ab", x, x).reshape(*x.shape[:-1], d * d)
    return np.concatenate([np.ones((*x.shape[:-1], 1)), x * d**-0.25, pairs / math.sqrt(2 * d)], axis=-1)


def _is_window(s: SampleInput) -> bool:
    return s.kwargs.get("layer", "linear") == "window"


def _is_linear(s: SampleInput) -> bool:
    return not _is_window(s)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    layer: str = "linear",
    causal: bool = True,
    eps: float = 1e-12,
    window: int | None = None,
    scale: float | None = None,
    mask: Any = None,
    **_: Any,
) -> Any:
    """The linear layer's kernel ``1 + s + s²/2`` or the window layer's banded softmax, materialised in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n, m = q.shape[-2], k.shape[-2]
    if layer == "linear":
        s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        kernel = 1 + s + s * s / 2
        if causal:
            kernel = kernel * T.visibility(n, m, causal=True, mask=None, device=q.device)
        return (kernel @ v) / (kernel.sum(-1, keepdim=True) + eps)
    width = 64 if window is None else window
    i = torch.arange(n, device=q.device)[:, None] + (m - n)
    j = torch.arange(m, device=q.device)[None, :]
    allowed = (j <= i) & (j > i - width)
    if mask is not None:
        allowed = allowed & T.tensor(mask).to(device=q.device, dtype=torch.bool)
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    return T.masked_softmax(scores, allowed) @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    layer: str = "linear",
    causal: bool = True,
    eps: float = 1e-12,
    window: int | None = None,
    scale: float | None = None,
    mask: Any = None,
    **_: Any,
) -> np.ndarray:
    """Scalar loops: the kernel ``1 + s + s²/2`` (no features) or a softmax over the band."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    width = 64 if window is None else window
    band = np.array([[i + m - n - width < j <= i + m - n for j in range(m)] for i in range(n)])
    vis = sh.visibility(n, m, False, mask, q.shape[:-2]) & band
    sigma = d**-0.5 if scale is None else scale
    for idx in np.ndindex(*q.shape[:-2]):
        dots = sh.dot_loop(q[idx], k[idx])
        if layer == "window":
            out[idx] = sh.softmax_rows_loop(sigma * dots, vis[idx], v[idx])
            continue
        for i in range(n):
            keys = range(i + 1) if causal else range(m)
            weights = {j: 1 + dots[i, j] / math.sqrt(d) + (dots[i, j] / math.sqrt(d)) ** 2 / 2 for j in keys}
            total = sum(weights.values()) + eps
            for c in range(v.shape[-1]):
                out[idx][i, c] = sum(w * v[idx][j, c] for j, w in weights.items()) / total
    return out


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """Masked shapes and causal ones with ``m != n`` go to the window layer (the linear layer has neither)."""
    opts = shape.option_dict
    if "layer" not in opts:
        window = shape.masked or (shape.causal and shape.m not in (None, shape.n))
        opts["layer"] = "window" if window else "linear"
        if window:
            opts["window"] = max(1, shape.n // 2)
    if opts["layer"] == "window":
        return replace(shape, causal=True, options=tuple(sorted(opts.items())))
    self_causal = shape.causal and shape.m not in (None, shape.n)
    return replace(shape, masked=False, m=None if self_causal else shape.m, options=tuple(sorted(opts.items())))


def sample(seed: int, shape: Shape) -> SampleInput:
    s = sh.attention_sample(seed, adapt(shape))
    kwargs = dict(s.kwargs)
    if kwargs.get("layer") == "window":
        kwargs["causal"] = True
    return SampleInput(s.args, kwargs, s.label)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    if shape.masked or draw(st.booleans()):
        options: dict[str, Any] = {"layer": "window", "window": draw(st.integers(1, 30))}
        if draw(st.booleans()):
            options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
        return options
    options = {"layer": "linear", "layout": draw(st.sampled_from(LAYOUTS))}
    causal = shape.causal and shape.m in (None, shape.n)
    options["form"] = draw(st.sampled_from(FORMS if causal else ("quadratic", "recurrent")))
    if options["form"] == "chunked":
        options["chunk_size"] = draw(st.integers(1, 9))
    return options


@st.composite
def _shapes(draw: Any) -> Shape:
    shape = draw(sh.attention_shapes(max_n=18, max_d=6, options=_options))
    return adapt(shape)


SHAPES = _shapes()


# ---------------------------------------------------------------------------------------------
# invariants


def _taylor(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    qe, ke = sh.repeat_kv(q, k)
    d = q.shape[-1]
    scores = (qe @ np.swapaxes(ke, -1, -2)) / math.sqrt(d)
    want = 1 + scores + scores**2 / 2
    sizes = {"full": 1 + d + d * d, "compact": 1 + d + d * (d + 1) // 2}
    for layout in LAYOUTS:
        fq, fk = ops.taylor_features(qe, layout=layout), ops.taylor_features(ke, layout=layout)
        assert fq.shape[-1] == sizes[layout], f"{layout}: feature size {fq.shape[-1]}, expected {sizes[layout]}"
        sh.close(f"φ(q)·φ(k) ({layout}) vs 1 + s + s²/2", fq @ np.swapaxes(fk, -1, -2), want)
    assert np.all(want >= 0.5 - 1e-12), "the Taylor kernel fell below 1/2"


def _equals_linear(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    causal = s.kwargs.get("causal", True)
    want = linear_attention(q, k, v, feature_map=taylor_map, causal=causal, eps=s.kwargs.get("eps", 1e-12))
    sh.close("BASED linear vs linear attention with the Taylor feature map", s.call(ops.based_attention), want)


def _layouts(ops: Any, s: SampleInput) -> None:
    rest = {k: v for k, v in s.kwargs.items() if k != "layout"}
    full = ops.based_attention(*s.args, layout="full", **rest)
    sh.close("compact vs full feature layout", ops.based_attention(*s.args, layout="compact", **rest), full)


def _recurrent(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    base = {k_: v_ for k_, v_ in s.kwargs.items() if k_ in ("layout", "eps")}
    parallel = ops.based_attention(q, k, v, causal=True, form="quadratic", **base)
    sh.close("recurrent vs parallel", ops.based_attention(q, k, v, causal=True, form="recurrent", **base), parallel)
    sh.close(
        "chunked (3) vs parallel",
        ops.based_attention(q, k, v, causal=True, form="chunked", chunk_size=3, **base),
        parallel,
    )
    qe, ke, ve = sh.repeat_kv(q, k, v)
    cut = n // 2
    first, state = ops.based_attention(
        qe[..., :cut, :], ke[..., :cut, :], ve[..., :cut, :], form="recurrent", return_state=True, **base
    )
    rest = ops.based_attention(
        qe[..., cut:, :], ke[..., cut:, :], ve[..., cut:, :], form="recurrent", initial_state=state, **base
    )
    sh.close("split recurrent run resumed from its state vs parallel", np.concatenate([first, rest], axis=-2), parallel)


def _rows_sum_to_one(ops: Any, s: SampleInput) -> None:
    weights = cat.weights_of(ops.based_attention, s)
    assert np.all(weights >= 0), "negative weight"
    sh.close("row sums (ε = 1e-12)", weights.sum(-1), np.ones(weights.shape[:-1]))


def _full_window(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    rest = {key: val for key, val in s.kwargs.items() if key != "window"}
    want = softmax_attention(q, k, v, causal=True, scale=rest.get("scale"), mask=rest.get("mask"))
    sh.close("window = m vs causal softmax attention", ops.based_attention(q, k, v, **rest, window=k.shape[-2]), want)


def _equals_gna(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    w = s.kwargs.get("window", 64)
    want = gna_attention(
        q, k, v, kernel_size=min(w, q.shape[-2]), causal=True, scale=s.kwargs.get("scale"), mask=s.kwargs.get("mask")
    )
    sh.close("BASED window vs GNA causal stride-1 kernel w", s.call(ops.based_attention), want)


def _window_counts(ops: Any, s: SampleInput) -> None:
    q, k = s.args[:2]
    n, m = q.shape[-2], k.shape[-2]
    w = s.kwargs.get("window", 64)
    zero = SampleInput((np.zeros_like(q), *s.args[1:]), {**s.kwargs, "mask": None})
    weights = cat.weights_of(ops.based_attention, zero)
    for i in range(n):
        last = i + m - n
        want = max(0, min(w, last + 1))
        seen = np.sum(weights[..., i, :] > 0, axis=-1)
        assert np.all(seen == want), f"query {i}: {np.unique(seen).tolist()} visible keys, expected {want}"
        if want:
            assert np.all(weights[..., i, max(0, last - w + 1) : last + 1] > 0), (
                f"query {i}: the wrong keys are visible"
            )


def _window_hull(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    qe, _, ve = sh.repeat_kv(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    band = _band(n, m, s.kwargs.get("window", 64))
    visible = sh.visibility(n, m, False, s.kwargs.get("mask"), qe.shape[:-2]) & band
    cat.rows_in_hull(s.call(ops.based_attention), ve, visible, "window hull")


def _band(n: int, m: int, w: int) -> np.ndarray:
    return np.array([[i + m - n - w < j <= i + m - n for j in range(m)] for i in range(n)])


def _causal_prefix(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n, m = q.shape[-2], k.shape[-2]
    cut = (n - 1) // 2
    rng = np.random.default_rng(1)
    moved = [np.array(a) for a in (q, k, v)]
    moved[0][..., cut + 1 :, :] += rng.standard_normal(moved[0][..., cut + 1 :, :].shape)
    start = max(0, cut + 1 + m - n)
    for a in moved[1:]:
        a[..., start:, :] += rng.standard_normal(a[..., start:, :].shape)
    base = s.call(ops.based_attention)
    sh.close(
        "outputs at positions <= cut",
        ops.based_attention(*moved, **s.kwargs)[..., : cut + 1, :],
        base[..., : cut + 1, :],
    )


def _linear_causal(s: SampleInput) -> bool:
    return _is_linear(s) and bool(s.kwargs.get("causal", True)) and s.args[0].shape[-2] >= 2


# ---------------------------------------------------------------------------------------------
# mutants


def _missing_half(original: Any) -> Any:
    def features(x: np.ndarray, *, layout: str = "full") -> np.ndarray:
        out = np.array(original(x, layout=layout))
        d = x.shape[-1]
        out[..., 1 + d :] *= math.sqrt(2.0)  # second-order term s² instead of s²/2
        return out

    return features


def _root_scale(original: Any) -> Any:
    def features(x: np.ndarray, *, layout: str = "full") -> np.ndarray:
        out = np.array(original(x, layout=layout))
        d = x.shape[-1]
        out[..., 1 : 1 + d] *= d**-0.25  # first-order term x/√d' instead of x/d'^{1/4}
        return out

    return features


def _compact_cross(original: Any) -> Any:
    def features(x: np.ndarray, *, layout: str = "full") -> np.ndarray:
        out = np.array(original(x, layout=layout))
        if layout == "compact":
            d = x.shape[-1]
            out[..., 1 + 2 * d :] /= math.sqrt(2.0)  # cross terms scaled like the diagonal
        return out

    return features


def _chunks_forget(original: Any) -> Any:
    def chunked(q: Any, k: Any, v: Any, *, feature_map: Any, chunk_size: int = 64, eps: float = 1e-6) -> Any:
        n = np.shape(q)[-2]
        parts = [
            original(
                q[..., a : a + chunk_size, :],
                k[..., a : a + chunk_size, :],
                v[..., a : a + chunk_size, :],
                feature_map=feature_map,
                chunk_size=chunk_size,
                eps=eps,
            )
            for a in range(0, n, chunk_size)
        ]
        return np.concatenate(parts, axis=-2)

    return chunked


def _resume_ignores_state(original: Any) -> Any:
    def recurrent(*args: Any, initial_state: Any = None, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    return recurrent


def _eps_large(original: Any) -> Any:
    def mutated(*args: Any, eps: float = 1e-12, layer: str = "linear", **kwargs: Any) -> Any:
        if layer != "linear":
            return original(*args, layer=layer, **kwargs)
        return original(*args, layer=layer, eps=1e-4, **kwargs)

    return mutated


def _window_scale(original: Any) -> Any:
    def mutated(q: Any, *args: Any, layer: str = "linear", scale: Any = None, **kwargs: Any) -> Any:
        if layer != "window":
            return original(q, *args, layer=layer, scale=scale, **kwargs)
        sigma = np.shape(q)[-1] ** -0.5 if scale is None else scale
        return original(q, *args, layer=layer, scale=2.0 * sigma, **kwargs)

    return mutated


def _window_short(original: Any) -> Any:
    def band(n: int, m: int, window: int) -> np.ndarray:
        return original(n, m, window - 1) if window > 1 else np.zeros((n, m), dtype=bool)

    return band


def _window_top_left(original: Any) -> Any:
    def band(n: int, m: int, window: int) -> np.ndarray:
        i = np.arange(n)[:, None]
        j = np.arange(m)[None, :]
        return (j <= i) & (j > i - window)

    return band


def _window_leaks(original: Any) -> Any:
    def band(n: int, m: int, window: int) -> np.ndarray:
        shifted = original(n, m, window)
        return shifted | np.eye(n, m, k=m - n + 1, dtype=bool)

    return band


MUTANTS = (
    cat.wrapping(
        "taylor_missing_half", "the second-order Taylor term is s² instead of s²/2", "taylor_features", _missing_half
    ),
    cat.wrapping(
        "taylor_root_scale", "the first-order features are x/√d' instead of x/d'^{1/4}", "taylor_features", _root_scale
    ),
    cat.wrapping(
        "compact_cross_halved",
        "the compact layout scales cross terms like the diagonal ones",
        "taylor_features",
        _compact_cross,
    ),
    cat.wrapping(
        "chunks_forget_state", "each chunk starts from an empty state", "linear_attention_chunked", _chunks_forget
    ),
    cat.wrapping(
        "resume_ignores_state",
        "a resumed recurrent call drops its initial state",
        "linear_attention_recurrent",
        _resume_ignores_state,
    ),
    cat.wrapping("eps_large", "the linear layer's ε is 1e-4 instead of 1e-12", OP, _eps_large),
    cat.wrapping("window_short", "the window holds w − 1 keys", "window_band", _window_short),
    cat.wrapping("window_top_left", "the window ends at key i instead of i + m − n", "window_band", _window_top_left),
    cat.wrapping("window_sees_next", "a query also sees the key after its window", "window_band", _window_leaks),
    sh.interleaved_gqa(OP, (1, 2)),
    cat.wrapping("wrong_scale", "window logits multiplied by an extra factor 2", OP, _window_scale),
    sh.ignores_mask(OP),
)

INVARIANTS = (
    Invariant(
        "taylor_identity",
        "φ(q)·φ(k) = 1 + s + s²/2 exactly (both layouts, s = q·k/√d'), and it is >= 1/2",
        _taylor,
        ("taylor_missing_half", "taylor_root_scale", "compact_cross_halved"),
        min_samples=1,
    ),
    Invariant(
        "equals_linear_attention",
        "the linear layer is linear attention (Katharopoulos et al.) with the Taylor feature map",
        _equals_linear,
        ("taylor_missing_half", "taylor_root_scale", "eps_large", "chunks_forget_state"),
        _is_linear,
    ),
    Invariant(
        "layouts_agree",
        "the compact (fla) and full (authors') feature layouts give the same output",
        _layouts,
        ("compact_cross_halved",),
        _is_linear,
    ),
    Invariant(
        "recurrent_equals_parallel",
        "recurrent, chunked and parallel evaluations agree; a split run resumed from its state equals one run",
        _recurrent,
        ("chunks_forget_state", "resume_ignores_state"),
        lambda s: _is_linear(s) and s.args[0].shape[-2] >= 4 and s.args[0].shape[-2] == s.args[1].shape[-2],
    ),
    Invariant(
        "rows_sum_to_one",
        "linear layer: weights (output for V = I) are positive and rows sum to 1 (the kernel is >= 1/2)",
        _rows_sum_to_one,
        ("eps_large",),
        _is_linear,
    ),
    Invariant(
        "full_window_is_causal_attention",
        "window layer with w = m is causal softmax attention (bottom-right)",
        _full_window,
        ("window_top_left", "wrong_scale", "ignores_mask"),
        _is_window,
    ),
    Invariant(
        "window_equals_gna",
        "window layer (n = m) equals GNA with a causal stride-1 kernel of w",
        _equals_gna,
        ("window_short", "window_sees_next"),
        lambda s: _is_window(s) and s.args[0].shape[-2] == s.args[1].shape[-2],
    ),
    Invariant(
        "window_key_counts",
        "window layer: query i sees exactly min(w, i + m − n + 1) keys, the last ones up to i + m − n",
        _window_counts,
        ("window_short", "window_top_left", "window_sees_next"),
        _is_window,
    ),
    Invariant(
        "window_hull",
        "window layer: outputs lie in the hull of the window's values; empty rows are 0",
        _window_hull,
        ("ignores_mask",),
        _is_window,
    ),
    Invariant(
        "causal_prefix",
        "output i is unchanged when inputs after i are perturbed",
        _causal_prefix,
        ("window_sees_next",),
        lambda s: s.args[0].shape[-2] >= 2 and (_is_window(s) or _linear_causal(s)),
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("taylor_missing_half", "window_short", "window_top_left", "wrong_scale")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=6, d=4, d_v=3, causal=True))
    w = sample(0, Shape(n=6, d=4, d_v=3, causal=True, options=(("layer", "window"), ("window", 3))))
    q, k, v = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(w, ("scale", "mask")),
        BadInput("layer-unknown", s.args, {**kw, "layer": "conv"}, ValueError, r"\blayer\b"),
        BadInput("layout-unknown", s.args, {**kw, "layout": "packed"}, ValueError, r"\blayout\b"),
        BadInput("form-unknown", s.args, {**kw, "form": "scan"}, ValueError, r"\bform\b"),
        BadInput("eps-negative", s.args, {**kw, "eps": -1.0}, ValueError, r"\beps\b"),
        BadInput("causal-cross", (q, k[..., :-1, :], v[..., :-1, :]), kw, ValueError, r"\bq/k\b.*equal"),
        BadInput("window-zero", w.args, {**w.kwargs, "window": 0}, ValueError, r"\bwindow\b.*positive"),
        BadInput("window-non-causal", w.args, {**w.kwargs, "causal": False}, ValueError, r"\bcausal\b"),
        BadInput("window-causal-string", w.args, {**w.kwargs, "causal": "yes"}, TypeError, r"\bcausal\b"),
        BadInput("window-option-on-linear", s.args, {**kw, "window": 3}, ValueError, r"\bwindow\b.*layer='window'"),
        BadInput(
            "linear-option-on-window",
            w.args,
            {**w.kwargs, "layout": "compact"},
            ValueError,
            r"\blayout\b.*layer='linear'",
        ),
        BadInput("chunk-size-zero", s.args, {**kw, "form": "chunked", "chunk_size": 0}, ValueError, r"\bchunk_size\b"),
        BadInput("linear-causal-string", s.args, {**kw, "causal": "yes"}, TypeError, r"\bcausal\b"),
        BadInput("scale-on-linear", s.args, {**kw, "scale": 0.5}, ValueError, r"\bscale\b.*layer='window'"),
        BadInput(
            "mask-on-linear", s.args, {**kw, "mask": np.ones((6, 6), bool)}, ValueError, r"\bmask\b.*layer='window'"
        ),
        BadInput("eps-on-window", w.args, {**w.kwargs, "eps": 1e-3}, ValueError, r"\beps\b.*layer='linear'"),
        BadInput(
            "chunk-size-on-window", w.args, {**w.kwargs, "chunk_size": 8}, ValueError, r"\bchunk_size\b.*layer='linear'"
        ),
        BadInput(
            "return-state-string",
            s.args,
            {**kw, "form": "recurrent", "return_state": "yes"},
            TypeError,
            r"\breturn_state\b",
        ),
        BadInput("k-head-dim", (q, k[..., :-1], v), kw, ValueError, r"\bk\b.*d_k"),
        BadInput(
            "chunked-non-causal", s.args, {**kw, "causal": False, "form": "chunked"}, ValueError, r"\bform\b.*causal"
        ),
        BadInput(
            "initial-state-not-recurrent",
            s.args,
            {**kw, "initial_state": np.zeros((1, 2, 1 + 4 + 16, 3))},
            ValueError,
            r"\binitial_state\b.*recurrent",
        ),
        BadInput(
            "return-state-not-recurrent",
            s.args,
            {**kw, "return_state": True},
            ValueError,
            r"\breturn_state\b.*recurrent",
        ),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    n, m, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    if _is_window(s):
        return 4.0 * lead * n * min(m, s.kwargs.get("window", 64)) * (d + dv) / 2
    return 4.0 * lead * n * (1 + d + d * d) * (dv + 1)


FORM = Form(
    name="based",
    title="BASED: Taylor-feature linear attention and sliding-window attention layers",
    equation=(
        r"\text{linear: } o_i = \frac{\sum_{j\le i} \kappa_{ij} v_j}{\sum_{j\le i} \kappa_{ij} + \varepsilon},\ "
        r"\kappa_{ij} = 1 + s_{ij} + \tfrac{s_{ij}^2}{2},\ s_{ij} = \frac{q_i\cdot k_j}{\sqrt{d'}};\quad "
        r"\text{window: } \operatorname{softmax}_{i-w<j\le i}(\sigma q_i\cdot k_j)"
    ),
    reference=based_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("arora2024simple"),
        "abstract (linear + sliding-window attention); feature map and layers of the authors' code",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "BASED is an architecture of separate layers; layer='linear' (Taylor features of the feature-dimension "
        "projection, normalised, ε = 1e-12 as the authors' code) or layer='window' (causal sliding-window softmax, "
        "flash-attn window_size=(w − 1, 0)). The authors' code uses the full d'² second-order features; "
        "layout='compact' is fla's triangular packing (same kernel). Causal linear needs n == m; the window layer "
        "aligns bottom-right and takes a mask. The ThunderKittens kernel's output RMSNorm is not part of the operator."
    ),
    order=25,
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1,
            heads=4,
            kv_heads=2,
            n=9,
            d=4,
            d_v=3,
            causal=True,
            options=(("chunk_size", 4), ("form", "chunked"), ("layer", "linear"), ("layout", "compact")),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=8,
            d=3,
            d_v=2,
            causal=True,
            options=(("form", "recurrent"), ("layer", "linear")),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=1,
            n=10,
            d=4,
            d_v=3,
            causal=True,
            options=(("layer", "window"), ("scale", 0.5), ("window", 3)),
        ),
        Shape(
            batch=1, heads=2, kv_heads=2, n=7, d=4, d_v=2, causal=True, options=(("layer", "window"), ("window", 20))
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention=(
        "linear: 4·B·H·n·(1 + d' + d'²)·(d_v + 1) (state update and readout per token); "
        "window: 4·B·H·n·min(w, m)·(d_k + d_v)/2"
    ),
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, causal=True), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=1024, d=16, d_v=64, causal=True), ("quick",)),
        BenchCase(
            Shape(
                batch=1,
                heads=8,
                kv_heads=8,
                n=1024,
                d=64,
                d_v=64,
                causal=True,
                options=(("layer", "window"), ("window", 64)),
            ),
            ("quick",),
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=4096, d=16, d_v=64, causal=True),
            ("full",),
            frozenset({"numpy", "composed"}),
        ),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=8192, d=16, d_v=64, causal=True),
            ("cuda",),
            frozenset({"numpy", "composed"}),
        ),
    ),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.based:based_attention", "numpy", tiles=(32, 64)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.based:based_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
