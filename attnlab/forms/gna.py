"""Declaration of generalized neighborhood attention (GNA; sliding window, strided, blocked, dilated)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.gna as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape, Tolerance
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.gna import gna_attention
from attnlab.reference.softmax import softmax_attention

OP = "gna_attention"
WINDOW_KEYS = ("kernel_size", "spatial_shape", "stride", "dilation", "causal")


# ---------------------------------------------------------------------------------------------
# the window, written again from the definition (one scalar pair at a time)


def _axis_visible(i: int, j: int, length: int, k: int, s: int, d: int, causal: bool) -> bool:
    if i % d != j % d:
        return False
    r = i % d
    group = math.ceil((length - r) / d)
    ip, jp = i // d, j // d
    if causal:
        leader = min((ip // s) * s + s - 1, group - 1)
        return jp <= ip and leader - jp < k
    half = k // 2
    extent = half + k % 2 - 1
    leader = min((ip // s) * s + s // 2, group - 1)
    centre = max(half, min(leader, group - 1 - extent))
    return -half <= jp - centre <= extent


def _axes(kwargs: dict[str, Any], n: int) -> list[tuple[int, int, int, int, bool]]:
    spatial = kwargs.get("spatial_shape") or (n,)
    spatial = (spatial,) if isinstance(spatial, int) else tuple(spatial)

    def per(name: str, default: Any) -> tuple[Any, ...]:
        value = kwargs.get(name, default)
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * len(spatial)

    return list(zip(spatial, per("kernel_size", 1), per("stride", 1), per("dilation", 1), per("causal", False)))


def window_loop(n: int, kwargs: dict[str, Any]) -> np.ndarray:
    """``(n, n)`` GNA visibility from scalar loops over row-major grid coordinates."""
    axes = _axes(kwargs, n)
    spatial = [a[0] for a in axes]
    out = np.zeros((n, n), dtype=bool)
    for i in range(n):
        ci = np.unravel_index(i, spatial)
        for j in range(n):
            cj = np.unravel_index(j, spatial)
            out[i, j] = all(_axis_visible(int(ci[a]), int(cj[a]), *axes[a]) for a in range(len(axes)))
    return out


def _visible(s: SampleInput) -> np.ndarray:
    q, k = s.args[:2]
    qe, _ = sh.repeat_kv(q, k)
    window = window_loop(q.shape[-2], s.kwargs)
    user = sh.visibility(q.shape[-2], k.shape[-2], False, s.kwargs.get("mask"), qe.shape[:-2])
    return user & window


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    kernel_size: Any,
    spatial_shape: Any = None,
    stride: Any = 1,
    dilation: Any = 1,
    causal: Any = False,
    scale: float | None = None,
    mask: Any = None,
) -> Any:
    """Softmax attention with the window as a dense boolean mask, in torch (the window from the per-axis
    definition on broadcast coordinate grids)."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    n = q.shape[-2]
    opts = {
        "kernel_size": kernel_size,
        "spatial_shape": spatial_shape,
        "stride": stride,
        "dilation": dilation,
        "causal": causal,
    }
    axes = _axes(opts, n)
    coords = torch.stack(torch.unravel_index(torch.arange(n, device=q.device), tuple(a[0] for a in axes)), dim=-1)
    allowed = torch.ones(n, n, dtype=torch.bool, device=q.device)
    for a, (length, kern, st_, dil, is_causal) in enumerate(axes):
        i, j = coords[:, a][:, None], coords[:, a][None, :]
        r = i % dil
        group = torch.div(length - r + dil - 1, dil, rounding_mode="floor")
        ip, jp = i // dil, j // dil
        if is_causal:
            leader = torch.minimum((ip // st_) * st_ + st_ - 1, group - 1)
            axis = (jp <= ip) & (leader - jp < kern)
        else:
            half, extent = kern // 2, kern // 2 + kern % 2 - 1
            leader = torch.minimum((ip // st_) * st_ + st_ // 2, group - 1)
            centre = torch.maximum(torch.minimum(leader, group - 1 - extent), torch.full_like(leader, half))
            axis = (jp - centre >= -half) & (jp - centre <= extent)
        allowed &= axis & (r == j % dil)
    if mask is not None:
        allowed = allowed & T.tensor(mask).to(device=q.device, dtype=torch.bool)
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    return T.masked_softmax(scores, allowed) @ v


def brute_force(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    """Scalar softmax loops over the looped window."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    scale = kwargs.get("scale")
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    window = window_loop(q.shape[-2], kwargs)
    vis = sh.visibility(q.shape[-2], k.shape[-2], False, kwargs.get("mask"), q.shape[:-2]) & window
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        out[idx] = sh.softmax_rows_loop(sigma * sh.dot_loop(q[idx], k[idx]), vis[idx], v[idx])
    return out


# ---------------------------------------------------------------------------------------------
# samples and shapes


def _window_for(n: int) -> dict[str, Any]:
    """A deterministic 1-d window exercising stride and dilation for the standard lengths."""
    kernel = min(3, n)
    dilation = 2 if n >= 7 else 1
    stride = 2 if kernel >= 2 and n % 2 == 1 else 1
    return {"kernel_size": kernel, "stride": stride, "dilation": dilation}


def adapt(shape: Shape) -> Shape:
    self_shape = cat.self_attention(shape)
    if "kernel_size" in shape.option_dict:
        return replace(self_shape, masked=shape.masked)
    return replace(self_shape, masked=shape.masked).with_options(**_window_for(shape.n))


def sample(seed: int, shape: Shape) -> SampleInput:
    s = sh.attention_sample(seed, shape)
    kwargs = dict(s.kwargs)
    if "kernel_size" not in kwargs:
        kwargs.update(_window_for(shape.n))
    return SampleInput(s.args, kwargs, s.label)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    n = shape.n
    divisors = [a for a in range(2, n) if n % a == 0]
    spatial = (n,) if not divisors or draw(st.booleans()) else (a := draw(st.sampled_from(divisors)), n // a)
    kernel, stride, dilation = [], [], []
    for length in spatial:
        k = draw(st.integers(1, length))
        kernel.append(k)
        dilation.append(draw(st.integers(1, length // k)))
        stride.append(draw(st.integers(1, k)))
    options: dict[str, Any] = {"kernel_size": tuple(kernel), "stride": tuple(stride), "dilation": tuple(dilation)}
    if len(spatial) > 1:
        options["spatial_shape"] = spatial
        options["causal"] = tuple(draw(st.booleans()) for _ in spatial)
    if draw(st.booleans()):
        options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
    return options


SHAPES = sh.attention_shapes(max_n=20, cross=False, options=_options)


def _one_d(s: SampleInput) -> bool:
    spatial = s.kwargs.get("spatial_shape")
    return spatial is None or len(spatial) == 1


def _window_only(s: SampleInput, **changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in s.kwargs.items() if k not in WINDOW_KEYS}, **changes}


def _flat(s: SampleInput) -> bool:
    return s.kwargs.get("mask") is None


# ---------------------------------------------------------------------------------------------
# invariants


def _full_window(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    spatial = s.kwargs.get("spatial_shape") or (n,)
    axes = len(spatial)
    rest = _window_only(s)
    for stride in (1, 2):
        strides = tuple(min(stride, length) for length in spatial)
        got = ops.gna_attention(q, k, v, kernel_size=tuple(spatial), spatial_shape=spatial, stride=strides, **rest)
        sh.close(f"kernel = grid (stride {stride}) vs full attention", got, softmax_attention(q, k, v, **rest))
    if axes == 1:
        got = ops.gna_attention(q, k, v, kernel_size=n, stride=min(2, n), causal=True, **rest)
        sh.close("causal kernel = n vs causal attention", got, softmax_attention(q, k, v, causal=True, **rest))


def _uniform_weights(ops: Any, s: SampleInput, **changes: Any) -> np.ndarray:
    q = s.args[0]
    return cat.weights_of(ops.gna_attention, SampleInput((np.zeros_like(q), *s.args[1:]), s.kwargs), **changes)


def _exactly_k(ops: Any, s: SampleInput) -> None:
    kernel = _axes(s.kwargs, s.args[0].shape[-2])
    window = {k: v for k, v in s.kwargs.items() if k in WINDOW_KEYS}
    window["causal"] = False
    weights = _uniform_weights(ops, s, **window)
    count = math.prod(a[1] for a in kernel)
    seen = np.sum(weights > 0, axis=-1)
    assert np.all(seen == count), f"visible keys per query {np.unique(seen).tolist()}, expected exactly {count}"
    sh.close(
        "uniform weights 1/k on a zero query", weights[weights > 0], np.full(int(np.sum(weights > 0)), 1.0 / count)
    )


def _stride_groups(ops: Any, s: SampleInput) -> None:
    n = s.args[0].shape[-2]
    axes = _axes(s.kwargs, n)
    window = {k: v for k, v in s.kwargs.items() if k in WINDOW_KEYS}
    window["causal"] = False
    weights = _uniform_weights(ops, s, **window)
    spatial = [a[0] for a in axes]

    def group(i: int) -> tuple[int, ...]:
        coords = np.unravel_index(i, spatial)
        return tuple(x for c, (_, _, st_, d, _) in zip(coords, axes) for x in (int(c) % d, (int(c) // d) // st_))

    groups: dict[tuple[int, ...], int] = {}
    for i in range(n):
        first = groups.setdefault(group(i), i)
        sh.close(
            f"weights of query {i} vs query {first} of its stride group", weights[..., i, :], weights[..., first, :]
        )


def _has_stride(s: SampleInput) -> bool:
    return _flat(s) and any(a[2] > 1 for a in _axes(s.kwargs, s.args[0].shape[-2]))


def _dilation(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    ((_, kernel, stride, dilation, causal),) = _axes(s.kwargs, n)
    rest = _window_only(s)
    out = s.call(ops.gna_attention)
    for r in range(dilation):
        sub = slice(r, None, dilation)
        piece = ops.gna_attention(
            q[..., sub, :], k[..., sub, :], v[..., sub, :], kernel_size=kernel, stride=stride, causal=causal, **rest
        )
        sh.close(f"residue {r} vs neighborhood attention on the de-interleaved subsequence", out[..., sub, :], piece)


def _blocked(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    rest = _window_only(s)
    for block in sorted({b for b in (2, 3, 4) if n % b == 0 and b < n}):
        tiles = np.arange(n) // block
        diagonal = tiles[:, None] == tiles[None, :]
        user = rest.get("mask")
        got = ops.gna_attention(q, k, v, kernel_size=block, stride=block, **rest)
        want = softmax_attention(q, k, v, **{**rest, "mask": diagonal if user is None else diagonal & user})
        sh.close(f"kernel = stride = {block} vs block-diagonal attention", got, want)


def _sliding(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    n = q.shape[-2]
    rest = _window_only(s)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    for width in sorted({1, min(2, n), min(3, n), max(1, n - 1)}):
        got = ops.gna_attention(q, k, v, kernel_size=width, causal=True, **rest)
        band = (j <= i) & (j > i - width)
        mask = rest.get("mask")
        want = softmax_attention(q, k, v, **{**rest, "mask": band if mask is None else band & mask})
        sh.close(f"causal stride-1 kernel {width} vs sliding window (i − {width}, i]", got, want)


def _hull(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    _, _, ve = sh.repeat_kv(q, k, v)
    cat.rows_in_hull(s.call(ops.gna_attention), ve, _visible(s), "window hull")


def _causal_prefix(ops: Any, s: SampleInput) -> None:
    q, k, v = s.args
    cut = (q.shape[-2] - 1) // 2
    rng = np.random.default_rng(1)
    moved = [np.array(a) for a in (q, k, v)]
    for a in moved:
        a[..., cut + 1 :, :] += rng.standard_normal(a[..., cut + 1 :, :].shape)
    base = s.call(ops.gna_attention)
    sh.close(
        "outputs at positions <= cut", ops.gna_attention(*moved, **s.kwargs)[..., : cut + 1, :], base[..., : cut + 1, :]
    )


def _is_1d_causal(s: SampleInput) -> bool:
    causal = s.kwargs.get("causal", False)
    return _one_d(s) and bool(causal if isinstance(causal, bool) else causal[0]) and s.args[0].shape[-2] >= 2


# ---------------------------------------------------------------------------------------------
# mutants (patching the one-axis window)


def _narrow_right(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        out = original(length, kernel, stride, dilation, causal)
        if causal or kernel < 2:
            return out
        # drop the rightmost key of every window: kernel − 1 keys
        last = np.array([np.flatnonzero(row).max() for row in out])
        out = out.copy()
        out[np.arange(length), last] = False
        return out

    return table


def _no_clamp(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        if causal:
            return original(length, kernel, stride, dilation, causal)
        i = np.arange(length)[:, None]
        j = np.arange(length)[None, :]
        same = i % dilation == j % dilation
        ip, jp = i // dilation, j // dilation
        left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
        centre = (ip // stride) * stride + stride // 2  # not clamped at the borders
        return same & (jp - centre >= -left) & (jp - centre <= right)

    return table


def _stride_ignored(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        return original(length, kernel, 1, dilation, causal)

    return table


def _group_length(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        if dilation == 1 or causal:
            return original(length, kernel, stride, dilation, causal)
        i = np.arange(length)[:, None]
        j = np.arange(length)[None, :]
        same = i % dilation == j % dilation
        ip, jp = i // dilation, j // dilation
        group = length // dilation  # the same group length for every residue
        left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
        leader = np.minimum((ip // stride) * stride + stride // 2, group - 1)
        centre = np.minimum(np.maximum(leader, left), group - 1 - right)
        return same & (jp - centre >= -left) & (jp - centre <= right)

    return table


def _leader_left(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        if causal or stride % 2:
            return original(length, kernel, stride, dilation, causal)
        i = np.arange(length)[:, None]
        j = np.arange(length)[None, :]
        same = i % dilation == j % dilation
        ip, jp = i // dilation, j // dilation
        group = (length - i % dilation + dilation - 1) // dilation
        left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
        leader = np.minimum((ip // stride) * stride + (stride - 1) // 2, group - 1)  # left of centre
        centre = np.minimum(np.maximum(leader, left), group - 1 - right)
        return same & (jp - centre >= -left) & (jp - centre <= right)

    return table


def _causal_window_wide(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        return original(length, kernel + 1 if causal else kernel, stride, dilation, causal)

    return table


def _dilation_ignored(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        return original(length, kernel, stride, 1, causal)

    return table


def _causal_future(original: Any) -> Any:
    def table(length: int, kernel: int, stride: int, dilation: int, causal: bool) -> Any:
        out = original(length, kernel, stride, dilation, causal)
        if not causal:
            return out
        return out | np.eye(length, k=1, dtype=bool)  # each position also sees the next one

    return table


PATCH = "axis_visibility"
MUTANTS = (
    cat.wrapping(
        "window_narrow", "every non-causal window loses its rightmost key (kernel − 1 keys)", PATCH, _narrow_right
    ),
    cat.wrapping(
        "no_border_clamp",
        "the window centre is not clamped at the borders (border queries see fewer keys)",
        PATCH,
        _no_clamp,
    ),
    cat.wrapping("stride_ignored", "the stride is treated as 1", PATCH, _stride_ignored),
    cat.wrapping("group_length_by_floor", "the dilation group length is ⌊L/δ⌋ for every residue", PATCH, _group_length),
    cat.wrapping("even_stride_leader_left", "an even stride's group leader sits left of centre", PATCH, _leader_left),
    cat.wrapping("causal_window_wide", "the causal window holds kernel + 1 keys", PATCH, _causal_window_wide),
    cat.wrapping("dilation_ignored", "the dilation is treated as 1", PATCH, _dilation_ignored),
    cat.wrapping("causal_sees_next", "a causal position also sees the next one", PATCH, _causal_future),
    sh.wrong_default_scale(OP),
    sh.ignores_mask(OP),
    sh.interleaved_gqa(OP, (1, 2)),
)

INVARIANTS = (
    Invariant(
        "full_window_is_attention",
        "kernel = grid gives full attention at any stride (and causal attention in 1-d)",
        _full_window,
        ("window_narrow", "wrong_scale", "ignores_mask"),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "exactly_k_keys",
        "non-causal: every query sees exactly Π kernel_size keys (uniform 1/k weights for a zero query)",
        _exactly_k,
        ("window_narrow", "no_border_clamp"),
        _flat,
    ),
    Invariant(
        "stride_groups_share_keys",
        "non-causal: the queries of one stride group (and residue) have the same keys",
        _stride_groups,
        ("stride_ignored",),
        _has_stride,
    ),
    Invariant(
        "dilation_deinterleaves",
        "dilation δ equals neighborhood attention on each residue's subsequence, re-interleaved",
        _dilation,
        ("dilation_ignored", "group_length_by_floor"),
        lambda s: _one_d(s) and _flat(s) and _axes(s.kwargs, s.args[0].shape[-2])[0][3] > 1,
    ),
    Invariant(
        "blocked_when_stride_is_kernel",
        "kernel = stride = b dividing n is block-diagonal attention over tiles of b",
        _blocked,
        ("even_stride_leader_left", "ignores_mask"),
        lambda s: _one_d(s) and any(s.args[0].shape[-2] % b == 0 and b < s.args[0].shape[-2] for b in (2, 3, 4)),
    ),
    Invariant(
        "causal_sliding_window",
        "causal with stride 1 is the sliding window i − k < j <= i",
        _sliding,
        ("causal_window_wide", "causal_sees_next"),
        lambda s: _one_d(s) and s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "causal_prefix",
        "1-d causal: output i is unchanged when inputs after i are perturbed",
        _causal_prefix,
        ("causal_sees_next",),
        _is_1d_causal,
    ),
    Invariant(
        "window_hull",
        "each output lies in the hull of its window's values; queries with no visible key are 0",
        _hull,
        ("ignores_mask",),
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        OP, brute_force, mutants=("window_narrow", "stride_ignored", "dilation_ignored", "wrong_scale", "ignores_mask")
    ),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(n=12, d=4, d_v=3))
    q, k, v = s.args
    kw = s.kwargs
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(s, ("scale", "mask")),
        BadInput("kernel-too-large", s.args, {**kw, "kernel_size": 13}, ValueError, r"\bkernel_size\b"),
        BadInput(
            "kernel-times-dilation",
            s.args,
            {**kw, "kernel_size": 5, "dilation": 3},
            ValueError,
            r"\bkernel_size\b.*dilation",
        ),
        BadInput("kernel-zero", s.args, {**kw, "kernel_size": 0}, ValueError, r"\bkernel_size\b"),
        BadInput("kernel-float", s.args, {**kw, "kernel_size": 3.0}, TypeError, r"\bkernel_size\b"),
        BadInput("stride-above-kernel", s.args, {**kw, "kernel_size": 3, "stride": 4}, ValueError, r"\bstride\b"),
        BadInput("spatial-product", s.args, {**kw, "spatial_shape": (3, 5)}, ValueError, r"\bspatial_shape\b.*product"),
        BadInput(
            "per-axis-count",
            s.args,
            {**kw, "spatial_shape": (3, 4), "kernel_size": (1, 2, 3)},
            ValueError,
            r"\bkernel_size\b.*per axis",
        ),
        BadInput("causal-string", s.args, {**kw, "causal": "yes"}, TypeError, r"\bcausal\b"),
        BadInput("cross-attention", (q, k[..., :-1, :], v[..., :-1, :]), kw, ValueError, r"\bq/k\b.*one token grid"),
        BadInput("k-head-dim", (q, k[..., :-1], v), kw, ValueError, r"\bk\b.*d_k"),
        BadInput("spatial-string", s.args, {**kw, "spatial_shape": "3x4"}, TypeError, r"\bspatial_shape\b.*tuple"),
        BadInput("spatial-empty", s.args, {**kw, "spatial_shape": ()}, TypeError, r"\bspatial_shape\b.*tuple"),
        BadInput("spatial-float", s.args, {**kw, "spatial_shape": (3.0, 4)}, TypeError, r"\bspatial_shape\b.*int"),
        BadInput("stride-float", s.args, {**kw, "kernel_size": 3, "stride": 1.0}, TypeError, r"\bstride\b.*int"),
        BadInput("dilation-bool", s.args, {**kw, "dilation": True}, TypeError, r"\bdilation\b.*int"),
        BadInput("causal-per-axis-int", s.args, {**kw, "causal": (1,)}, TypeError, r"\bcausal\b.*True/False"),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    keys = math.prod(a[1] for a in _axes(s.kwargs, q.shape[-2]))
    return 4.0 * lead * q.shape[-2] * keys * (q.shape[-1] + v.shape[-1]) / 2


FORM = Form(
    name="gna",
    title="Generalized neighborhood attention (sliding window, strided, blocked, dilated; N-d)",
    equation=(
        r"o_i = \sum_{j \in \mathcal W(i)} \operatorname{softmax}_j(\sigma q_i\cdot k_j)\, v_j,\quad "
        r"\mathcal W(i) = \bigcap_a \{ j : |j'_a - c_a(i)| \text{ within the window of } k_a \}"
    ),
    reference=gna_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("hassani2025generalized"),
        "abstract (stride on neighborhood attention); window semantics of NATTEN's Flex mask",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "Window semantics follow NATTEN's Flex mask (the paper's implementation): per-axis dilation groups by "
        "residue with group length ⌈(L − r)/δ⌉, stride-group leader right of centre for even strides, window "
        "centre clamped at the borders, causal windows ending at the group leader. Multi-dimensional windows are "
        "the AND over row-major grid axes; requires kernel·dilation <= L and 1 <= stride <= kernel per axis. "
        "Causal is per axis (in N-d it is not the flat-index causal mask)."
    ),
    order=26,
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(
            batch=1,
            heads=2,
            kv_heads=1,
            n=20,
            d=4,
            d_v=3,
            options=(("dilation", (1, 2)), ("kernel_size", (3, 2)), ("spatial_shape", (4, 5)), ("stride", (1, 2))),
        ),
        Shape(batch=1, heads=2, kv_heads=2, n=12, d=4, d_v=3, options=(("kernel_size", 4), ("stride", 4))),
        Shape(batch=1, heads=2, kv_heads=2, n=11, d=3, d_v=2, causal=True, options=(("kernel_size", 4), ("stride", 2))),
        Shape(
            batch=1,
            heads=1,
            kv_heads=1,
            n=13,
            d=4,
            d_v=2,
            options=(("dilation", 3), ("kernel_size", 4), ("stride", 2), ("scale", 0.6)),
        ),
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=12,
            d=4,
            d_v=3,
            masked=True,
            options=(("causal", (True, False)), ("kernel_size", (2, 3)), ("spatial_shape", (3, 4))),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="two GEMMs over the visible keys only: 4·B·H·n·(Π kernel)·(d_k + d_v)/2 (NATTEN's convention)",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8, options=(("kernel_size", 5),)), ("tiny",)),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=1024, d=64, d_v=64, options=(("kernel_size", 63),)), ("quick",)
        ),
        BenchCase(
            Shape(batch=1, heads=8, kv_heads=8, n=4096, d=64, d_v=64, options=(("kernel_size", 127),)),
            ("full",),
            frozenset({"numpy", "composed"}),
        ),
        BenchCase(
            Shape(
                batch=1,
                heads=8,
                kv_heads=8,
                n=4096,
                d=64,
                d_v=64,
                options=(("kernel_size", (7, 7)), ("spatial_shape", (64, 64))),
            ),
            ("full",),
            frozenset({"numpy", "composed"}),
        ),
        BenchCase(
            Shape(batch=4, heads=16, kv_heads=16, n=8192, d=128, d_v=128, options=(("kernel_size", 255),)),
            ("cuda",),
            frozenset({"numpy", "composed"}),
        ),
    ),
    diagnoses=sh.attention_diagnoses(gna_attention),
    fast_paths=(
        FastPath("numba", "attnlab.fastpath.numba.gna:gna_attention", "numpy", tiles=(32, 64)),
        FastPath(
            "torch",
            "attnlab.fastpath.torch.gna:gna_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
            tolerance=Tolerance(),
        ),
    ),
)
