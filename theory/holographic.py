"""Holographic attention: global phase equivariance and the interference (energy) bound (family ``holographic``).

Huang et al. 2025, "Holographic Transformers for Complex-Valued Signal Processing: Integrating Phase
Interference into Self-Attention" (arXiv 2509.19331). Only the abstract was read: holographic attention
"modulates interactions by relative phase and coherently superimposes values" and "maintains phase
consistency under linear mixing"; third-party summaries of the paper list a global phase equivariance and
energy bounds among its theoretical results. Both claims below are therefore the lab's readings of those
statements, checked on the lab's float64 reference (:mod:`attnlab.reference.holographic`) inside a layer with
complex projections as in the authors' code (EonHao/Holographic-Transformers@453ccbc, whose
``ComplexLinear`` layers carry a complex bias by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.holographic import holographic_attention
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

FAMILY = "holographic"
SOURCE = Source(
    paper("huang2025holographic"),
    "abstract",
    quote="Holographic attention modulates interactions by relative phase and coherently superimposes values",
    abstract_level=True,
)


def _complex(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2.0)


def holographic_layer(
    x: np.ndarray,
    weights: tuple[np.ndarray, ...],
    biases: tuple[np.ndarray, ...],
    heads: int,
    operator: Callable[..., np.ndarray],
) -> np.ndarray:
    """``Y = Attn(X W_Q + b_Q, X W_K + b_K, X W_V + b_V) W_O + b_O`` with the heads split from ``D``."""
    batch, n, width = x.shape

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, n, heads, width // heads).transpose(0, 2, 1, 3)

    q, k, v = (split(x @ w + b) for w, b in zip(weights[:3], biases[:3]))
    merged = operator(q, k, v).transpose(0, 2, 1, 3).reshape(batch, n, width)
    return merged @ weights[3] + biases[3]


def global_phase_equivariance(
    *,
    operator: Callable[..., np.ndarray] = holographic_attention,
    bias_scale: float = 1.0,
    draws: int = 6,
    seed: int = 1,
) -> CheckResult:
    """``layer(e^{iθ} X) = e^{iθ} layer(X)`` without biases (to 1e-10), and how far it fails with the code's biases."""
    rng = np.random.default_rng(seed)
    free_err = biased_err = 0.0
    for _ in range(draws):
        heads, head_dim, n = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 12))
        width = heads * head_dim
        x = _complex(rng, 2, n, width)
        weights = tuple(_complex(rng, width, width) / math.sqrt(width) for _ in range(4))
        zero = tuple(np.zeros(width, dtype=complex) for _ in range(4))
        biases = tuple(bias_scale * _complex(rng, width) for _ in range(4))
        rotation = np.exp(1j * rng.uniform(0.3, 2.8))
        for bias, slot in ((zero, "free"), (biases, "biased")):
            base = holographic_layer(x, weights, bias, heads, operator)
            turned = holographic_layer(rotation * x, weights, bias, heads, operator)
            err = float(np.max(np.abs(turned - rotation * base))) / max(1.0, float(np.max(np.abs(base))))
            if slot == "free":
                free_err = max(free_err, err)
            else:
                biased_err = max(biased_err, err)
    if free_err > 1e-10:
        verdict = "falsified"
    elif biased_err > 1e-3:
        verdict = "refined"
    else:
        verdict = "holds"
    evidence = (
        f"bias-free: max rel. error {free_err:.1e} <= 1e-10; with the code's complex biases: {biased_err:.2g} "
        f"over {draws} layers"
    )
    return CheckResult(verdict, evidence, {"bias_free_error": free_err, "biased_error": biased_err})


def interference_bound(
    *, operator: Callable[..., np.ndarray] = holographic_attention, draws: int = 8, seed: int = 2
) -> CheckResult:
    """``A = |O(V = I)|`` is row-stochastic, ``|o_ic| <= Σ_j A_ij |v_jc|`` (so ``|o_ic| <= max_j |v_jc|``), with
    equality (to 1e-10) for values aligned with row 0's phases."""
    rng = np.random.default_rng(seed)
    excess = gap = row_error = 0.0
    for _ in range(draws):
        n, m, d, d_v = (int(rng.integers(1, 10)) for _ in range(4))
        q, k, v = _complex(rng, n, d), _complex(rng, m, d), _complex(rng, m, d_v)
        eps = 1e-8
        weights = np.abs(operator(q, k, np.eye(m, dtype=complex), eps=eps))
        row_error = max(row_error, float(np.max(np.abs(weights.sum(-1) - 1.0))))
        bound = weights @ np.abs(v)
        excess = max(excess, float(np.max(np.abs(operator(q, k, v, eps=eps)) - bound)))
        s = q @ np.conj(k).T
        aligned = np.abs(v) * np.exp(-1j * np.arctan2(s.imag + eps, s.real + eps))[0][:, None]
        gap = max(gap, float(np.max(np.abs(np.abs(operator(q, k, aligned, eps=eps)[0]) - bound[0]))))
    ok = row_error <= 1e-12 and excess <= 1e-12 and gap <= 1e-10
    evidence = (
        f"max |Σ_j A_ij − 1| = {row_error:.1e}, max(|o| − Σ A|v|) = {excess:.1e} (both <= 1e-12); constructive case "
        f"|o_0| − Σ A|v| = {gap:.1e} <= 1e-10 over {draws} draws"
    )
    data = {"row_sum_error": row_error, "excess": excess, "constructive_gap": gap}
    return CheckResult("holds" if ok else "falsified", evidence, data)


def _no_conjugate(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    return holographic_attention(q, np.conj(k), v, **kwargs)  # scores q·k instead of q·conj(k)


def _weights_inflated(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    return 1.001 * holographic_attention(q, k, v, **kwargs)


def _phasor_conjugated(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    return np.conj(holographic_attention(q, k, np.conj(v), **kwargs))  # Σ_j A_ij e^{−iΔφ_ij} v_j


register(
    Claim(
        id="holographic.phase.global_equivariance",
        family=FAMILY,
        statement=r"Y(e^{i\theta}X) = e^{i\theta}\,Y(X)\ \text{for a holographic attention layer}",
        kind="reading",
        source=SOURCE,
        verdict="refined",
        reason=(
            "holds exactly when the Q, K, V and output projections are bias-free; the released code's "
            "ComplexLinear projections carry a complex bias by default, which a global phase does not rotate"
        ),
        reads='the abstract\'s "maintains phase consistency under linear mixing"',
        condition="the Q, K, V and output projections are bias-free",
        quick=global_phase_equivariance,
        mutants=(
            Mutant(
                "no_conjugate", "scores without the key conjugate (not phase-invariant)", {"operator": _no_conjugate}
            ),
            Mutant(
                "biases_zeroed",
                "the biased layers get zero biases (the bias effect is not measured)",
                {"bias_scale": 0.0},
            ),
        ),
        assumptions=(
            'reading of the abstract\'s "maintains phase consistency under linear mixing" (summaries of the paper: '
            "a global phase equivariance) as equivariance of the whole layer to a global phase of its input",
            "float64 reference operator; random complex weights scaled by 1/√D",
        ),
    )
)

register(
    Claim(
        id="holographic.interference.energy_bound",
        family=FAMILY,
        statement=(
            r"|o_{ic}| \le \sum_j A_{ij}|v_{jc}|,\ \text{equality when}\ "
            r"e^{i\Delta\varphi_{ij}}v_{jc}\ \text{are phase-aligned}"
        ),
        kind="reading",
        source=SOURCE,
        verdict="holds",
        reads='the abstract\'s "coherently superimposes values"',
        quick=interference_bound,
        mutants=(
            Mutant(
                "weights_inflated", "outputs scaled by 1.001 (weights summing above 1)", {"operator": _weights_inflated}
            ),
            Mutant(
                "phasor_conjugated",
                "values rotated by e^{−iΔφ}: no constructive case",
                {"operator": _phasor_conjugated},
            ),
        ),
        assumptions=(
            'reading of "coherently superimposes values" (summaries of the paper: energy bounds) as the triangle '
            "bound of the coherent sum, with weights A = |O(V = I)| summing to 1, and its constructive equality case",
        ),
    )
)
