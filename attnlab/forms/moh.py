"""Declaration of Mixture-of-Head attention (MoH): per-token gates on shared and top-K routed heads."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import attnlab.reference.moh as module
from attnlab.core import BadInput, Form, Invariant, Mutant, SampleInput, Shape
from attnlab.forms import _heads as hd
from attnlab.forms import _shared as sh
from attnlab.papers import Source, paper
from attnlab.reference.moh import moh_attention
from attnlab.reference.softmax import softmax_attention

OP = "moh_attention"
#: Options of a shape that only the sample builder reads.
SAMPLE_ONLY = ("shared_heads",)


def oracle(
    q: Any,
    k: Any,
    v: Any,
    x: Any,
    w_shared: Any,
    w_routed: Any,
    w_mix: Any,
    *,
    top_k: int,
    gating: str = "paper",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> Any:
    """Gated heads with the score matrices and the three router softmaxes written out, in torch."""
    import torch

    from attnlab.forms import _torch as T

    q, k, v = T.repeat_kv(T.tensor(q), T.tensor(k), T.tensor(v))
    scores = T.default_scale(scale, q.shape[-1]) * (q @ k.transpose(-1, -2))
    allowed = T.visibility(q.shape[-2], k.shape[-2], causal=causal, mask=mask, device=q.device)
    heads = T.masked_softmax(scores, allowed) @ v
    x, w_s, w_r, w_m = (T.tensor(a, like=heads) for a in (x, w_shared, w_routed, w_mix))
    shared, routed, mix = (torch.softmax(x @ w.transpose(0, 1), dim=-1) for w in (w_s, w_r, w_m))
    chosen = torch.zeros_like(routed, dtype=torch.bool).scatter(-1, torch.topk(routed, top_k, dim=-1).indices, True)
    picked = torch.where(chosen, routed, torch.zeros_like(routed))
    if gating == "code":
        shared, mix = shared * w_s.shape[0], 2.0 * mix
        picked = picked / picked.sum(dim=-1, keepdim=True) * top_k
    gates = torch.cat([mix[..., :1] * shared, mix[..., 1:] * picked], dim=-1)
    return heads * gates.transpose(-1, -2).unsqueeze(-1)


def _softmax_loop(row: list[float]) -> list[float]:
    top = max(row)
    e = [math.exp(z - top) for z in row]
    return [t / sum(e) for t in e]


def brute_force(
    q: Any,
    k: Any,
    v: Any,
    x: Any,
    w_shared: Any,
    w_routed: Any,
    w_mix: Any,
    *,
    top_k: int,
    gating: str = "paper",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Scalar loops: the heads by :func:`attnlab.forms._shared.attention_loop`, each token's gates by hand."""
    heads = sh.attention_loop(q, k, v, scale=scale, causal=causal, mask=mask)
    x, w_s, w_r, w_m = (np.asarray(a, dtype=np.float64) for a in (x, w_shared, w_routed, w_mix))
    h_s, h_r = w_s.shape[0], w_r.shape[0]
    out = np.array(heads)
    for b in range(heads.shape[0]):
        for t in range(heads.shape[-2]):
            token = x[b, t]
            shared, routed, mix = (
                [sum(w[e, c] * token[c] for c in range(len(token))) for e in range(w.shape[0])] for w in (w_s, w_r, w_m)
            )
            shared, routed, mix = _softmax_loop(shared), _softmax_loop(routed), _softmax_loop(mix)
            chosen = sorted(range(h_r), key=lambda e: (-routed[e], e))[:top_k]
            mass = sum(routed[e] for e in chosen)
            gates = []
            for e in range(h_s):
                gates.append(2.0 * mix[0] * h_s * shared[e] if gating == "code" else mix[0] * shared[e])
            for e in range(h_r):
                if e not in chosen:
                    gates.append(0.0)
                else:
                    gates.append(2.0 * mix[1] * top_k * routed[e] / mass if gating == "code" else mix[1] * routed[e])
            for h in range(h_s + h_r):
                out[b, h, t] = heads[b, h, t] * gates[h]
    return out


# ---------------------------------------------------------------------------------------------
# samples


def adapt(shape: Shape) -> Shape:
    """At least three heads (``H = 1, 2, 4`` become ``3, 4, 6``), ``h_s = 1`` for ``H = 3`` else 2,
    ``K = ⌈h_r / 2⌉``; paper gating on odd lengths, the released code's on even ones."""
    heads = {1: 3, 2: 4}.get(shape.heads, shape.heads + 2)
    kv = heads if shape.kv_heads == shape.heads else (shape.kv_heads if heads % shape.kv_heads == 0 else 1)
    opts = shape.option_dict
    shared = int(opts.get("shared_heads", 1 if heads <= 3 else 2))
    options = {
        "shared_heads": shared,
        "top_k": (heads - shared + 1) // 2,
        "gating": "code" if shape.n % 2 == 0 else "paper",
        **opts,
    }
    return replace(shape, heads=heads, kv_heads=kv).with_options(**options)


def router(rng: np.random.Generator, batch: int, n: int, shared: int, routed: int) -> tuple[np.ndarray, ...]:
    """``(x, w_shared, w_routed, w_mix)`` whose routed scores of every token are at least 0.5 apart.

    The routed router's rows are orthonormal (times 1.5), and ``x`` is solved for prescribed routed
    logits (a random ranking with spacing 1 and jitter ±0.25) plus a component in the router's null
    space; top-K selection is then the same at every precision the fast paths run in.
    """
    width = routed + 3
    basis, _ = np.linalg.qr(rng.standard_normal((width, routed)))
    w_routed = 1.5 * basis.T
    logits = np.argsort(rng.random((batch, n, routed)), axis=-1) + rng.uniform(-0.25, 0.25, (batch, n, routed))
    null = rng.standard_normal((batch, n, width)) @ (np.eye(width) - basis @ basis.T)
    x = (logits / 1.5) @ basis.T + null
    w_shared = 2.0 * rng.standard_normal((shared, width)) / math.sqrt(width)
    w_mix = 2.0 * rng.standard_normal((2, width)) / math.sqrt(width)
    return x, w_shared, w_routed, w_mix


def sample(seed: int, shape: Shape) -> SampleInput:
    opts = shape.option_dict
    shared = int(opts.get("shared_heads", 1))
    base = sh.attention_sample(
        seed, replace(shape, options=tuple((k, v) for k, v in shape.options if k not in SAMPLE_ONLY))
    )
    routing = router(np.random.default_rng(seed + 104729), shape.batch, shape.n, shared, shape.heads - shared)
    return SampleInput((*base.args, *routing), base.kwargs, base.label)


@st.composite
def shapes(draw: Any) -> Shape:
    base = draw(sh.attention_shapes(options=sh.positive_scale))
    heads = draw(st.sampled_from([2, 3, 4, 5, 6]))
    kv = draw(st.sampled_from([g for g in range(1, heads + 1) if heads % g == 0]))
    shared = draw(st.integers(1, heads - 1))
    options = {
        "shared_heads": shared,
        "top_k": draw(st.integers(1, heads - shared)),
        "gating": draw(st.sampled_from(["paper", "code"])),
    }
    return replace(base, heads=heads, kv_heads=kv).with_options(**options)


# ---------------------------------------------------------------------------------------------
# invariants


def _attention_options(sample: SampleInput) -> dict[str, Any]:
    return {key: sample.kwargs[key] for key in ("scale", "causal", "mask") if key in sample.kwargs}


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _uniform_router_is_mha(ops: Any, sample: SampleInput) -> None:
    q, k, v, x, w_s, w_r, w_m = sample.args
    zeros = (np.zeros_like(w_s), np.zeros_like(w_r), np.zeros_like(w_m))
    out = ops.moh_attention(q, k, v, x, *zeros, **{**sample.kwargs, "top_k": w_r.shape[0], "gating": "code"})
    sh.close(
        "MoH (code gates, uniform routers, every head selected) vs multi-head softmax",
        out,
        softmax_attention(q, k, v, **_attention_options(sample)),
    )


def _gate_budget(ops: Any, sample: SampleInput) -> None:
    q, k, v, x, w_s, w_r, w_m = sample.args
    top_k, gating = sample.kwargs["top_k"], sample.kwargs["gating"]
    h_s = w_s.shape[0]
    gates = ops.moh_attention(q, k, np.ones((*v.shape[:-1], 1)), x, w_s, w_r, w_m, **sample.kwargs)[..., 0]
    gates = np.swapaxes(gates, -1, -2)  # (..., n, H)
    visible = np.any(sh.visible_of(sample, q, k[..., :1, :, :]), axis=-1)[..., 0, :]  # the same rows for every head
    gates = gates[np.broadcast_to(visible, gates.shape[:-1])]
    tokens = np.broadcast_to(x, (*visible.shape, x.shape[-1]))[np.broadcast_to(visible, x.shape[:-1])]
    alpha = _softmax_rows(tokens @ w_m.T)
    routed_p = _softmax_rows(tokens @ w_r.T)
    chosen = np.argsort(-routed_p, axis=-1)[:, :top_k]
    routed = gates[:, h_s:]
    assert np.all(np.sum(routed != 0.0, axis=-1) == top_k), "a token does not activate exactly top_k routed heads"
    assert np.all(np.take_along_axis(routed, chosen, axis=-1) != 0.0), (
        "an active routed head is not among the top_k scores"
    )
    if gating == "code":
        sh.close("Σ shared gates vs 2 α_1 h_s", gates[:, :h_s].sum(-1), 2.0 * alpha[:, 0] * h_s)
        sh.close("Σ routed gates vs 2 α_2 K", routed.sum(-1), 2.0 * alpha[:, 1] * top_k)
    else:
        sh.close("shared gates vs α_1 softmax(W_s x)", gates[:, :h_s], alpha[:, :1] * _softmax_rows(tokens @ w_s.T))
        sh.close(
            "active routed gates vs α_2 softmax(W_r x)", routed, np.where(routed != 0.0, alpha[:, 1:] * routed_p, 0.0)
        )


def _routed_permutation(ops: Any, sample: SampleInput) -> None:
    q, k, v, x, w_s, w_r, w_m = sample.args
    heads, h_s = q.shape[-3], w_s.shape[0]
    order = np.random.default_rng(5).permutation(w_r.shape[0])
    perm = np.concatenate([np.arange(h_s), h_s + order])
    k_e, v_e = hd.expand_heads(k, heads)[..., perm, :, :], hd.expand_heads(v, heads)[..., perm, :, :]
    got = ops.moh_attention(q[..., perm, :, :], k_e, v_e, x, w_s, w_r[order], w_m, **sample.kwargs)
    sh.close(
        "output after permuting the routed heads and their router rows",
        got,
        sample.call(ops.moh_attention)[..., perm, :, :],
    )


def _router_is_tokenwise(ops: Any, sample: SampleInput) -> None:
    q, k, v, x, w_s, w_r, w_m = sample.args
    moved = np.array(x)
    moved[..., 1::2, :] += np.random.default_rng(6).standard_normal(moved[..., 1::2, :].shape)
    got = ops.moh_attention(q, k, v, moved, w_s, w_r, w_m, **sample.kwargs)
    sh.close(
        "even tokens' outputs after perturbing the odd tokens' router inputs",
        got[..., 0::2, :],
        sample.call(ops.moh_attention)[..., 0::2, :],
    )


def _paper_is_code_rescaled(ops: Any, sample: SampleInput) -> None:
    w_s, w_r = sample.args[4:6]
    h_s, h_r = w_s.shape[0], w_r.shape[0]
    every = {**sample.kwargs, "top_k": h_r}
    code = ops.moh_attention(*sample.args, **{**every, "gating": "code"})
    paper_gated = ops.moh_attention(*sample.args, **{**every, "gating": "paper"})
    factors = np.concatenate([np.full(h_s, 2.0 * h_s), np.full(h_r, 2.0 * h_r)])[:, None, None]
    sh.close("code gates vs paper gates x (2 h_s | 2 h_r), every routed head active", code, factors * paper_gated)


# ---------------------------------------------------------------------------------------------
# mutants specific to MoH


def _rolled(original: Any) -> Any:
    def mutated(
        x: np.ndarray, w_shared: np.ndarray, w_routed: np.ndarray, w_mix: np.ndarray, **kwargs: Any
    ) -> np.ndarray:
        gates = np.array(original(x, w_shared, w_routed, w_mix, **kwargs))
        h_s = w_shared.shape[0]
        gates[..., h_s:] = np.roll(gates[..., h_s:], 1, axis=-1)
        return gates

    return mutated


def _not_renormalised(original: Any) -> Any:
    def mutated(shared: np.ndarray, picked: np.ndarray, mix: np.ndarray, *, top_k: int, gating: str) -> np.ndarray:
        if gating != "code":
            return original(shared, picked, mix, top_k=top_k, gating=gating)
        return np.concatenate(
            [2.0 * mix[..., :1] * shared * shared.shape[-1], 2.0 * mix[..., 1:] * picked * top_k], axis=-1
        )

    return mutated


def _code_only(change: Any) -> Any:
    def make(original: Any) -> Any:
        def mutated(shared: np.ndarray, picked: np.ndarray, mix: np.ndarray, *, top_k: int, gating: str) -> np.ndarray:
            if gating == "code":
                shared, picked, mix = change(shared, picked, mix)
            return original(shared, picked, mix, top_k=top_k, gating=gating)

        return mutated

    return make


MUTANTS = (
    *hd.attention_mutants(OP),
    Mutant(
        "top_k_plus_one",
        "K + 1 routed heads activated",
        {"top_k_mask": lambda orig: lambda s, k: orig(s, min(k + 1, s.shape[-1]))},
    ),
    Mutant(
        "pooled_router",
        "the router reads the sequence mean of x (not each token)",
        {"router_scores": lambda orig: lambda x, w: orig(np.broadcast_to(x.mean(axis=-2, keepdims=True), x.shape), w)},
    ),
    Mutant("rolled_routed_gates", "routed gate j applied to routed head j + 1", {"route": _rolled}),
    Mutant(
        "not_renormalised",
        "code gating without renormalising the selected routed scores",
        {"combine": _not_renormalised},
    ),
    Mutant(
        "mix_ignored",
        "the shared/routed mixing router replaced by [1/2, 1/2]",
        {"combine": lambda orig: lambda s, p, m, **kw: orig(s, p, np.full_like(m, 0.5), **kw)},
    ),
    Mutant(
        "shared_scale_missing",
        "code gating without the factor h_s on shared gates",
        {"combine": _code_only(lambda s, p, m: (s / s.shape[-1], p, m))},
    ),
    Mutant(
        "mix_not_doubled",
        "code gating without the factor 2 on [α_1, α_2]",
        {"combine": _code_only(lambda s, p, m: (s, p, m / 2.0))},
    ),
)


def _has_code_gating(sample: SampleInput) -> bool:
    return sample.kwargs["gating"] == "code"


INVARIANTS = (
    Invariant(
        "uniform_router_is_mha",
        "code gates with zero router weights and every routed head selected are all 1: MoH is multi-head "
        "softmax attention",
        _uniform_router_is_mha,
        ("shared_scale_missing", "mix_not_doubled"),
    ),
    Invariant(
        "gate_budget",
        "each token activates exactly its top_k routed heads; code: Σ shared = 2α_1 h_s, Σ routed = 2α_2 K; "
        "paper: g = α p",
        _gate_budget,
        ("top_k_plus_one", "not_renormalised", "mix_ignored", "rolled_routed_gates"),
    ),
    Invariant(
        "routed_head_permutation",
        "permuting the routed heads with their router rows permutes the output heads",
        _routed_permutation,
        ("rolled_routed_gates",),
        lambda s: s.args[5].shape[0] >= 2,
    ),
    Invariant(
        "router_is_tokenwise",
        "a token's gates depend only on its own router input x_t",
        _router_is_tokenwise,
        ("pooled_router",),
        lambda s: s.args[0].shape[-2] >= 2,
    ),
    Invariant(
        "paper_is_code_rescaled",
        "with every routed head active the code's gates are the paper's times 2 h_s (shared) and 2 h_r (routed)",
        _paper_is_code_rescaled,
        ("shared_scale_missing", "mix_not_doubled"),
    ),
    *hd.attention_invariants(
        OP,
        brute_force,
        query_args=[0, 3],
        key_args=[1, 2],
        gqa_args=[1, 2],
        brute_mutants=("wrong_scale", "top_k_plus_one", "rolled_routed_gates"),
    ),
)

BAD_SHAPE = Shape(
    batch=1, heads=4, kv_heads=2, n=5, m=6, d=4, d_v=3, options=(("gating", "paper"), ("shared_heads", 1), ("top_k", 2))
)


def bad_inputs() -> list[BadInput]:
    s = sample(0, BAD_SHAPE)
    q, k, v, x, w_s, w_r, w_m = s.args
    return [
        *sh.bad_arrays(("q", "k", "v", "x", "w_shared", "w_routed", "w_mix"), s),
        *sh.bad_options(s, ("scale", "causal", "mask")),
        *hd.qkv_shape_cases(s),
        hd.bad_option("top-k-zero", s, ValueError, r"\btop_k\b.*positive", top_k=0),
        hd.bad_option("top-k-above-routed", s, ValueError, r"\btop_k\b.*at most", top_k=4),
        hd.bad_option("top-k-float", s, TypeError, r"\btop_k\b", top_k=1.5),
        hd.bad_option("gating-unknown", s, ValueError, r"\bgating\b.*paper", gating="soft"),
        hd.bad_arg("x-wrong-length", s, 3, x[..., :-1, :], ValueError, r"\bx\b.*tokens"),
        hd.bad_arg("w-shared-wrong-width", s, 4, w_s[:, :-1], ValueError, r"\bw_shared\b.*\bD\b"),
        hd.bad_arg("w-routed-wrong-width", s, 5, w_r[:, :-1], ValueError, r"\bw_routed\b.*\bD\b"),
        hd.bad_arg("w-mix-wrong-width", s, 6, w_m[:, :-1], ValueError, r"\bw_mix\b.*\bD\b"),
        BadInput(
            "x-batch-mismatch",
            (*(np.concatenate([a, a]) for a in (q, k, v)), np.concatenate([x, x, x]), w_s, w_r, w_m),
            s.kwargs,
            ValueError,
            r"\bx\b.*leading dims",
        ),
        hd.bad_arg("w-mix-three-rows", s, 6, np.concatenate([w_m, w_m[:1]]), ValueError, r"\bw_mix\b.*\(2, D\)"),
        hd.bad_arg("head-count-mismatch", s, 5, w_r[:-1], ValueError, r"\bw_shared/w_routed\b.*h_s \+ h_r"),
        hd.bad_arg("q-no-head-axis", s, 0, q[0, 0], ValueError, r"\bq\b"),
        BadInput(
            "kv-heads-not-dividing",
            (q, np.concatenate([k] * 3, -3), np.concatenate([v] * 3, -3), x, w_s, w_r, w_m),
            s.kwargs,
            ValueError,
            r"\bk\b.*heads",
        ),
    ]


FORM = Form(
    name="moh",
    order=6,
    title="Mixture-of-Head attention (shared + top-K routed heads, per-token gates)",
    equation=(
        r"O_{t,h} = g_{t,h}\,\operatorname{softmax}(\sigma Q_h K_{g(h)}^\top + M)_t V_{g(h)},"
        r"\quad g_{t,h} = \alpha_{1}p^s_h \ (h < h_s),\ \alpha_{2}p^r_h\,[h \in \mathrm{TopK}]"
    ),
    reference=moh_attention,
    module=module,
    brute_force=brute_force,
    oracle=oracle,
    source=Source(paper("jin2024moh"), "shared and routed heads, two-stage routing", abstract_level=True),
    status="exact",
    note=(
        "gating='paper' (default): g = α_1 softmax(W_s x) on shared heads, α_2 softmax(W_r x) on the top-K routed "
        "heads. gating='code' follows SkyworkAI/MoH (MoH-ViT/attention.py): selected routed scores renormalised "
        "to sum 1, and the shared, routed and mixing softmaxes multiplied by h_s, K and 2, so uniform routers with "
        "every head active give gates of 1 (multi-head attention). Returns the gated head outputs before W_O; "
        "every head's attention is computed, as in the code. Needs h_s >= 1 and h_r >= 1 (the code's h_s = 0 "
        "variant, routed gates only, is not covered). The paper's gate equations are taken from its description "
        "of two-stage routing (its body was not re-read here); the code variant was checked against the release."
    ),
    array_args=("q", "k", "v", "x", "w_shared", "w_routed", "w_mix"),
    row_args=(0, 3),
    batch_args=("q", "k", "v", "x", "mask"),
    sample=sample,
    adapt=adapt,
    shapes=shapes(),
    extra_shapes=(
        Shape(
            batch=1,
            heads=6,
            kv_heads=3,
            n=7,
            m=9,
            d=4,
            d_v=3,
            causal=True,
            options=(("gating", "code"), ("scale", 0.4), ("shared_heads", 2), ("top_k", 3)),
        ),
        Shape(
            batch=2,
            heads=5,
            kv_heads=5,
            n=6,
            d=3,
            d_v=2,
            masked=True,
            options=(("gating", "paper"), ("shared_heads", 1), ("top_k", 1)),
        ),
    ),
    invariants=INVARIANTS,
    mutants=MUTANTS,
    bad_inputs=bad_inputs,
    flops=hd.query_head_flops,
    flop_convention=sh.SOFTMAX_FLOPS + ", for every head (the reference and the code compute unselected heads too)",
    bench=hd.bench_cases(
        {"gating": "code", "shared_heads": 2, "top_k": 4},
        (("tiny",), 1, 6, 2, 16, 8, True),
        (("quick",), 1, 8, 8, 512, 64, False),
        (("full",), 1, 8, 8, 2048, 64, False),
        (("cuda",), 4, 16, 16, 4096, 128, True),
    ),
    diagnoses=sh.attention_diagnoses(moh_attention),
    fast_paths=(hd.torch_path("attnlab.fastpath.torch.moh:moh_attention"),),
)
