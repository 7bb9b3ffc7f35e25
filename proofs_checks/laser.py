"""Exact checks of LASER: SymPy proofs of the N = 2 derivations and an extended-precision evaluation.

LASER (Duvvuri & Dhillon, arXiv 2411.03493): ``O = log(softmax(S) · exp(V))``. For two tokens and one
value channel, with ``α = σ(z₁ − z₂)`` the weight of token 1 and ``Δ = v₁ − v₂``, every identity below
is proved exactly and returned as a :class:`~attnlab.proofs_checks.results.CheckResult`.
:func:`laser_attention_mp` evaluates the operator itself in mpmath arithmetic, the yardstick for the
float64 reference's rounding error.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import sympy as sp

from attnlab.proofs_checks.results import CheckResult
from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import reference_precision


def laser_attention_mp(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    dps: int = 50,
) -> np.ndarray:
    """LASER attention in ``dps``-digit mpmath arithmetic, rounded once to float64 at the end.

    ``O_ic = log Σ_{j visible} exp(S_ij + V_jc) − log Σ_{j visible} exp(S_ij)``, ``S = σ Q Kᵀ + M``,
    with every product, exponential and sum carried at ``dps`` significant digits, so the result is
    the correctly rounded value of the operator at the (float64) inputs as given. Shapes and options
    as :func:`attnlab.reference.laser_attention` (GQA head map, ``causal`` bottom-right, boolean
    ``mask``; a query with no visible key returns zeros). Meant for small inputs: the cost is
    ``O(n·m·(d + d_v))`` mpmath operations.
    """
    if isinstance(dps, bool) or not isinstance(dps, int) or dps < 20:
        raise ValueError(f"dps: expected an int >= 20 significant digits, got {dps!r}")
    with reference_precision(np.float64):  # inputs are taken exactly as float64, whatever the context
        qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=causal, mask=mask)
    assert va is not None
    lead = qa.shape[:-2]
    n, m, d_v = qa.shape[-2], ka.shape[-2], va.shape[-1]
    visible = np.broadcast_to(allowed, (*lead, n, m))
    out = np.zeros((*lead, n, d_v))
    with mpmath.workdps(dps):
        factor = mpmath.mpf(float(sigma))
        for index in np.ndindex(*lead):
            queries, keys, values = qa[index], ka[index], va[index]
            for i in range(n):
                cols = [j for j in range(m) if visible[(*index, i, j)]]
                if not cols:
                    continue
                query = [mpmath.mpf(float(a)) for a in queries[i]]
                scores = {
                    j: factor * mpmath.fsum(a * mpmath.mpf(float(b)) for a, b in zip(query, keys[j])) for j in cols
                }
                log_norm = mpmath.log(mpmath.fsum(mpmath.exp(scores[j]) for j in cols))
                for c in range(d_v):
                    tilted = mpmath.fsum(mpmath.exp(scores[j] + mpmath.mpf(float(values[j, c]))) for j in cols)
                    out[(*index, i, c)] = float(mpmath.log(tilted) - log_norm)
    return out


def _verdict(residuals: dict[str, sp.Expr], what: str) -> CheckResult:
    nonzero = {name: str(expr) for name, expr in residuals.items() if expr != 0}
    if nonzero:
        name, expr = next(iter(nonzero.items()))
        return CheckResult("falsified", f"{what}: residual {name} = {expr} ≠ 0", {"residuals": nonzero})
    return CheckResult(
        "holds",
        f"{what}: every residual simplifies to 0 ({len(residuals)} cases)",
        {"cases": sorted(residuals)},
    )


def two_token_logit_gradient() -> CheckResult:
    """``∂/∂z₁ log(σ(z₁−z₂)e^{v₁} + (1−σ(z₁−z₂))e^{v₂}) = w₁ − p₁`` with ``w = softmax(z + v)``, and the
    closed forms ``g_L = α(1−α)(e^Δ−1)/(αe^Δ+1−α)``, ``g_sm = α(1−α)Δ`` (softmax output
    ``αv₁ + (1−α)v₂``)."""
    z1, z2, v1, v2 = sp.symbols("z1 z2 v1 v2", real=True)
    alpha = 1 / (1 + sp.exp(-(z1 - z2)))
    laser = sp.log(alpha * sp.exp(v1) + (1 - alpha) * sp.exp(v2))
    softmax_out = alpha * v1 + (1 - alpha) * v2
    w1 = sp.exp(z1 + v1) / (sp.exp(z1 + v1) + sp.exp(z2 + v2))
    g_laser = sp.diff(laser, z1)
    g_softmax = sp.diff(softmax_out, z1)
    delta = v1 - v2
    closed_laser = alpha * (1 - alpha) * (sp.exp(delta) - 1) / (alpha * sp.exp(delta) + 1 - alpha)
    residuals = {
        "∂O/∂z₁ − (w₁ − p₁)": sp.simplify(g_laser - (w1 - alpha)),
        "∂O/∂z₁ − g_L closed form": sp.simplify(g_laser - closed_laser),
        "∂o/∂z₁ − α(1−α)Δ": sp.simplify(g_softmax - alpha * (1 - alpha) * delta),
        "∂O/∂v₁ − w₁": sp.simplify(sp.diff(laser, v1) - w1),
    }
    return _verdict(residuals, "N=2 LASER/softmax logit and value gradients")


def crossover_threshold() -> CheckResult:
    """Solving ``g_L/g_sm = (e^Δ−1)/(Δ(αe^Δ+1−α)) = 1`` for α gives ``α*(Δ) = (e^Δ−1−Δ)/(Δ(e^Δ−1))``;
    the ratio decreases in α (so LASER is larger iff α < α*), ``α* → ½`` as ``Δ → 0`` and ``Δα* → 1`` as
    ``Δ → ∞``."""
    alpha, delta = sp.symbols("alpha Delta", positive=True)
    ratio = (sp.exp(delta) - 1) / (delta * (alpha * sp.exp(delta) + 1 - alpha))
    solutions = sp.solve(sp.Eq(ratio, 1), alpha)
    expected = (sp.exp(delta) - 1 - delta) / (delta * (sp.exp(delta) - 1))
    residuals: dict[str, sp.Expr] = {"number of solutions − 1": sp.Integer(len(solutions) - 1)}
    if len(solutions) == 1:
        residuals["α* − (e^Δ−1−Δ)/(Δ(e^Δ−1))"] = sp.simplify(solutions[0] - expected)
    # dratio/dα = −ratio·(e^Δ−1)/(αe^Δ+1−α): negative for Δ > 0; check the identity, the sign follows.
    derivative = sp.diff(ratio, alpha)
    residuals["∂ratio/∂α + ratio(e^Δ−1)/(αe^Δ+1−α)"] = sp.simplify(
        derivative + ratio * (sp.exp(delta) - 1) / (alpha * sp.exp(delta) + 1 - alpha)
    )
    residuals["lim_{Δ→0} α* − ½"] = sp.limit(expected, delta, 0) - sp.Rational(1, 2)
    residuals["lim_{Δ→∞} Δα* − 1"] = sp.limit(delta * expected, delta, sp.oo) - 1
    return _verdict(residuals, "crossover α*(Δ)")


def small_value_series() -> CheckResult:
    """``log(p e^{t v₁} + (1−p) e^{t v₂}) = t·E[v] + t²·Var[v]/2 + O(t³)``: LASER is the cumulant-generating
    function of the values under the attention weights, so ``LASER(tV)/t → PV``."""
    t, p, v1, v2 = sp.symbols("t p v1 v2", real=True)
    cgf = sp.log(p * sp.exp(t * v1) + (1 - p) * sp.exp(t * v2))
    series = sp.series(cgf, t, 0, 3).removeO()
    mean = p * v1 + (1 - p) * v2
    variance = p * v1**2 + (1 - p) * v2**2 - mean**2
    residuals = {"series − (t·mean + t²·Var/2)": sp.simplify(sp.expand(series - (t * mean + t**2 * variance / 2)))}
    return _verdict(residuals, "second-order series of log E_p[e^{tV}]")
