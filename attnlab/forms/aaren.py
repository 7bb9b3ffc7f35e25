"""Declaration of Aaren, attention as a many-to-many RNN by a parallel prefix scan (Feng et al. 2024)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.aaren as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, SampleInput, Shape
from attnlab.forms import _catalogue as cat
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.aaren import FORMS, aaren_attention
from attnlab.reference.softmax import softmax_attention

OP = "aaren_attention"


def oracle(q: Any, k: Any, v: Any, *, scale: float | None = None, form: str = "scan") -> Any:
    """Prefix softmax of the one query against every key prefix, with the ``(m, m)`` logits materialised."""
    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    m = k.shape[-2]
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))  # (..., 1, m)
    allowed = T.visibility(m, m, causal=True, mask=None, device=q.device)
    return T.masked_softmax(scores.expand(*scores.shape[:-2], m, m), allowed) @ v


def brute_force(q: Any, k: Any, v: Any, *, scale: float | None = None, form: str = "scan") -> np.ndarray:
    """``o_t = Σ_{i<=t} e^{s_i} v_i / Σ_{i<=t} e^{s_i}`` with scalar loops, one prefix at a time."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.float64) for a in (q, k, v)))
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    m = k.shape[-2]
    out = np.zeros((*k.shape[:-2], m, v.shape[-1]))
    for idx in np.ndindex(*k.shape[:-2]):
        scores = sigma * sh.dot_loop(q[idx], k[idx])[0]
        for t in range(m):
            top = max(scores[: t + 1])
            weights = [math.exp(scores[i] - top) for i in range(t + 1)]
            total = sum(weights)
            for c in range(v.shape[-1]):
                out[idx][t, c] = sum(w * v[idx][i, c] for i, w in enumerate(weights)) / total
    return out


# ---------------------------------------------------------------------------------------------
# samples


def sample(seed: int, shape: Shape) -> SampleInput:
    """One query token per head; ``shape.n`` is the sequence length."""
    rng = np.random.default_rng(seed)
    b, h, hk = shape.batch, shape.heads, sh.kv_heads_of(shape)
    q = sh.qk_values(rng, (b, h, 1, shape.d), shape.values)
    k = sh.qk_values(rng, (b, hk, shape.n, shape.d), shape.values)
    v = sh.value_values(rng, (b, hk, shape.n, shape.d_v), shape.values)
    return SampleInput((q, k, v), dict(shape.option_dict), shape.label())


def adapt(shape: Shape) -> Shape:
    return replace(shape, m=None, causal=False, masked=False)


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options = cat.draw_options(draw, {"form": FORMS})
    if draw(st.booleans()):
        options["scale"] = cat.log_uniform(draw, 0.05, 2.0)
    return options


SHAPES = sh.attention_shapes(cross=False, masks=False, causal=False, options=_options)


# ---------------------------------------------------------------------------------------------
# invariants


def _prefix_softmax(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    m = k.shape[-2]
    rows = np.repeat(q, m, axis=-2)
    want = softmax_attention(rows, k, v, causal=True, scale=sample.kwargs.get("scale"))
    sh.close("scan vs prefix softmax attention", sample.call(ops.aaren_attention), want)


def _split_resume(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    cut = k.shape[-2] // 2
    opts = {"scale": sample.kwargs["scale"]} if "scale" in sample.kwargs else {}
    whole = ops.aaren_attention(q, k, v, form="scan", **opts)
    first, state = ops.aaren_attention(q, k[..., :cut, :], v[..., :cut, :], form="recurrent", return_state=True, **opts)
    second = ops.aaren_attention(q, k[..., cut:, :], v[..., cut:, :], form="scan", initial_state=state, **opts)
    sh.close("recurrent then resumed scan vs one scan", np.concatenate([first, second], axis=-2), whole)
    sh.close("recurrent vs scan", ops.aaren_attention(q, k, v, form="recurrent", **opts), whole)
    sh.close("parallel vs scan", ops.aaren_attention(q, k, v, form="parallel", **opts), whole)


def _random_elements(rng: np.random.Generator, count: int, d_v: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    elements = []
    for _ in range(count):
        mu = 5.0 * rng.standard_normal(6)
        mu[0] = -np.inf  # an identity lane
        ell = np.where(np.isfinite(mu), rng.uniform(0.5, 3.0, 6), 0.0)
        acc = np.where(np.isfinite(mu)[:, None], rng.standard_normal((6, d_v)), 0.0)
        elements.append((mu, ell, acc))
    return elements


def _associative(ops: Any, sample: SampleInput) -> None:
    a, b, c = _random_elements(np.random.default_rng(7), 3, sample.args[2].shape[-1])
    identity = (np.full(6, -np.inf), np.zeros(6), np.zeros_like(a[2]))
    pairs = (
        (
            "(a ⊕ b) ⊕ c vs a ⊕ (b ⊕ c)",
            ops.aaren_combine(ops.aaren_combine(a, b), c),
            ops.aaren_combine(a, ops.aaren_combine(b, c)),
        ),
        ("identity ⊕ b vs b", ops.aaren_combine(identity, b), b),
    )
    for what, left, right in pairs:
        assert np.array_equal(np.isinf(left[0]), np.isinf(right[0])), f"{what}: the identity lanes differ"
        finite = np.isfinite(right[0])
        sh.close(f"{what}: max", left[0][finite], right[0][finite])
        for name, x, y in zip(("sum", "acc"), left[1:], right[1:]):
            sh.close(f"{what}: {name}", x, y)


def _last_output(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    want = softmax_attention(q, k, v, scale=sample.kwargs.get("scale"))[..., 0, :]
    sh.close(
        "last prefix output vs non-causal single-query attention", sample.call(ops.aaren_attention)[..., -1, :], want
    )


def _score_shift(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    sigma = sample.kwargs.get("scale") or q.shape[-1] ** -0.5
    # k_i + u with σ q·u = 1000: every score grows by the same constant
    shift = 1000.0 * q / (sigma * np.sum(q * q, axis=-1, keepdims=True))
    with np.errstate(all="ignore"):  # an unstable operator overflows here; its NaN output is the failure
        moved = ops.aaren_attention(q, k + shift, v, **sample.kwargs)
    sh.close("output after every score += 1000", moved, sample.call(ops.aaren_attention), atol=1e-9)


def _hull(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    _, _, ve = sh.repeat_kv(q, k, v)
    m = k.shape[-2]
    visible = np.broadcast_to(np.tril(np.ones((m, m), dtype=bool)), (*ve.shape[:-2], m, m))
    cat.rows_in_hull(sample.call(ops.aaren_attention), ve, visible, "prefix hull")


def _causal_prefix(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    cut = (k.shape[-2] - 1) // 2
    rng = np.random.default_rng(1)
    k2, v2 = k.copy(), v.copy()
    k2[..., cut + 1 :, :] += rng.standard_normal(k2[..., cut + 1 :, :].shape)
    v2[..., cut + 1 :, :] += rng.standard_normal(v2[..., cut + 1 :, :].shape)
    base = sample.call(ops.aaren_attention)
    moved = ops.aaren_attention(q, k2, v2, **sample.kwargs)
    sh.close("outputs at positions <= cut", moved[..., : cut + 1, :], base[..., : cut + 1, :])


def _shiftable(sample: SampleInput) -> bool:
    """One key shift moves every head's scores alike only without GQA; a zero query has no direction."""
    q, k = sample.args[:2]
    return k.shape[-3] == q.shape[-3] and bool(np.all(np.sum(q * q, axis=-1) > 1e-6))


# ---------------------------------------------------------------------------------------------
# mutants


def _weights(mu_a: np.ndarray, mu_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = np.maximum(mu_a, mu_b)
    safe = np.where(np.isfinite(mu), mu, 0.0)
    with np.errstate(invalid="ignore"):
        wa = np.where(np.isfinite(mu_a), np.exp(mu_a - safe), 0.0)
        wb = np.where(np.isfinite(mu_b), np.exp(mu_b - safe), 0.0)
    return mu, wa, wb


def _forgets_rescale(original: Any) -> Any:
    def combine(a: Any, b: Any) -> Any:
        mu, wa, wb = _weights(a[0], b[0])
        # the left accumulator keeps its old max: a classic online-softmax slip
        left = np.where(np.isfinite(a[0])[..., None], a[2], 0.0)
        return mu, wa * a[1] + wb * b[1], left + wb[..., None] * b[2]

    return combine


def _mean_combine(original: Any) -> Any:
    def combine(a: Any, b: Any) -> Any:
        mu, wa, wb = _weights(a[0], b[0])
        both = (np.isfinite(a[0]) & np.isfinite(b[0]))[..., None]
        acc = wa[..., None] * a[2] + wb[..., None] * b[2]
        return mu, wa * a[1] + wb * b[1], np.where(both, 0.5 * acc, acc)

    return combine


def _unshifted_combine(original: Any) -> Any:
    def combine(a: Any, b: Any) -> Any:
        mu_a, ell_a, acc_a = a
        mu_b, ell_b, acc_b = b
        with np.errstate(over="ignore", invalid="ignore"):
            wa = np.where(np.isfinite(mu_a), np.exp(np.where(np.isfinite(mu_a), mu_a, 0.0)), 0.0)
            wb = np.where(np.isfinite(mu_b), np.exp(np.where(np.isfinite(mu_b), mu_b, 0.0)), 0.0)
            return np.zeros_like(mu_a + mu_b), wa * ell_a + wb * ell_b, wa[..., None] * acc_a + wb[..., None] * acc_b

    return combine


def _exclusive(original: Any) -> Any:
    def mutated(*args: Any, **kwargs: Any) -> Any:
        out = np.array(original(*args, **kwargs))
        out[..., 1:, :] = out[..., :-1, :].copy()
        return out

    return mutated


def _anticausal(original: Any) -> Any:
    def mutated(*args: Any, **kwargs: Any) -> Any:
        out = np.array(original(*args, **kwargs))
        out[..., :-1, :] = out[..., 1:, :].copy()
        return out

    return mutated


def _ignores_state(original: Any) -> Any:
    def check(initial_state: Any, lead: Any, d_v: int) -> Any:
        return None

    return check


MUTANTS = (
    cat.wrapping(
        "combine_forgets_rescale",
        "the combine does not rescale the left accumulator to the new max",
        "aaren_combine",
        _forgets_rescale,
    ),
    cat.wrapping(
        "combine_averages",
        "the combine averages the two accumulators instead of adding them",
        "aaren_combine",
        _mean_combine,
    ),
    cat.wrapping(
        "no_max_shift",
        "the combine adds e^{s} unshifted by the running max (overflows)",
        "aaren_combine",
        _unshifted_combine,
    ),
    cat.wrapping(
        "exclusive_scan", "o_t from the exclusive prefix (keys < t) instead of the inclusive one", OP, _exclusive
    ),
    cat.wrapping("anticausal", "o_t also sees key t + 1", OP, _anticausal),
    cat.wrapping("resume_ignores_state", "a resumed call drops its initial state", "check_state", _ignores_state),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.wrong_default_scale(OP),
)

INVARIANTS = (
    Invariant(
        "prefix_softmax",
        "the scan equals causal softmax attention of the query repeated at every position (paper §3)",
        _prefix_softmax,
        ("combine_forgets_rescale", "combine_averages", "exclusive_scan", "anticausal", "wrong_scale"),
    ),
    Invariant(
        "recurrent_equals_scan",
        "recurrent, scan and parallel forms agree, and a split sequence resumed from its state equals one run",
        _split_resume,
        ("resume_ignores_state", "combine_forgets_rescale"),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    Invariant(
        "combine_is_associative",
        "(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c) and (−∞, 0, 0) is the identity, so any scan schedule gives one result",
        _associative,
        ("combine_forgets_rescale", "combine_averages"),
        min_samples=1,
    ),
    Invariant(
        "last_output_is_attention",
        "the last prefix output is non-causal attention of the one query over all keys",
        _last_output,
        ("exclusive_scan", "combine_forgets_rescale"),
    ),
    Invariant(
        "score_shift",
        "adding 1000 to every score (k_i += u with σ q·u = 1000) changes nothing",
        _score_shift,
        ("no_max_shift",),
        _shiftable,
    ),
    Invariant(
        "prefix_hull",
        "each o_t lies in the hull of v_0 … v_t",
        _hull,
        ("combine_averages",),
    ),
    Invariant(
        "causal_prefix",
        "o_t is unchanged when keys and values after t are perturbed",
        _causal_prefix,
        ("anticausal",),
        lambda s: s.args[1].shape[-2] >= 2,
    ),
    sh.gqa_equals_mha(OP, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(OP, brute_force, mutants=("exclusive_scan", "wrong_scale", "combine_averages")),
)


def _bad_inputs() -> list[BadInput]:
    s = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3))
    q, k, v = s.args
    state = aaren_attention(q, k, v, return_state=True)[1]
    return [
        *sh.bad_arrays(("q", "k", "v"), s),
        *sh.bad_options(s, ("scale",)),
        BadInput("q-two-tokens", (np.concatenate([q, q], -2), k, v), {}, ValueError, r"\bq\b.*one query token"),
        BadInput("k-head-dim", (q, k[..., :-1], v), {}, ValueError, r"\bk\b.*d_k"),
        BadInput("kv-length-mismatch", (q, k, v[..., :-1, :]), {}, ValueError, r"\bk\b.*\bv\b"),
        BadInput("form-unknown", s.args, {"form": "serial"}, ValueError, r"\bform\b"),
        BadInput("return-state-string", s.args, {"return_state": "yes"}, TypeError, r"\breturn_state\b"),
        BadInput("state-not-a-triple", s.args, {"initial_state": state[:2]}, TypeError, r"\binitial_state\b"),
        BadInput(
            "state-wrong-shape",
            s.args,
            {"initial_state": (state[0][..., :1], state[1][..., :1], state[2])},
            ValueError,
            r"\binitial_state\b.*shapes",
        ),
        BadInput(
            "state-negative-sum",
            s.args,
            {"initial_state": (state[0], -state[1], state[2])},
            ValueError,
            r"\binitial_state\b",
        ),
        *(
            BadInput(f"state-{label}", s.args, {"initial_state": parts}, error, match)
            for label, parts, error, match in (
                ("max-string", ("max", state[1], state[2]), TypeError, r"\binitial_state\[0\]"),
                ("sum-string", (state[0], "sum", state[2]), TypeError, r"\binitial_state\[1\]"),
                ("acc-string", (state[0], state[1], "acc"), TypeError, r"\binitial_state\[2\]"),
                ("acc-0d", (state[0], state[1], 1.0), ValueError, r"\binitial_state\[2\]"),
                ("max-wrong-shape", (state[0][..., :1], state[1], state[2]), ValueError, r"\binitial_state\b.*shapes"),
                ("acc-wrong-shape", (state[0], state[1], state[2][..., :1]), ValueError, r"\binitial_state\b.*shapes"),
                ("max-nan", (np.full_like(state[0], np.nan), state[1], state[2]), ValueError, r"\binitial_state\b"),
                (
                    "max-plus-inf",
                    (np.full_like(state[0], np.inf), state[1], state[2]),
                    ValueError,
                    r"\binitial_state\b",
                ),
                (
                    "empty-max-with-mass",
                    (np.full_like(state[0], -np.inf), state[1], state[2]),
                    ValueError,
                    r"\binitial_state\b.*empty prefix",
                ),
            )
        ),
    ]


def flops(s: SampleInput) -> float:
    q, k, v = s.args
    lead = math.prod(np.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    return 2.0 * lead * k.shape[-2] * (k.shape[-1] + v.shape[-1])


FORM = Form(
    name="aaren",
    title="Aaren: attention as a many-to-many RNN (parallel prefix scan)",
    equation=(
        r"o_t = \frac{\sum_{i\le t} e^{s_i} v_i}{\sum_{i\le t} e^{s_i}},\quad s_i = \sigma\, q\cdot k_i,"
        r"\quad (m,\ell,a)_{\le t} = \bigoplus_{i\le t}(s_i, 1, v_i)"
    ),
    reference=aaren_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("feng2024attention"), "§3 (Methodology: many-to-many attention by a parallel prefix scan; Aaren)"
    ),
    status="exact",
    note=(
        "The query is one learned token per head, q of shape (..., H, 1, d_k); the output has one row per key. "
        "The paper leaves the logit scale open: scale defaults to d_k ** -0.5 (SDPA's). The combine is the "
        "online-softmax monoid on (max, sum, acc) triples; the scan is Hillis-Steele recursive doubling."
    ),
    order=29,
    array_args=("q", "k", "v"),
    sample=sample,
    adapt=adapt,
    shapes=SHAPES,
    extra_shapes=(
        Shape(batch=1, heads=4, kv_heads=2, n=9, d=4, d_v=3, options=(("form", "recurrent"), ("scale", 0.7))),
        Shape(batch=1, heads=2, kv_heads=2, n=6, d=3, d_v=2, values="large", options=(("form", "parallel"),)),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=_bad_inputs,
    flops=flops,
    flop_convention="the recurrent cost: one score and one value accumulation per token, 2·B·H·m·(d_k + d_v)",
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8), ("tiny",)),
        BenchCase(Shape(batch=2, heads=8, kv_heads=8, n=1024, d=64, d_v=64), ("quick",)),
        BenchCase(Shape(batch=2, heads=8, kv_heads=8, n=4096, d=64, d_v=64), ("full",), frozenset({"numpy"})),
        BenchCase(
            Shape(batch=8, heads=16, kv_heads=16, n=8192, d=128, d_v=128), ("cuda",), frozenset({"numpy", "composed"})
        ),
    ),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.aaren:aaren_attention",
            "torch",
            dtypes=("float32", "float64", "bfloat16"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
