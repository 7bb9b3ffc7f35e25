"""Declaration of holographic attention (complex-valued; relative-phase decay and coherent superposition)."""

from __future__ import annotations

import cmath
import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.holographic as module
from attnlab.core import BadInput, BenchCase, FastPath, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.holographic import DEFAULT_ALPHA, PHASE_EPS, holographic_attention
from attnlab.reference.softmax import softmax_attention

OP = "holographic_attention"
#: The same operator as ``[Re O | Im O]``: the generic (real-valued) invariants run on it.
REAL = "holographic_attention_real_view"


def oracle(
    q: Any,
    k: Any,
    v: Any,
    *,
    alpha: Any = None,
    scale: float | None = None,
    eps: float = PHASE_EPS,
    cosine: bool = True,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Complex scores, atan2 phase, cosine similarity, decayed softmax and phase-rotated values, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    s = q @ torch.conj_physical(k).transpose(-1, -2)
    phase = torch.atan2(s.imag + eps, s.real + eps)
    sim = s.real
    if cosine:
        norms = torch.linalg.vector_norm(q, dim=-1)[..., :, None] * torch.linalg.vector_norm(k, dim=-1)[..., None, :]
        sim = sim / (norms + eps)
    decay = DEFAULT_ALPHA if alpha is None else T.tensor(np.asarray(alpha, dtype=np.float64)).to(sim.device, sim.dtype)
    if isinstance(decay, torch.Tensor) and decay.ndim == 1:
        decay = decay[:, None, None]
    sigma = q.shape[-1] ** -0.5 if scale is None else scale
    logits = sigma * sim * torch.exp(-decay * phase.abs())
    weights = T.masked_softmax(
        logits, T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    )
    return (weights * torch.exp(1j * phase)).to(v.dtype) @ v


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    *,
    alpha: Any = None,
    scale: float | None = None,
    eps: float = PHASE_EPS,
    cosine: bool = True,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops over every (batch, head) slice, from the definition (complex output)."""
    q, k, v = sh.repeat_kv(*(np.asarray(a, dtype=np.complex128) for a in (q, k, v)))
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    sigma = d**-0.5 if scale is None else scale
    heads = q.shape[-3] if q.ndim >= 3 else 1
    decays = np.broadcast_to(np.asarray(DEFAULT_ALPHA if alpha is None else alpha, dtype=np.float64), (heads,))
    vis = sh.visibility(n, m, causal, mask, q.shape[:-2])
    out = np.zeros((*q.shape[:-1], v.shape[-1]), dtype=np.complex128)
    for idx in np.ndindex(*q.shape[:-2]):
        decay = decays[idx[-1] if q.ndim >= 3 else 0]
        x, y, z = q[idx], k[idx], v[idx]
        for i in range(n):
            seen = [j for j in range(m) if vis[idx][i, j]]
            if not seen:
                continue
            logits, phases = {}, {}
            for j in seen:
                s = sum(x[i, t] * y[j, t].conjugate() for t in range(d))
                phases[j] = math.atan2(s.imag + eps, s.real + eps)
                sim = s.real
                if cosine:
                    sim /= (
                        math.sqrt(sum(abs(x[i, t]) ** 2 for t in range(d)))
                        * math.sqrt(sum(abs(y[j, t]) ** 2 for t in range(d)))
                        + eps
                    )
                logits[j] = sigma * sim * math.exp(-decay * abs(phases[j]))
            top = max(logits.values())
            weights = {j: math.exp(logits[j] - top) for j in seen}
            total = sum(weights.values())
            for c in range(v.shape[-1]):
                out[idx][i, c] = sum(weights[j] / total * cmath.exp(1j * phases[j]) * z[j, c] for j in seen)
    return out


def brute_force_real_view(*args: Any, **kwargs: Any) -> np.ndarray:
    out = brute_force(*args, **kwargs)
    return np.concatenate([out.real, out.imag], axis=-1)


# ---------------------------------------------------------------------------------------------
# samples


def _complex(rng: np.random.Generator, shape: tuple[int, ...], values: str, *, queries: bool) -> np.ndarray:
    make = sh.qk_values if queries else sh.value_values
    return (make(rng, shape, values) + 1j * make(rng, shape, values)) / math.sqrt(2.0)


def sample(seed: int, shape: Shape) -> SampleInput:
    """Complex ``(q, k, v)``: real and imaginary parts drawn as softmax attention's, divided by √2; the
    option ``alpha = "per_head"`` becomes one decay per query head, uniform in [0, 3)."""
    rng = np.random.default_rng(seed)
    b, h, hk = shape.batch, shape.heads, sh.kv_heads_of(shape)
    q = _complex(rng, (b, h, shape.n, shape.d), shape.values, queries=True)
    k = _complex(rng, (b, hk, shape.keys, shape.d), shape.values, queries=True)
    v = _complex(rng, (b, hk, shape.keys, shape.d_v), shape.values, queries=False)
    kwargs: dict[str, Any] = {"causal": shape.causal, **shape.option_dict}
    if kwargs.get("alpha") == "per_head":
        kwargs["alpha"] = rng.uniform(0.0, 3.0, h)
    if shape.masked:
        kwargs["mask"] = sh.sample_mask(rng, shape)
    return SampleInput((q, k, v), kwargs, shape.label())


_RULE: tuple[dict[str, Any], ...] = ({}, {"cosine": False}, {"alpha": "per_head"}, {"eps": 0.0})


def adapt(shape: Shape) -> Shape:
    """Every standard shape applies; options by a rule of the length: plain, ``cosine=False``, per-head decay,
    ``eps = 0``."""
    return shape.with_options(**{**_RULE[shape.n % 4], **shape.option_dict})


def _options(draw: Any, shape: Shape) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["alpha"] = draw(st.one_of(st.just("per_head"), st.floats(0.0, 4.0)))
    if draw(st.booleans()):
        options["cosine"] = False
    if draw(st.booleans()):
        options["eps"] = draw(st.sampled_from([0.0, 1e-8, 1e-3]))
    if draw(st.booleans()):
        options["scale"] = draw(st.floats(0.05, 2.0))
    return options


# ---------------------------------------------------------------------------------------------
# invariants


def close_complex(name: str, got: np.ndarray, want: np.ndarray, atol: float = sh.EXACT) -> None:
    sh.close(f"{name} (real part)", np.real(got), np.real(want), atol)
    sh.close(f"{name} (imaginary part)", np.imag(got), np.imag(want), atol)


def _global_phase(ops: Any, sample: SampleInput) -> None:
    rotation = np.exp(0.7j)
    q, k, v = sample.args
    rotated = sample.with_args(rotation * q, rotation * k, rotation * v).call(ops.holographic_attention)
    close_complex(
        "output after X <- e^{iθ} X (θ = 0.7)", rotated, rotation * sample.call(ops.holographic_attention), 1e-9
    )


def _weights_of(ops: Any, sample: SampleInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(A, q, k, v)`` with KV heads repeated: ``A = |O(V = I)|`` (the phasors have modulus 1)."""
    q, k, v = sh.repeat_kv(*sample.args)
    m = k.shape[-2]
    identity = np.broadcast_to(np.eye(m, dtype=np.complex128), (*k.shape[:-2], m, m))
    return np.abs(ops.holographic_attention(q, k, identity, **sample.kwargs)), q, k, v


def _energy_bound(ops: Any, sample: SampleInput) -> None:
    weights, q, k, v = _weights_of(ops, sample)
    out = ops.holographic_attention(q, k, v, **sample.kwargs)
    bound = weights @ np.abs(v)
    assert np.all(np.abs(out) <= bound * (1 + 1e-12) + 1e-14), "|o_ic| exceeds Σ_j A_ij |v_jc|"
    eps = sample.kwargs.get("eps", PHASE_EPS)
    s = q @ np.conj(np.swapaxes(k, -1, -2))
    phase_row0 = np.arctan2(s.imag + eps, s.real + eps)[..., 0, :]
    aligned = np.abs(v) * np.exp(-1j * phase_row0)[..., :, None]
    first = ops.holographic_attention(q, k, aligned, **sample.kwargs)[..., 0, :]
    sh.close(
        "|o_0| for values aligned with row 0's phases vs Σ_j A_0j |v_j|",
        np.abs(first),
        (weights @ np.abs(v))[..., 0, :],
    )


def _weights_sum_to_one(ops: Any, sample: SampleInput) -> None:
    weights, q, k, _ = _weights_of(ops, sample)
    visible = np.broadcast_to(sh.visible_of(sample, q, k), weights.shape)
    assert np.all(weights[~visible] == 0.0), "a hidden key has a non-zero weight"
    sh.close("row sums of |O(V = I)|", weights.sum(-1), np.any(visible, axis=-1).astype(float))


def _cosine_reduction(ops: Any, sample: SampleInput) -> None:
    q, k, v = sh.repeat_kv(*sample.args)
    positive_q, positive_k = np.abs(q), np.abs(k)  # every s_ij real and > 0, so Δφ = 0 exactly when eps = 0
    kw = {**sample.kwargs, "eps": 0.0}
    got = ops.holographic_attention(positive_q.astype(complex), positive_k.astype(complex), v, **kw)
    if kw.get("cosine", True):
        positive_q = positive_q / np.linalg.norm(positive_q, axis=-1, keepdims=True)
        positive_k = positive_k / np.linalg.norm(positive_k, axis=-1, keepdims=True)
    plain = {key: kw[key] for key in ("scale", "causal", "mask") if key in kw}
    want_re = softmax_attention(positive_q, positive_k, v.real, **plain)
    want_im = softmax_attention(positive_q, positive_k, v.imag, **plain)
    close_complex(
        "Δφ = 0 (real positive scores) vs softmax attention on the (cosine) logits", got, want_re + 1j * want_im
    )


def _positive_rescaling(ops: Any, sample: SampleInput) -> None:
    q, k, v = sample.args
    rng = np.random.default_rng(6)
    exact = sample.with_args(q, k, v, eps=0.0)
    scaled = exact.with_args(
        q * 2.0 ** rng.integers(-5, 6, (*q.shape[:-1], 1)), k * 2.0 ** rng.integers(-5, 6, (*k.shape[:-1], 1)), v
    )
    close_complex(
        "output after q_i <- 2^a q_i, k_j <- 2^b k_j (cosine, eps = 0)",
        scaled.call(ops.holographic_attention),
        exact.call(ops.holographic_attention),
    )


# ---------------------------------------------------------------------------------------------
# mutants


def _nudged(original: Any) -> Any:
    def mutated(*args: Any, **kwargs: Any) -> Any:
        out = np.array(original(*args, **kwargs))
        out[..., -1, :] += 1e-6
        return out

    return mutated


MUTANTS = (
    Mutant(
        "no_conjugate",
        "scores Σ q k without conjugating the keys",
        {"complex_scores": lambda original: lambda q, k: q @ np.swapaxes(k, -1, -2)},
    ),
    Mutant(
        "incoherent_sum",
        "values summed without the phase rotation e^{iΔφ}",
        {"coherent_sum": lambda original: lambda w, phase, v: w.astype(complex) @ v},
    ),
    Mutant(
        "phasor_conjugated",
        "values rotated by e^{−iΔφ}",
        {"coherent_sum": lambda original: lambda w, phase, v: original(w, -phase, v)},
    ),
    Mutant(
        "sim_not_normalised",
        "cosine=True ignored: similarity Re s",
        {"similarity": lambda original: lambda s, q, k, eps, cosine: s.real},
    ),
    Mutant("output_nudged", "the last output row moved by 1e-6", {OP: _nudged}),
    sh.wrong_default_scale(OP),
    sh.top_left_causal(OP),
    sh.leaky_causal(OP),
    sh.interleaved_gqa(OP, (1, 2)),
    sh.drops_last_key(OP, (1, 2)),
    sh.ignores_mask(OP),
    sh.no_max_shift(),
)

INVARIANTS = (
    Invariant(
        "global_phase_equivariance",
        "q, k, v <- e^{iθ} q, k, v (bias-free projections of e^{iθ} X) leaves s, Δφ and A unchanged and "
        "rotates the output: O <- e^{iθ} O",
        _global_phase,
        ("no_conjugate",),
    ),
    Invariant(
        "energy_bound",
        "|o_ic| <= Σ_j A_ij |v_jc|, with equality for values aligned with the row's phases (constructive interference)",
        _energy_bound,
        ("incoherent_sum", "phasor_conjugated"),
    ),
    Invariant(
        "weights_sum_to_one",
        "the weights |O(V = I)| vanish on hidden keys and each visible row sums to 1",
        _weights_sum_to_one,
        ("no_max_shift",),
    ),
    Invariant(
        "cosine_softmax_reduction",
        "real positive scores (Δφ = 0, eps = 0): holographic attention is softmax attention on the cosine (or "
        "dot) logits, applied to the real and imaginary parts of V",
        _cosine_reduction,
        ("sim_not_normalised", "wrong_scale"),
    ),
    Invariant(
        "positive_rescaling",
        "with the cosine similarity and eps = 0, rescaling queries and keys by positive factors leaves the "
        "output unchanged",
        _positive_rescaling,
        ("sim_not_normalised",),
        lambda s: s.kwargs.get("cosine", True),
    ),
    sh.causal_prefix(REAL, [0], [1, 2], mutants=("leaky_causal",)),
    sh.key_permutation(REAL, [1, 2], mutants=("drops_last_key",)),
    sh.query_permutation(REAL, [0], mutants=("output_nudged",)),
    sh.gqa_equals_mha(REAL, [1, 2], mutants=("interleaved_gqa",)),
    sh.matches_brute_force(
        REAL,
        brute_force_real_view,
        mutants=("top_left_causal", "ignores_mask", "output_nudged", "no_conjugate", "incoherent_sum"),
    ),
)


def bad_inputs() -> list[BadInput]:
    base = sample(0, Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3))
    # real parts: valid inputs too, and the shared cases cast them (complex casts would warn)
    real = SampleInput(tuple(np.ascontiguousarray(a.real) for a in base.args), base.kwargs, base.label)
    q, k, v = base.args
    nan = q.copy()
    nan[0, 0, 0, 0] = complex(1.0, np.nan)
    kw = base.kwargs
    return [
        *sh.bad_attention_inputs(real),
        BadInput("q-complex-nan", (nan, k, v), kw, ValueError, r"\bq\b.*NaN"),
        BadInput("v-bool", (q, k, np.ones(v.shape, dtype=bool)), kw, TypeError, r"\bv\b.*dtype"),
        BadInput("alpha-negative", base.args, {**kw, "alpha": -0.1}, ValueError, r"\balpha\b"),
        BadInput("alpha-per-head-length", base.args, {**kw, "alpha": np.ones(3)}, ValueError, r"\balpha\b.*head"),
        BadInput("alpha-string", base.args, {**kw, "alpha": "learned"}, TypeError, r"\balpha\b"),
        BadInput("alpha-bool", base.args, {**kw, "alpha": True}, TypeError, r"\balpha\b.*bool"),
        BadInput("alpha-callable", base.args, {**kw, "alpha": abs}, TypeError, r"\balpha\b"),
        BadInput(
            "alpha-int-array", base.args, {**kw, "alpha": np.ones(2, dtype=np.int64)}, TypeError, r"\balpha\b.*dtype"
        ),
        BadInput("alpha-column", base.args, {**kw, "alpha": np.full((2, 1), 0.5)}, ValueError, r"\balpha\b.*head"),
        BadInput(
            "alpha-per-head-without-head-axis",
            (q[0, 0], k[0, 0], v[0, 0]),
            {**kw, "alpha": np.array([0.5])},
            ValueError,
            r"\balpha\b.*head",
        ),
        BadInput("eps-negative", base.args, {**kw, "eps": -1e-8}, ValueError, r"\beps\b"),
        BadInput("cosine-string", base.args, {**kw, "cosine": "yes"}, TypeError, r"\bcosine\b"),
        BadInput("zero-key-with-eps-0", (q, np.zeros_like(k), v), {**kw, "eps": 0.0}, ValueError, r"\bk\b.*zero"),
    ]


def flops(sample: SampleInput) -> float:
    # complex GEMMs cost 4 real multiply-adds each: the two (q k^H and (A e^{iΔφ}) V) as 4x the real count
    return 4.0 * sh.softmax_flops(sample)


FORM = Form(
    name="holographic",
    order=15,
    title="Holographic attention (complex; relative-phase decay, coherent superposition)",
    equation=(
        r"s_{ij} = q_i^\top \bar k_j,\ \Delta\varphi_{ij} = \operatorname{atan2}(\operatorname{Im}s_{ij}+\epsilon, "
        r"\operatorname{Re}s_{ij}+\epsilon),\ "
        r"A = \operatorname{softmax}_{\text{row}}\!\Big(\tfrac{\operatorname{Re}s_{ij}}"
        r"{\sqrt{d}(\lVert q_i\rVert\lVert k_j\rVert+\epsilon)}e^{-\alpha|\Delta\varphi_{ij}|}\Big),\ "
        r"o_i = \sum_j A_{ij} e^{i\Delta\varphi_{ij}} v_j"
    ),
    reference=holographic_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(
        paper("huang2025holographic"),
        "abstract; constants as in EonHao/Holographic-Transformers@453ccbc",
        abstract_level=True,
    ),
    status="exact",
    note=(
        "The operator is the released code's (EonHao/Holographic-Transformers@453ccbc, attention.py): ε = 1e-8 "
        "added to both atan2 arguments (so Δφ(0) = π/4 and small scores have biased phases) and to the cosine "
        "denominator, decay α = softplus(a) + 1e-6 (α is passed directly; default the value at a = 0), scale "
        "1/√d. It matches the abstract's relative-phase modulation and coherent superposition. The code's "
        "wrap of Δφ to (−π, π] is the identity on atan2's range and is omitted. Extensions: bottom-right "
        "causal, GQA; masks exclude keys exactly (the code fills −1e9). Complex in, complex128 out; "
        "holographic_attention_real_view returns [Re O | Im O]. Global-phase equivariance needs bias-free Q/K/V "
        "projections (the code's ComplexLinear has a complex bias by default)."
    ),
    array_args=("q", "k", "v"),
    row_args=(),
    sample=sample,
    adapt=adapt,
    shapes=sh.attention_shapes(max_d=12, options=_options),
    extra_shapes=(
        Shape(
            batch=1,
            heads=2,
            kv_heads=2,
            n=6,
            m=4,
            d=8,
            d_v=2,
            values="large",
            options=(("cosine", False), ("scale", 1.0)),
        ),
        Shape(batch=1, heads=4, kv_heads=2, n=5, d=4, d_v=3, causal=True, options=(("alpha", 0.0), ("eps", 1e-3))),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=flops,
    flop_convention="4x the real softmax-attention count (two complex GEMMs, 4 real multiply-adds each); "
    + sh.SOFTMAX_FLOPS,
    bench=(
        BenchCase(Shape(batch=1, heads=2, kv_heads=2, n=16, d=8, d_v=8), ("tiny",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=512, d=32, d_v=32), ("quick",)),
        BenchCase(Shape(batch=1, heads=8, kv_heads=8, n=2048, d=32, d_v=32), ("full",)),
        BenchCase(Shape(batch=4, heads=16, kv_heads=16, n=2048, d=64, d_v=64), ("cuda",)),
    ),
    diagnoses=sh.attention_diagnoses(holographic_attention),
    fast_paths=(
        FastPath(
            "torch",
            "attnlab.fastpath.torch.holographic:holographic_attention",
            "torch",
            dtypes=("float32", "float64"),
            devices=("cpu", "cuda"),
            differentiable=True,
        ),
    ),
)
