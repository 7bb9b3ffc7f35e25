"""LASER: attention with an exponential transformation of the values, family ``laser``.

LASER (Duvvuri & Dhillon, arXiv 2411.03493; v1 ICLR 2025 submission, v2 ICML 2025) replaces
``O = PV`` by ``O = log(P · exp(V))`` with ``P = softmax_row(S)``. For one query row with logits ``z``
and values ``V (m, d_v)``: ``O_c = LSE_j(z_j + V_jc) − LSE_j(z_j) = log E_{j∼p}[e^{V_jc}]``, the
cumulant-generating function of the values under the attention weights. Its exact gradients use the
value-tilted posterior ``w_c = softmax(z + V_{:,c})``:

* ``∂O_c/∂z_j = w_jc − p_j``  (softmax attention: ``p_j (V_jc − o_c)``),
* ``∂O_c/∂V_jc = w_jc``        (softmax attention: ``p_j``).

Every numeric check runs float64 through an attention operator it takes as a keyword argument
(default: the lab's reference :func:`attnlab.reference.laser_attention` or
:func:`attnlab.reference.softmax_attention`), so the gradients it judges are those of the operator,
taken by central differences; a logit vector ``z`` enters as ``q = z``, ``K = I``, ``scale = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.proofs_checks import laser as symbolic
from attnlab.reference import (
    attention_weights,
    laser_attention,
    laser_attention_global_shift,
    softmax_attention,
    softmax_attention_lse,
)
from attnlab.theory._checks import (
    central_difference_jacobian,
    random_logits,
    relative_error,
    rng_for,
    stable_softmax,
)
from attnlab.theory.registry import CheckResult, Claim, Mutant, Verdict, register
from attnlab.validation import reference_precision

FAMILY = "laser"
LASER_PAPER = paper("duvvuri2025laser")
#: Where the lab's LASER lemmas live: the operator the paper defines (only the abstract, the Figure 1
#: caption and secondary summaries were read).
LASER_SETTING = Source(
    LASER_PAPER,
    "v2, LASER attention O = log(softmax(S)·exp(V)) (abstract and Figure 1 caption)",
    abstract_level=True,
)
ROUNDING = 1e-12
Operator = Callable[..., np.ndarray]


def _verdict_if(ok: bool) -> Verdict:
    return "holds" if ok else "falsified"


def _combine(symbolic_result: CheckResult, numeric_ok: bool, evidence: str, data: dict) -> CheckResult:
    ok = numeric_ok and symbolic_result.verdict == "holds"
    if symbolic_result.verdict != "holds":
        evidence = f"{evidence}; SymPy: {symbolic_result.evidence}"
    return CheckResult(_verdict_if(ok), evidence, {**data, "sympy": symbolic_result.evidence})


# --- exact formulas -----------------------------------------------------------------------------


def laser_row(z: np.ndarray, values: np.ndarray, operator: Operator = laser_attention) -> np.ndarray:
    """LASER output ``(d_v,)`` of one query row with logits ``z (m,)`` via ``operator`` (the reference)."""
    z = np.asarray(z, dtype=np.float64)
    return operator(z[None, :], np.eye(z.shape[0]), values, scale=1.0)[0]


def softmax_row(z: np.ndarray, values: np.ndarray, operator: Operator = softmax_attention) -> np.ndarray:
    """Softmax-attention output ``(d_v,)`` of one query row with logits ``z (m,)`` (reference operator)."""
    z = np.asarray(z, dtype=np.float64)
    return operator(z[None, :], np.eye(z.shape[0]), values, scale=1.0)[0]


def operator_logit_gradient(operator: Operator, z: np.ndarray, values: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """``∂O_c/∂z_j`` of an attention ``operator`` by central differences, batched over rows.

    ``z (B, m)`` logit rows and ``values (B, m, d_v)`` → ``(B, d_v, m)``. Each row enters as one query
    ``q = z_b`` against ``K = I`` with ``scale = 1``, so ``S = z``; the ``2m`` perturbed rows of every
    batch element go through the operator in ``2m`` calls.
    """
    z = np.asarray(z, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    batch, m = z.shape
    keys = np.broadcast_to(np.eye(m), (batch, m, m))
    grad = np.empty((batch, values.shape[-1], m))
    for j in range(m):
        shift = np.zeros(m)
        shift[j] = step
        upper = operator((z + shift)[:, None, :], keys, values, scale=1.0)[:, 0, :]
        lower = operator((z - shift)[:, None, :], keys, values, scale=1.0)[:, 0, :]
        grad[:, :, j] = (upper - lower) / (2.0 * step)
    return grad


def tilted_weights(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``w_jc = softmax_j(z_j + V_jc)``, shape ``(m, d_v)``: the attention re-weighted by ``e^{V}``."""
    return stable_softmax(np.asarray(z)[:, None] + np.asarray(values), axis=0)


def laser_logit_gradient(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``∂O_c/∂z_j = w_jc − p_j``, shape ``(d_v, m)``."""
    return (tilted_weights(z, values) - stable_softmax(z)[:, None]).T


def laser_value_gradient(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``∂O_c/∂V_jc = w_jc`` (zero across channels), shape ``(d_v, m)``."""
    return tilted_weights(z, values).T


def softmax_logit_gradient(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``∂o_c/∂z_j = p_j (V_jc − o_c)``, shape ``(d_v, m)``."""
    p = stable_softmax(z)
    return (p[:, None] * (values - (p @ values)[None, :])).T


def two_token_gradients(alpha: np.ndarray | float, delta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """N = 2, d_v = 1: ``(g_sm, g_L)`` = gradients w.r.t. token 1's logit, ``α = σ(z₁−z₂)``, ``Δ = v₁−v₂``.

    ``g_sm = α(1−α)Δ``, ``g_L = α(1−α)(e^Δ−1)/(αe^Δ+1−α)``.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    g_softmax = alpha * (1 - alpha) * delta
    g_laser = alpha * (1 - alpha) * np.expm1(delta) / (alpha * np.exp(delta) + 1 - alpha)
    return g_softmax, g_laser


def log_gradient_ratio(alpha: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``log(g_L/g_sm) = log((e^Δ−1)/Δ) − log(αe^Δ + 1 − α)`` for ``Δ > 0`` (the α(1−α) factors cancel)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    return np.log(np.expm1(delta) / delta) - np.log1p(alpha * np.expm1(delta))


def crossover_alpha(delta: np.ndarray | float) -> np.ndarray:
    """``α*(Δ) = (e^Δ − 1 − Δ)/(Δ(e^Δ − 1))``.

    For ``Δ > 0`` LASER's N = 2 gradient is larger iff ``α < α*``.
    """
    delta = np.asarray(delta, dtype=np.float64)
    small = delta <= 1.0
    # Δ ≤ 1: the direct quotient (no cancellation); Δ > 1: the equal form 1/Δ − e^{−Δ}/(1 − e^{−Δ}),
    # which never overflows.
    d_small = np.where(small, delta, 1.0)
    d_large = np.where(small, 2.0, delta)
    direct = (np.expm1(d_small) - d_small) / (d_small * np.expm1(d_small))
    tail = 1.0 / d_large - np.exp(-d_large) / -np.expm1(-d_large)
    return np.where(small, direct, tail)


def query_gradient_blocks(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float, form: str) -> np.ndarray:
    """Row blocks ``∂O_i/∂q_i`` of shape ``(n, d_v, d)`` for ``S = scale·QKᵀ`` (no mask).

    Row ``i`` of ``O`` depends only on ``q_i``: ``∂O_ic/∂q_i = scale · Σ_j G_ijc k_j`` with
    ``G_ijc = w_ijc − p_ij`` (LASER) or ``p_ij (V_jc − o_ic)`` (softmax).
    """
    scores = scale * (q @ k.T)
    p = stable_softmax(scores, axis=-1)  # (n, m)
    if form == "laser":
        coefficient = stable_softmax(scores[:, :, None] + v[None, :, :], axis=1) - p[:, :, None]
    elif form == "softmax":
        coefficient = p[:, :, None] * (v[None, :, :] - (p @ v)[:, None, :])
    else:
        raise ValueError(f"form: expected 'laser' or 'softmax', got {form!r}")
    return scale * np.einsum("njc,jd->ncd", coefficient, k)


def _row_draw(rng: np.random.Generator, *, value_scale: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    m, d_v = int(rng.integers(1, 17)), int(rng.integers(1, 5))
    z = np.clip(random_logits(rng, m), -30.0, 30.0)
    values = rng.uniform(-1.0, 1.0, size=(m, d_v)) * value_scale * rng.uniform(0.05, 1.0)
    return z, values


# --- logit gradient -----------------------------------------------------------------------------


def check_logit_gradient(
    *,
    operator: Operator = laser_attention,
    gradient: Callable[[np.ndarray, np.ndarray], np.ndarray] = laser_logit_gradient,
    draws: int = 60,
    seed: int = 601,
) -> CheckResult:
    """FD (ε = 1e-6) of the ``operator``'s row against ``gradient`` (``w − p``); FD of the full ``∂O/∂Q``
    against the batched blocks used by the sharpness figure; SymPy for N = 2."""
    rng = rng_for(seed)
    worst = 0.0
    identity = 0.0
    for _ in range(draws):
        z, values = _row_draw(rng)
        analytic = gradient(z, values)
        fd = central_difference_jacobian(lambda logits, v=values: laser_row(logits, v, operator), z)
        worst = max(worst, relative_error(analytic, fd))
        p = stable_softmax(z)
        second_form = (p[:, None] * np.expm1(values - laser_row(z, values, operator)[None, :])).T
        identity = max(identity, relative_error(second_form, analytic))
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((6, 3)), rng.standard_normal((6, 2)) * 4.0
    blocks = query_gradient_blocks(q, k, v, scale=0.7, form="laser")
    fd_full = central_difference_jacobian(lambda x: operator(x, k, v, scale=0.7), q)  # (n, d_v, n, d)
    batched = relative_error(blocks, np.einsum("icid->icd", fd_full))
    off_diagonal = float(
        np.max(np.abs(fd_full - np.einsum("icd,ij->icjd", np.einsum("icid->icd", fd_full), np.eye(q.shape[0]))))
    )
    numeric_ok = worst <= 1e-6 and identity <= 1e-10 and batched <= 1e-6 and off_diagonal <= 1e-9
    evidence = (
        f"FD vs w − p: max rel err {worst:.1e} ≤ 1e-6 over {draws} rows; "
        f"= p(e^(V−O) − 1) err {identity:.0e}; "
        f"∂O/∂Q blocks err {batched:.1e}; SymPy N=2"
    )
    data = {"fd_err": worst, "identity_err": identity, "blocks_err": batched, "draws": draws}
    return _combine(symbolic.two_token_logit_gradient(), numeric_ok, evidence, data)


# --- value gradient -----------------------------------------------------------------------------


def check_value_gradient(
    *,
    operator: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    draws: int = 60,
    seed: int = 602,
) -> CheckResult:
    """FD of the ``operator``'s row w.r.t. ``V`` against ``w`` (diagonal in the channel) and, as a
    control, the softmax row against ``p``."""
    rng = rng_for(seed)
    worst_laser = 0.0
    worst_softmax = 0.0
    for _ in range(draws):
        z, values = _row_draw(rng)
        fd = central_difference_jacobian(lambda v, logits=z: laser_row(logits, v, operator), values)  # (d_v, m, d_v)
        d_v = values.shape[1]
        expected = np.einsum("cj,ce->cje", laser_value_gradient(z, values), np.eye(d_v))
        worst_laser = max(worst_laser, relative_error(fd, expected))
        fd_softmax = central_difference_jacobian(lambda v, logits=z: softmax_row(logits, v, softmax_operator), values)
        expected_softmax = np.einsum("j,ce->cje", stable_softmax(z), np.eye(d_v))
        worst_softmax = max(worst_softmax, relative_error(fd_softmax, expected_softmax))
    ok = worst_laser <= 1e-6 and worst_softmax <= 1e-6
    return CheckResult(
        _verdict_if(ok),
        f"FD ∂O/∂V vs w: max rel err {worst_laser:.1e}; softmax control vs p: {worst_softmax:.1e} "
        f"(≤ 1e-6, {draws} rows)",
        {"laser_err": worst_laser, "softmax_err": worst_softmax, "draws": draws},
    )


# --- bounded gradient ---------------------------------------------------------------------------

#: The value scales of the bounded-gradient check: LASER's logit gradient must stay bounded at all of
#: them while softmax's grows linearly.
VALUE_SCALES: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
#: Central-difference slack: eps·|O|/h with |O| up to ~2·10⁴ and h = 1e-6.
FD_SLACK = 1e-5


def check_bounded_gradient(
    *,
    operator: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    entry_bound: float = 1.0,
    l1_bound: float = 2.0,
    step: float = 1e-6,
    draws: int = 80,
    seed: int = 603,
) -> CheckResult:
    """``|∂O_c/∂z_j| ≤ 1`` and ``‖∇_z O_c‖₁ ≤ 2`` at every value scale, with the gradient taken from the
    ``operator`` by central differences, while the softmax operator's logit gradient grows linearly
    with the value scale; a tiny ``p_j`` can still carry an O(1) LASER gradient."""
    rng = rng_for(seed)
    worst_entry = 0.0
    worst_l1 = 0.0
    softmax_growth = []
    scales = np.array(VALUE_SCALES)
    for _ in range(draws):
        z, values = _row_draw(rng, value_scale=1.0)
        rows = np.broadcast_to(z, (scales.size, z.size))
        scaled_values = scales[:, None, None] * values[None]
        grad = operator_logit_gradient(operator, rows, scaled_values, step)  # (scales, d_v, m)
        worst_entry = max(worst_entry, float(np.max(np.abs(grad))))
        worst_l1 = max(worst_l1, float(np.max(np.sum(np.abs(grad), axis=-1))))
        ends = operator_logit_gradient(softmax_operator, rows[[0, -1]], scaled_values[[0, -1]], step)
        base = float(np.max(np.abs(ends[0])))
        if base > 1e-8:
            softmax_growth.append(float(np.max(np.abs(ends[1]))) / base)
    growth = float(np.median(softmax_growth))
    # A token with p_j ≈ 1e-7 whose value exceeds the rest by 20 dominates the e^V-weighted mass.
    z_tiny = np.array([[np.log(1e-7), 0.0, 0.0, 0.0]])
    v_tiny = np.array([[[20.0], [0.0], [0.0], [0.0]]])
    tiny_laser = float(operator_logit_gradient(operator, z_tiny, v_tiny, step)[0, 0, 0])
    tiny_softmax = float(operator_logit_gradient(softmax_operator, z_tiny, v_tiny, step)[0, 0, 0])
    top = VALUE_SCALES[-1]
    ok = worst_entry <= entry_bound + FD_SLACK and worst_l1 <= l1_bound + FD_SLACK
    ok &= abs(growth - top) <= 1e-4 * top and tiny_laser > 0.9 and tiny_softmax < 1e-5
    return CheckResult(
        _verdict_if(ok),
        f"FD of the operator: max |∂O/∂z| = {worst_entry:.4f} ≤ {entry_bound:g}, max ‖∇_z O‖₁ = {worst_l1:.4f} ≤ "
        f"{l1_bound:g} for values ×{VALUE_SCALES[0]:g}…×{top:g} over {draws} rows; softmax grad grows "
        f"×{growth:.0f}; p_j=1e-7, ΔV=20: LASER {tiny_laser:.3f} vs softmax {tiny_softmax:.1e}",
        {
            "max_entry": worst_entry,
            "max_l1": worst_l1,
            "softmax_growth": growth,
            "tiny_p_laser": tiny_laser,
            "tiny_p_softmax": tiny_softmax,
            "draws": draws,
        },
    )


# --- N = 2 crossover ----------------------------------------------------------------------------


def _two_token_operator_gradients(
    laser: Operator, softmax_operator: Operator, alpha: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(g_sm, g_L)`` at N = 2, d_v = 1 by central differences of the two operators (flat arrays)."""
    alpha = np.ravel(alpha)
    delta = np.ravel(delta)
    z = np.stack([np.log(alpha / (1.0 - alpha)), np.zeros_like(alpha)], axis=-1)
    values = np.stack([delta, np.zeros_like(delta)], axis=-1)[..., None]
    g_softmax = operator_logit_gradient(softmax_operator, z, values)[:, 0, 0]
    g_laser = operator_logit_gradient(laser, z, values)[:, 0, 0]
    return g_softmax, g_laser


def check_crossover(
    *,
    laser: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    threshold: Callable[[Any], np.ndarray] = crossover_alpha,
    grid: int = 400,
    fd_points: int = 30,
    seed: int = 604,
) -> CheckResult:
    """Closed forms ``g_sm, g_L`` vs FD of the operators at N = 2; ``sign(g_L − g_sm) = sign(α*(Δ) − α)``
    on an (α, Δ) grid away from a 1e-9 band; α*(1), α*(5), α*(10); SymPy solve."""
    rng = rng_for(seed)
    alpha_fd, delta_fd = rng.uniform(0.01, 0.99, fd_points), rng.uniform(0.1, 10.0, fd_points)
    fd_softmax, fd_laser = _two_token_operator_gradients(laser, softmax_operator, alpha_fd, delta_fd)
    closed_softmax, closed_laser = two_token_gradients(alpha_fd, delta_fd)
    fd_err = float(
        max(
            np.max(np.abs(fd_softmax - closed_softmax) / np.maximum(1.0, np.abs(closed_softmax))),
            np.max(np.abs(fd_laser - closed_laser) / np.maximum(1.0, np.abs(closed_laser))),
        )
    )
    alphas = np.linspace(0.0005, 0.9995, grid)
    deltas = np.linspace(0.05, 20.0, grid)
    a, dl = np.meshgrid(alphas, deltas, indexing="ij")
    g_softmax, g_laser = two_token_gradients(a, dl)
    margin = threshold(dl) - a
    away = np.abs(margin) > 1e-9
    mismatches = int(np.sum(np.sign(g_laser - g_softmax)[away] != np.sign(margin)[away]))
    reported = {f"{d:g}": float(threshold(d)) for d in (1.0, 5.0, 10.0)}
    expected = {"1": 0.418, "5": 0.193, "10": 0.0999}
    values_ok = all(abs(reported[key] - expected[key]) <= 5e-4 for key in expected)
    numeric_ok = fd_err <= 1e-7 and mismatches == 0 and values_ok
    evidence = (
        f"FD vs closed forms err {fd_err:.1e} at {fd_points} points; sign(g_L−g_sm) = sign(α*−α) on "
        f"{int(away.sum())} grid points, {mismatches} mismatches; α*(1,5,10) = "
        + ", ".join(f"{v:.4g}" for v in reported.values())
    )
    data = {"fd_err": fd_err, "grid_points": int(away.sum()), "mismatches": mismatches, "alpha_star": reported}
    return _combine(symbolic.crossover_threshold(), numeric_ok, evidence, data)


#: The (α, Δ) points of the "larger gradient" check: α the weight of the higher-value token, Δ the gap.
LARGER_ALPHAS = np.linspace(0.005, 0.995, 60)
LARGER_DELTAS = np.linspace(0.1, 10.0, 60)
#: |α − α*(Δ)| below this is too close to the boundary for a central-difference sign.
BOUNDARY_BAND = 1e-4


def check_larger_gradient(
    *,
    laser: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    threshold: Callable[[Any], np.ndarray] = crossover_alpha,
) -> CheckResult:
    """The paper's "admits a larger gradient signal" at N = 2, with both gradients taken from the
    operators by central differences over an (α, Δ) grid.

    ``refined`` when LASER's gradient is larger exactly where ``α < α*(Δ)`` (the recorded condition)
    and smaller elsewhere; ``holds`` if it is never smaller, ``falsified`` if it is never larger or if
    the region where it is larger is not ``α < α*(Δ)``.
    """
    a, dl = np.meshgrid(LARGER_ALPHAS, LARGER_DELTAS, indexing="ij")
    g_softmax, g_laser = _two_token_operator_gradients(laser, softmax_operator, a, dl)
    larger = g_laser > g_softmax * (1.0 + 1e-6)
    smaller = g_laser < g_softmax * (1.0 - 1e-6)
    margin = np.ravel(threshold(dl) - a)
    away = np.abs(margin) > BOUNDARY_BAND
    mismatches = int(np.sum(larger[away] != (margin[away] > 0)) + np.sum(smaller[away] != (margin[away] < 0)))
    table = []
    for gap in (-5.0, 0.0, 5.0):
        alpha = 1.0 / (1.0 + np.exp(-gap))
        g_s, g_l = _two_token_operator_gradients(laser, softmax_operator, np.array([alpha]), np.array([5.0]))
        table.append({"logit_gap": gap, "softmax": float(g_s[0]), "laser": float(g_l[0])})
    if not smaller.any():
        verdict: Verdict = "holds"
    elif not larger.any() or mismatches:
        verdict = "falsified"
    else:
        verdict = "refined"
    shown = "; ".join(f"gap {row['logit_gap']:+g}: L {row['laser']:.3g} vs sm {row['softmax']:.3g}" for row in table)
    stars = ", ".join(f"α*({d:g}) = {float(crossover_alpha(d)):.4g}" for d in (1.0, 5.0, 10.0))
    return CheckResult(
        verdict,
        f"N=2 FD of both operators on {larger.size} (α, Δ) points, Δ ∈ [{LARGER_DELTAS[0]:g}, "
        f"{LARGER_DELTAS[-1]:g}]: LASER larger at {int(larger.sum())}, smaller at {int(smaller.sum())}; "
        f"larger iff α < α*(Δ) with {mismatches} mismatches away from the boundary; {stars}; Δ=5 → {shown}",
        {"points": int(larger.size), "mismatches": mismatches, "delta5_table": table},
    )


# --- sandwich -----------------------------------------------------------------------------------


def check_sandwich(
    *,
    operator: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    draws: int = 200,
    seed: int = 605,
) -> CheckResult:
    """``max(PV, max_j(V_j + log p_j)) ≤ LASER ≤ max_{visible j} V_j`` on random (causal or not) inputs
    of the ``operator``; Jensen's ``LASER ≥ PV`` is the first lower bound."""
    rng = rng_for(seed)
    worst = 0.0
    for index in range(draws):
        n, m, d, d_v = (
            int(rng.integers(1, 9)),
            int(rng.integers(1, 17)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 5)),
        )
        causal = bool(index % 2) and n <= m
        q, k = rng.standard_normal((n, d)) * 3.0, rng.standard_normal((m, d)) * 3.0
        v = rng.uniform(-50.0, 50.0, size=(m, d_v))
        out = operator(q, k, v, causal=causal)
        weights = attention_weights(q, k, causal=causal)
        visible = np.tril(np.ones((n, m), dtype=bool), k=m - n) if causal else np.ones((n, m), dtype=bool)
        upper = np.max(np.where(visible[:, :, None], v[None, :, :], -np.inf), axis=1)
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        lower_max = np.max(np.where(visible[:, :, None], v[None, :, :] + log_w[:, :, None], -np.inf), axis=1)
        lower = np.maximum(softmax_operator(q, k, v, causal=causal), lower_max)
        scale = np.maximum(1.0, np.abs(out))
        worst = max(worst, float(np.max((lower - out) / scale)), float(np.max((out - upper) / scale)))
    return CheckResult(
        _verdict_if(worst <= ROUNDING),
        f"max relative violation of max(PV, max_j V_j + log p_j) ≤ LASER ≤ max V: {worst:.1e} over {draws} draws",
        {"max_violation": worst, "draws": draws},
    )


# --- equivariance, shift invariance, scaling limits ---------------------------------------------


def check_shift_equivariance(*, operator: Operator = laser_attention, draws: int = 200, seed: int = 606) -> CheckResult:
    """``LASER(V + 1cᵀ) = LASER(V) + 1cᵀ``; the LWSE evaluation ``log(P e^{V−1mᵀ}) + 1mᵀ`` with any
    shift ``m`` (not only the column max) equals the ``operator``; LASER is not homogeneous."""
    rng = rng_for(seed)
    worst_shift = 0.0
    worst_lwse = 0.0
    homogeneity_gap = 0.0
    for index in range(draws):
        n, m, d, d_v = (
            int(rng.integers(1, 7)),
            int(rng.integers(1, 13)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 4)),
        )
        causal = bool(index % 2) and n <= m
        q, k = rng.standard_normal((n, d)) * 2.0, rng.standard_normal((m, d)) * 2.0
        v = rng.uniform(-20.0, 20.0, size=(m, d_v))
        c = rng.uniform(-100.0, 100.0, size=d_v)
        out = operator(q, k, v, causal=causal)
        worst_shift = max(worst_shift, relative_error(operator(q, k, v + c, causal=causal), out + c))
        shift = np.max(v, axis=0) + rng.uniform(-20.0, 20.0, size=d_v)  # any m in a range where e^{V−m} is finite
        weights = attention_weights(q, k, causal=causal)
        lwse = np.log(weights @ np.exp(v - shift)) + shift
        worst_lwse = max(worst_lwse, relative_error(lwse, out))
        homogeneity_gap = max(homogeneity_gap, float(np.max(np.abs(operator(q, k, 2 * v, causal=causal) - 2 * out))))
    ok = worst_shift <= 1e-12 and worst_lwse <= 1e-12 and homogeneity_gap > 1.0
    return CheckResult(
        _verdict_if(ok),
        f"shift equivariance err {worst_shift:.1e}; LWSE with arbitrary m vs reference err {worst_lwse:.1e} "
        f"(≤ 1e-12, {draws} draws); |LASER(2V) − 2·LASER(V)| up to {homogeneity_gap:.3g} (not homogeneous)",
        {"shift_err": worst_shift, "lwse_err": worst_lwse, "homogeneity_gap": homogeneity_gap, "draws": draws},
    )


def check_value_scale_limits(
    *,
    operator: Operator = laser_attention,
    softmax_operator: Operator = softmax_attention,
    draws: int = 150,
    seed: int = 607,
) -> CheckResult:
    """``0 ≤ LASER(αV)/α − PV ≤ α·max|V|²/2`` for α ∈ (0, 1e-2] and ``LASER(αV)/α ∈ [max V + log p_max*/α,
    max V]`` (→ max over the support as α → ∞); SymPy series ``mean + t·Var/2``."""
    rng = rng_for(seed)
    worst_small = -np.inf
    worst_large = 0.0
    for _ in range(draws):
        n, m, d, d_v = (
            int(rng.integers(1, 6)),
            int(rng.integers(1, 13)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 4)),
        )
        q, k = rng.standard_normal((n, d)) * 2.0, rng.standard_normal((m, d)) * 2.0
        v = rng.uniform(-10.0, 10.0, size=(m, d_v))
        linear = softmax_operator(q, k, v)
        bound_scale = float(np.max(np.abs(v))) ** 2 / 2.0
        for alpha in (1e-2, 1e-3, 1e-4):
            excess = operator(q, k, alpha * v) / alpha - linear
            # Lower side: Jensen (≥ 0) up to rounding; upper side: the second-order bound.
            worst_small = max(
                worst_small,
                float(np.max(-excess)) - 1e-9,
                float(np.max(excess)) - (alpha * bound_scale + 1e-9),
            )
        weights = attention_weights(q, k)
        best = np.argmax(v, axis=0)
        for alpha in (1e2, 1e3):
            scaled = operator(q, k, alpha * v) / alpha
            top = np.max(v, axis=0)[None, :]
            lower = top + np.log(weights[:, best]) / alpha
            worst_large = max(worst_large, float(np.max(scaled - top)), float(np.max(lower - scaled)))
    numeric_ok = worst_small <= 0.0 and worst_large <= 1e-9
    evidence = (
        f"small α: max violation of 0 ≤ LASER(αV)/α − PV ≤ α·max|V|²/2 is {max(worst_small, 0.0):.1e}; "
        f"large α: LASER(αV)/α within [max V + log p*/α, max V] (violation {worst_large:.1e}); SymPy series"
    )
    data = {"small_violation": worst_small, "large_violation": worst_large, "draws": draws}
    return _combine(symbolic.small_value_series(), numeric_ok, evidence, data)


# --- the global-shift (LWSE) evaluation ---------------------------------------------------------


def lwse_float32(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The paper's global-column-max LWSE evaluated in float32 arithmetic."""
    w32 = weights.astype(np.float32)
    v32 = values.astype(np.float32)
    shift = np.max(v32, axis=0, keepdims=True)
    with np.errstate(divide="ignore", under="ignore"):
        return np.log(w32 @ np.exp(v32 - shift)) + shift


#: ``log`` of the smallest normal float: a row whose largest term ``a_ij e^{V_jc − m_c}`` falls below it
#: is summed in subnormals (fewer significant digits) and, further down, underflows to 0.
NORMAL_FLOOR: dict[str, float] = {
    "float64": float(np.log(np.finfo(np.float64).tiny)),
    "float32": float(np.log(np.finfo(np.float32).tiny)),
}
#: Where ``exp`` underflows to exactly 0 (half the smallest subnormal) and LWSE gives ``−inf``.
UNDERFLOW: dict[str, float] = {
    "float64": math.log(float(np.finfo(np.float64).smallest_subnormal)) - math.log(2.0),
    "float32": math.log(float(np.finfo(np.float32).smallest_subnormal)) - math.log(2.0),
}
#: Accuracy expected where every row stays normal: a few hundred ulps of the output.
ACCURACY: dict[str, float] = {"float64": 1e-13, "float32": 1e-6}
#: Gaps ``δ = m_c − V_0c`` probed on a causal row that sees only key 0 (exact output ``−δ``): through the
#: normal range, the subnormal band and beyond the underflow, in each dtype.
BAND_PROBES: dict[str, tuple[float, ...]] = {
    "float64": (100.0, 500.0, 700.0, 705.0, 708.0, 712.0, 720.0, 728.0, 735.0, 740.0, 744.0, 746.0, 800.0, 900.0),
    "float32": (10.0, 50.0, 80.0, 85.0, 87.0, 89.0, 92.0, 95.0, 98.0, 101.0, 103.0, 104.0, 110.0, 120.0),
}


def _band_probe(global_shift: Operator, dtype: str, gaps: tuple[float, ...]) -> list[dict[str, float]]:
    """Relative error of ``global_shift`` (run at ``dtype``) on causal rows ``V = [[−δ], [0]]``, row 0."""
    rows = []
    for gap in gaps:
        q = k = np.zeros((2, 1))
        v = np.array([[-gap], [0.0]])
        with reference_precision(dtype), np.errstate(divide="ignore", under="ignore"):
            got = float(global_shift(q, k, v, causal=True)[0, 0])
        error = abs(got - (-gap)) / gap if np.isfinite(got) else np.inf
        rows.append({"gap": gap, "value": got, "rel_err": error})
    return rows


def check_lwse_global_shift(
    *,
    global_shift: Operator = laser_attention_global_shift,
    reference: Operator = laser_attention,
    normal_floor: dict[str, float] = NORMAL_FLOOR,
    probes: dict[str, tuple[float, ...]] = BAND_PROBES,
    accuracy: dict[str, float] = ACCURACY,
    draws: int = 200,
    seed: int = 608,
) -> CheckResult:
    """The LWSE trick with a global per-column max, judged inside and outside the normal float range.

    Random draws (values in [−50, 50], optional causal mask) against the reference; and causal rows
    ``V = [[−δ], [0]]`` (row 0 sees only key 0, exact output ``−δ``) probed through the band where
    ``e^{−δ}`` is subnormal (float64: ``δ`` from 708.4 to 745.1; float32: 87.3 to 104.0) and beyond.

    Verdict: ``refined`` when LWSE is accurate wherever every row's largest term stays normal
    (``max_j(log a_ij + V_jc) − m_c ≥ log tiny``: the recorded condition) and inaccurate or ``−inf``
    somewhere outside it; ``holds`` if it is accurate everywhere; ``falsified`` if it is inaccurate
    somewhere inside the condition.
    """
    rng = rng_for(seed)
    worst_draw = 0.0
    finite_draws = 0
    for index in range(draws):
        n, m, d, d_v = (
            int(rng.integers(1, 7)),
            int(rng.integers(1, 13)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 4)),
        )
        causal = bool(index % 2) and n <= m
        q, k = rng.standard_normal((n, d)) * 3.0, rng.standard_normal((m, d)) * 3.0
        v = rng.uniform(-50.0, 50.0, size=(m, d_v))
        weights = attention_weights(q, k, causal=causal)
        with np.errstate(divide="ignore"):
            largest = np.max(np.log(weights)[:, :, None] + v[None, :, :], axis=1) - np.max(v, axis=0)
        if np.all(largest >= normal_floor["float64"]):
            shifted = global_shift(q, k, v, causal=causal)
            finite_draws += bool(np.all(np.isfinite(shifted)))
            worst_draw = max(worst_draw, relative_error(shifted, reference(q, k, v, causal=causal)))
    inside_err = {"float64": worst_draw, "float32": 0.0}
    band_err = {"float64": 0.0, "float32": 0.0}
    underflows: dict[str, list[float]] = {"float64": [], "float32": []}
    rows = {}
    for dtype in ("float64", "float32"):
        rows[dtype] = _band_probe(global_shift, dtype, probes[dtype])
        for row in rows[dtype]:
            if -row["gap"] >= normal_floor[dtype]:
                inside_err[dtype] = max(inside_err[dtype], row["rel_err"])
            elif np.isfinite(row["rel_err"]):
                band_err[dtype] = max(band_err[dtype], row["rel_err"])
            else:
                underflows[dtype].append(row["gap"])
    accurate_inside = all(inside_err[t] <= accuracy[t] for t in accuracy)
    degrades_outside = any(band_err[t] > accuracy[t] or underflows[t] for t in accuracy)
    verdict: Verdict = ("refined" if degrades_outside else "holds") if accurate_inside else "falsified"
    parts = [
        f"{t}: rel err ≤ {inside_err[t]:.0e} while m − V ≤ {-NORMAL_FLOOR[t]:.1f}, up to {band_err[t]:.0e} in the "
        f"subnormal band ({-NORMAL_FLOOR[t]:.1f}, {-UNDERFLOW[t]:.1f}], −inf at m − V = "
        f"{', '.join(f'{g:g}' for g in underflows[t]) or 'none'}"
        for t in ("float64", "float32")
    ]
    return CheckResult(
        verdict,
        f"random draws inside the normal range: LWSE == reference to {worst_draw:.0e} ({finite_draws} finite); "
        + "; ".join(parts),
        {
            "max_err_draws": worst_draw,
            "finite_draws": finite_draws,
            "inside_err": inside_err,
            "band_err": band_err,
            "underflow_gaps": underflows,
            "probes": rows,
        },
    )


# --- figures -------------------------------------------------------------------------------


def figure_gradient_ratio_heatmap(outdir: Path) -> list[Path]:
    """log₁₀(g_L/g_sm) over (α, Δ) for N = 2 with the analytic boundary α*(Δ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from attnlab.io import save_figure

    alphas = np.linspace(0.002, 0.998, 250)
    deltas = np.linspace(0.1, 10.0, 200)
    a, dl = np.meshgrid(alphas, deltas)
    log10_ratio = log_gradient_ratio(a, dl) / np.log(10.0)
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    image = ax.imshow(
        log10_ratio,
        origin="lower",
        aspect="auto",
        extent=(alphas[0], alphas[-1], deltas[0], deltas[-1]),
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=float(log10_ratio.min()), vmax=float(log10_ratio.max())),
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label=r"$\log_{10}(|g_{\mathrm{LASER}}| / |g_{\mathrm{softmax}}|)$")
    ax.plot(
        crossover_alpha(deltas),
        deltas,
        color="k",
        lw=2,
        label=r"$\alpha^*(\Delta)=\frac{e^\Delta-1-\Delta}{\Delta(e^\Delta-1)}$",
    )
    ax.text(0.02, 1.0, "LASER larger", color="darkred", fontsize=11, weight="bold")
    ax.text(0.55, 2.0, "softmax larger", color="navy", fontsize=11, weight="bold")
    ax.set_xlabel(r"attention weight $\alpha$ on the higher-value token")
    ax.set_ylabel(r"value gap $\Delta = v_1 - v_2$")
    ax.set_title("N = 2: where LASER's logit gradient exceeds softmax's")
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    data = {
        "alpha": alphas,
        "delta": deltas,
        "log10_ratio_rows_delta": log10_ratio,
        "alpha_star": crossover_alpha(deltas),
    }
    return save_figure(fig, outdir, "laser_gradient_ratio_heatmap", data)


def sharpness_sweep(
    multipliers: np.ndarray, *, value_scale: float = 1.0, n: int = 256, d: int = 32, seed: int = 620
) -> dict[str, np.ndarray]:
    """‖∂O/∂Q_β‖_F for softmax and LASER attention, and the fraction of weights < 1e-3, as the queries
    ``Q_β = βQ`` grow and ``S = Q_β Kᵀ/√d`` sharpens (seeded standard-normal Q, K and
    ``V = value_scale · N(0, 1)``, all ``n × d``).

    The gradient is taken w.r.t. ``Q_β`` itself, so β enters only through the attention pattern.
    """
    rng = rng_for(seed)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    v = v * value_scale
    softmax_norm, laser_norm, tiny = [], [], []
    for beta in multipliers:
        q_beta = float(beta) * q
        softmax_norm.append(np.linalg.norm(query_gradient_blocks(q_beta, k, v, scale=d**-0.5, form="softmax")))
        laser_norm.append(np.linalg.norm(query_gradient_blocks(q_beta, k, v, scale=d**-0.5, form="laser")))
        tiny.append(np.mean(stable_softmax(q_beta @ k.T / np.sqrt(d), axis=-1) < 1e-3))
    return {
        "beta": multipliers,
        "softmax": np.array(softmax_norm),
        "laser": np.array(laser_norm),
        "fraction_below_1e-3": np.array(tiny),
    }


def figure_gradient_vs_sharpness(outdir: Path) -> list[Path]:
    """‖∂O/∂Q‖_F vs attention sharpness for standard and LASER attention (n = 256)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import save_figure

    multipliers = np.logspace(-1, 1.7, 20)
    value_scales = (1.0, 4.0)
    sweeps = {scale: sharpness_sweep(multipliers, value_scale=scale) for scale in value_scales}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    for color, scale in zip(("C0", "C3"), value_scales):
        sweep = sweeps[scale]
        left.plot(multipliers, sweep["softmax"], "o-", ms=3, color=color, label=f"softmax, V ~ {scale:g}·N(0,1)")
        left.plot(multipliers, sweep["laser"], "s--", ms=3, color=color, label=f"LASER, V ~ {scale:g}·N(0,1)")
        right.plot(
            sweep["fraction_below_1e-3"],
            sweep["laser"] / sweep["softmax"],
            "o-",
            ms=3,
            color=color,
            label=f"V ~ {scale:g}·N(0,1)",
        )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel(r"query scale $\beta$  ($S = \beta QK^\top/\sqrt{d}$)")
    left.set_ylabel(r"$\|\partial O / \partial Q_\beta\|_F$")
    left.set_title("gradient norm vs sharpness (n = 256, d = 32)")
    left.grid(True, which="major", alpha=0.3)
    left.legend(fontsize=8)
    right.axhline(1.0, color="k", lw=1)
    right.set_xlabel("fraction of attention weights < 1e-3")
    right.set_ylabel("LASER / softmax gradient norm")
    right.set_title("ratio: LASER larger only while attention is diffuse")
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    data = {f"value_scale={scale:g}": sweep for scale, sweep in sweeps.items()}
    return save_figure(fig, outdir, "laser_gradient_vs_sharpness", {**data, "n": 256, "d": 32, "seed": 620})


# --- mutants: deliberately wrong operators and constants ----------------------------------------


def _laser_unnormalised(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False) -> np.ndarray:
    """``log Σ_j e^{S_ij + V_jc}``: LASER without the ``− LSE_j(S_ij)`` normaliser."""
    lse = softmax_attention_lse(q, k, v, scale=scale, causal=causal)[1]
    return laser_attention(q, k, v, scale=scale, causal=causal) + lse[..., None]


def _laser_values_doubled(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False) -> np.ndarray:
    """``log(P e^{2V})/2``: the exponential transformation at the wrong temperature."""
    return laser_attention(q, k, 2.0 * np.asarray(v), scale=scale, causal=causal) / 2.0


def _laser_ignoring_mask(q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False) -> np.ndarray:
    """LASER that attends to every key whatever the causal mask says."""
    return laser_attention(q, k, v, scale=scale)


AS_SOFTMAX = Mutant(
    "softmax_attention_as_laser", "softmax attention PV in place of log(P e^V)", {"operator": softmax_attention}
)
UNNORMALISED = Mutant(
    "laser_without_normaliser", "log Σ e^(S+V), the − LSE(S) dropped", {"operator": _laser_unnormalised}
)

# --- registration -------------------------------------------------------------------------------

register(
    Claim(
        id="laser.gradient.logits",
        family=FAMILY,
        statement=(
            r"O_c = \log \textstyle\sum_j p_j e^{V_{jc}}:\ \frac{\partial O_c}{\partial z_j} = w_{jc} - p_j"
            r" = p_j\big(e^{V_{jc} - O_c} - 1\big),\ w_{:,c} = \mathrm{softmax}(z + V_{:,c})"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=("one query row, no mask; float64 FD with ε = 1e-6",),
        verdict="holds",
        quick=check_logit_gradient,
        full=partial(check_logit_gradient, draws=800),
        figure=figure_gradient_vs_sharpness,
        mutants=(
            Mutant(
                "softmax_gradient_formula",
                "p_j(V_jc − o_c) claimed as LASER's logit gradient",
                {"gradient": softmax_logit_gradient},
            ),
            UNNORMALISED,
        ),
    )
)
register(
    Claim(
        id="laser.gradient.values",
        family=FAMILY,
        statement=(
            r"\frac{\partial O_c}{\partial V_{jc'}} = w_{jc}\,[c = c']"
            r"\quad(\text{softmax attention: } p_j)"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=("one query row, no mask",),
        verdict="holds",
        quick=check_value_gradient,
        full=partial(check_value_gradient, draws=800),
        mutants=(Mutant("values_doubled_inside", "log(P e^(2V))/2", {"operator": _laser_values_doubled}),),
    )
)
register(
    Claim(
        id="laser.gradient.bounded",
        family=FAMILY,
        statement=(
            r"\Big|\frac{\partial O_c}{\partial z_j}\Big| \le 1,\ \|\nabla_z O_c\|_1 \le 2 \text{ for all } V;"
            r"\ \text{softmax's } p_j(V_{jc} - o_c) \text{ scales with the value spread}"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=(
            "gradients of the operators by central differences (ε = 1e-6)",
            f"values scaled ×{VALUE_SCALES[0]:g} … ×{VALUE_SCALES[-1]:g}",
        ),
        verdict="holds",
        quick=check_bounded_gradient,
        full=partial(check_bounded_gradient, draws=2000),
        figure=figure_gradient_vs_sharpness,
        mutants=(AS_SOFTMAX, Mutant("l1_bound_too_small", "‖∇_z O‖₁ ≤ 1.9 claimed", {"l1_bound": 1.9})),
    )
)
register(
    Claim(
        id="laser.gradient.larger",
        family=FAMILY,
        statement=r"\text{LASER admits a larger gradient signal than softmax attention}",
        kind="paper",
        source=Source(
            LASER_PAPER,
            "v2, abstract",
            "we introduce a new attention mechanism called LASER, which we analytically show to admit a larger "
            "gradient signal",
            abstract_level=True,
        ),
        assumptions=(
            "compared at N = 2, d_v = 1 (the paper's setting, per a secondary summary): the gradient w.r.t. "
            "the logit of the higher-value token",
            "both gradients by central differences of the reference operators",
        ),
        verdict="refined",
        reason=(
            "not uniform: at N = 2 LASER's logit gradient is smaller than softmax's wherever the higher-value "
            "token already carries weight α > α*(Δ)"
        ),
        condition=(
            "N = 2, d_v = 1, value gap Δ = v₁ − v₂ > 0: LASER's gradient is larger iff the higher-value token's "
            "weight α < α*(Δ) = (e^Δ − 1 − Δ)/(Δ(e^Δ − 1)); α*(1) = 0.418, α*(5) = 0.1932, α*(10) = 0.09995"
        ),
        quick=check_larger_gradient,
        figure=figure_gradient_ratio_heatmap,
        mutants=(
            Mutant("laser_is_softmax", "softmax attention in place of LASER", {"laser": softmax_attention}),
            Mutant("regime_boundary_half", "α*(Δ) = ½ claimed as the boundary", {"threshold": lambda d: 0.5 + 0 * d}),
        ),
    )
)
register(
    Claim(
        id="laser.crossover.n2",
        family=FAMILY,
        statement=(
            r"N = 2,\ \Delta = v_1 - v_2 > 0:\ g_{sm} = \alpha(1-\alpha)\Delta,\ "
            r"g_L = \frac{\alpha(1-\alpha)(e^\Delta - 1)}{\alpha e^\Delta + 1 - \alpha},\ "
            r"g_L > g_{sm} \iff \alpha < \alpha^*(\Delta) = "
            r"\frac{e^\Delta - 1 - \Delta}{\Delta(e^\Delta - 1)}"
        ),
        kind="derived",
        source=Source(
            LASER_PAPER,
            "v2, the N = 2 gradient comparison as summarised by papernotes.org (secondary)",
            abstract_level=True,
        ),
        assumptions=("α = σ(z₁ − z₂)", "α* → ½ as Δ → 0, α* ~ 1/Δ as Δ → ∞"),
        verdict="holds",
        quick=check_crossover,
        full=partial(check_crossover, grid=2000, fd_points=300),
        figure=figure_gradient_ratio_heatmap,
        mutants=(
            Mutant("wrong_threshold", "α*(Δ) = 1/(Δ + 2)", {"threshold": lambda d: 1.0 / (np.asarray(d) + 2.0)}),
            Mutant("laser_without_normaliser", "log Σ e^(S+V), the − LSE(S) dropped", {"laser": _laser_unnormalised}),
        ),
    )
)
register(
    Claim(
        id="laser.bounds.sandwich",
        family=FAMILY,
        statement=(
            r"\max\!\big(\textstyle\sum_j p_j V_{jc},\ \max_j (V_{jc} + \log p_j)\big) \le O^{L}_c "
            r"\le \max_{j:\,p_j > 0} V_{jc}\quad(\text{Jensen: } O^L \ge O^{sm})"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=("optional causal mask (max over visible keys)",),
        verdict="holds",
        quick=check_sandwich,
        full=partial(check_sandwich, draws=4000),
        mutants=(Mutant("mask_ignored", "LASER attends to masked keys", {"operator": _laser_ignoring_mask}),),
    )
)
register(
    Claim(
        id="laser.equivariance.shift",
        family=FAMILY,
        statement=(
            r"\mathrm{LASER}(V + \mathbf{1}c^\top) = \mathrm{LASER}(V) + \mathbf{1}c^\top;\ "
            r"\log\!\big(P e^{V - \mathbf{1}m^\top}\big) + \mathbf{1}m^\top = \mathrm{LASER}(V) \ \forall m;"
            r"\ \mathrm{LASER}(2V) \ne 2\,\mathrm{LASER}(V)"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=("optional causal mask",),
        verdict="holds",
        quick=check_shift_equivariance,
        full=partial(check_shift_equivariance, draws=4000),
        mutants=(AS_SOFTMAX,),
    )
)
register(
    Claim(
        id="laser.limit.value_scale",
        family=FAMILY,
        statement=(
            r"0 \le \frac{\mathrm{LASER}(\alpha V)}{\alpha} - PV \le \frac{\alpha}{2}\max|V|^2 "
            r"\xrightarrow{\alpha \to 0} 0;\quad \frac{\mathrm{LASER}(\alpha V)}{\alpha} "
            r"\xrightarrow{\alpha \to \infty} \max_{j \in \operatorname{supp} p} V_{jc}"
        ),
        kind="derived",
        source=LASER_SETTING,
        assumptions=("no mask; LASER is the CGF log E_p[e^{tV}] at t = 1",),
        verdict="holds",
        quick=check_value_scale_limits,
        full=partial(check_value_scale_limits, draws=3000),
        mutants=(AS_SOFTMAX,),
    )
)
register(
    Claim(
        id="laser.lwse.global_shift",
        family=FAMILY,
        statement=(
            r"O = \log\!\big(P\,e^{V - \mathbf{1}m^\top}\big) + \mathbf{1}m^\top,\ "
            r"m_c = \max_j V_{jc} \text{ (global column max) evaluates LASER to rounding accuracy}"
        ),
        kind="reading",
        source=Source(
            LASER_PAPER,
            "v2, implementation (log-weighted-sum-exp trick), as summarised by papernotes.org (secondary)",
            "m_j = max_i V_ij, O = log(softmax(QKᵀ) exp(V − m)) + m; 'without Log-Weighted-Sum-Exp, 2.2B "
            "training crashes' (secondary paraphrase)",
            abstract_level=True,
        ),
        reads="the log-weighted-sum-exp trick, offered as the stable way to evaluate LASER; read as: exact to "
        "rounding for every finite input",
        assumptions=(
            "float64 and float32; with and without a causal mask",
            f"accurate = relative error ≤ {ACCURACY['float64']:g} (float64) / {ACCURACY['float32']:g} (float32)",
        ),
        verdict="refined",
        reason=(
            "not exact wherever it is finite: once a row's largest term a_ij e^(V_jc − m_c) is subnormal "
            "(m − V beyond 708.4 in float64, 87.3 in float32) it loses digits, and beyond 745.1 / 104.0 it is "
            "log 0 = −inf; use the double-LSE form"
        ),
        condition=(
            "every row's largest term stays a normal float: max_j(log a_ij + V_jc) − m_c ≥ −708.4 (float64), "
            "≥ −87.3 (float32)"
        ),
        quick=check_lwse_global_shift,
        full=partial(check_lwse_global_shift, draws=4000),
        mutants=(
            Mutant(
                "row_shift_instead",
                "the per-row log-domain reference in place of the global shift",
                {"global_shift": laser_attention},
            ),
            Mutant(
                "normal_range_to_underflow",
                "claims accuracy down to the underflow (floor = log of the smallest subnormal)",
                {"normal_floor": UNDERFLOW},
            ),
            Mutant(
                "no_band_probe",
                "probes only moderate gaps, as the random draws do",
                {"probes": {"float64": (100.0, 500.0), "float32": (10.0, 50.0)}},
            ),
        ),
    )
)
