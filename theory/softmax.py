"""Softmax Jacobian and Lipschitz facts (claims.md F5), registered as claims of family ``softmax``.

Notation: ``p = softmax(z)``, ``J = ∂p/∂z = diag(p) − ppᵀ``, ``LSE(z) = log Σ_j e^{z_j}``. Sources:
textbook derivations (Boyd & Vandenberghe, *Convex Optimization* §3.1.5) and Nair 2025
(arXiv 2510.23012, abstract) for the ℓ_p Lipschitz constants. Every numeric check is float64 and
seeded; the probabilities come from the lab's reference operator
(:func:`attnlab.reference.attention_weights` with ``K = I`` and unit scale, so the logits are ``z``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from attnlab.proofs_checks import softmax as symbolic
from attnlab.reference import attention_weights, softmax_attention
from attnlab.theory._checks import (
    central_difference_jacobian,
    operator_norm,
    random_logits,
    relative_error,
    rng_for,
    shannon_entropy,
    softmax_jacobian,
)
from attnlab.theory.registry import CheckResult, Claim, Verdict, register

FAMILY = "softmax"
TEXTBOOK = "derived (textbook; Boyd & Vandenberghe, Convex Optimization §3.1.5); claims.md F5"
NAIR = "Nair 2025, arXiv 2510.23012 (abstract; version not recorded in claims.md)"
#: Slack for float64 rounding when comparing a measured quantity with an exact bound.
ROUNDING = 1e-12
#: The multiplicative temperatures applied to a draw's logits (claims.md F5.2 "temperature strategy").
TEMPERATURE_FACTORS = (1e-2, 1e-1, 1.0, 1e1, 1e2)


def reference_softmax(z: np.ndarray) -> np.ndarray:
    """``softmax(z)`` for a logit vector ``z (n,)`` through the reference attention operator."""
    z = np.asarray(z, dtype=np.float64)
    return attention_weights(z[None, :], np.eye(z.shape[0]), scale=1.0)[0]


def _draws(seed: int, count: int, n_max: int) -> list[np.ndarray]:
    """``count`` seeded logit vectors with ``n ∈ [2, n_max]``, scaled by the temperature factors."""
    rng = rng_for(seed)
    draws = []
    for index in range(count):
        n = int(rng.integers(2, n_max + 1))
        factor = TEMPERATURE_FACTORS[index % len(TEMPERATURE_FACTORS)]
        draws.append(np.clip(random_logits(rng, n) * factor, -30.0, 30.0))
    return draws


def _verdict_if(ok: bool) -> Verdict:
    return "holds" if ok else "falsified"


def _combine(symbolic_result: CheckResult, numeric_ok: bool, evidence: str, data: dict) -> CheckResult:
    ok = numeric_ok and symbolic_result.verdict == "holds"
    if symbolic_result.verdict != "holds":
        evidence = f"{evidence}; SymPy: {symbolic_result.evidence}"
    return CheckResult(_verdict_if(ok), evidence, {**data, "sympy": symbolic_result.evidence})


# --- F5.1 item 1: the Jacobian's form -----------------------------------------------------------


def check_jacobian_form(*, draws: int = 150, n_max: int = 12, seed: int = 501) -> CheckResult:
    """FD of the reference softmax against ``diag(p) − ppᵀ``; symmetry, PSD, ``J1 = 0``, rank and the
    variance form; SymPy for ``∇²LSE = J``."""
    rng = rng_for(seed + 1)
    worst = {"fd": 0.0, "kernel": 0.0, "asym": 0.0, "neg_eig": 0.0, "variance": 0.0}
    rank_ok = True
    for z in _draws(seed, draws, n_max):
        p = reference_softmax(z)
        jac = softmax_jacobian(p)
        fd = central_difference_jacobian(reference_softmax, z, eps=1e-6)
        worst["fd"] = max(worst["fd"], relative_error(jac, fd))
        worst["kernel"] = max(worst["kernel"], float(np.max(np.abs(jac @ np.ones_like(p)))))
        worst["asym"] = max(worst["asym"], float(np.max(np.abs(jac - jac.T))))
        worst["neg_eig"] = max(worst["neg_eig"], float(-np.min(np.linalg.eigvalsh(jac))))
        x = rng.standard_normal(p.shape[0])
        variance = float(p @ x**2 - (p @ x) ** 2)
        worst["variance"] = max(worst["variance"], abs(float(x @ jac @ x) - variance))
    for support in range(1, 7):
        # rank(J) = |supp p| − 1 needs exact zeros, which finite logits never give: build p directly.
        weights = rng.uniform(0.1, 1.0, size=support)
        p = np.concatenate([weights / weights.sum(), np.zeros(3)])
        rank_ok &= int(np.linalg.matrix_rank(softmax_jacobian(p), tol=1e-12)) == support - 1
    numeric_ok = (
        worst["fd"] <= 1e-7
        and worst["kernel"] <= ROUNDING
        and worst["asym"] == 0.0
        and worst["neg_eig"] <= 1e-14
        and worst["variance"] <= ROUNDING
        and rank_ok
    )
    proof = symbolic.lse_hessian_equals_jacobian()
    kernel = symbolic.jacobian_kernel_and_symmetry()
    if kernel.verdict != "holds":
        proof = kernel
    evidence = (
        f"max FD rel err {worst['fd']:.1e} ≤ 1e-7, |J1| ≤ {worst['kernel']:.0e}, "
        f"λ_min ≥ −{worst['neg_eig']:.0e}, rank ok={rank_ok} over {draws} draws; SymPy ∇²LSE = J"
    )
    return _combine(proof, numeric_ok, evidence, {"worst": worst, "draws": draws, "rank_ok": rank_ok})


# --- F5.1 item 2: interlacing -------------------------------------------------------------------


def check_interlacing(*, draws: int = 300, n_max: int = 12, seed: int = 502) -> CheckResult:
    """Sorted ``p₁ ≥ … ≥ p_n`` and eigenvalues ``λ₁ ≥ … ≥ λ_n``: ``p_{i+1} ≤ λ_i ≤ p_i``."""
    worst = 0.0
    for z in _draws(seed, draws, n_max):
        p = np.sort(reference_softmax(z))[::-1]
        eig = np.sort(np.linalg.eigvalsh(softmax_jacobian(p)))[::-1]
        upper = float(np.max(eig - p))
        lower = float(np.max(p[1:] - eig[:-1]))
        worst = max(worst, upper, lower)
    return CheckResult(
        _verdict_if(worst <= ROUNDING),
        f"max interlacing violation {worst:.1e} (≤ {ROUNDING:.0e} is rounding) over {draws} draws",
        {"max_violation": worst, "draws": draws},
    )


# --- F5.1 items 3–4: spectral bound -------------------------------------------------------------


def spectral_bound(p: np.ndarray) -> float:
    """``min(½, p_max, 1 − p_max²)``, the claimed upper bound on ``‖J(p)‖₂``."""
    p_max = float(np.max(p))
    return min(0.5, p_max, 1.0 - p_max**2)


def check_spectral_bound(*, draws: int = 400, n_max: int = 16, seed: int = 503) -> CheckResult:
    """``‖J‖₂ ≤ min(½, p_max, 1 − p_max²)`` and the logit-gap form ``‖J‖₂ ≤ 2(n−1)e^{−Δ}``; tightness at
    ``n = 2`` with equal logits (ratio exactly 1)."""
    worst_ratio = 0.0
    worst_excess = -np.inf
    worst_gap_excess = -np.inf
    for z in _draws(seed, draws, n_max):
        p = reference_softmax(z)
        norm = float(np.linalg.eigvalsh(softmax_jacobian(p))[-1])  # symmetric PSD: ‖J‖₂ = λ_max
        bound = spectral_bound(p)
        worst_excess = max(worst_excess, norm - bound)
        if bound > 1e-9:  # saturated draws (p_max = 1 in float64) have norm and bound both ~0
            worst_ratio = max(worst_ratio, norm / bound)
        top = np.sort(z)[::-1]
        gap_bound = 2.0 * (z.shape[0] - 1) * np.exp(-(top[0] - top[1]))
        worst_gap_excess = max(worst_gap_excess, norm - gap_bound)
    tie = reference_softmax(np.zeros(2))
    tight = float(np.linalg.norm(softmax_jacobian(tie), 2)) / spectral_bound(tie)
    ok = worst_excess <= ROUNDING and worst_ratio <= 1.0 + ROUNDING
    ok &= worst_gap_excess <= ROUNDING and tight == 1.0
    return CheckResult(
        _verdict_if(ok),
        f"max ‖J‖₂/min(½,p_max,1−p_max²) = {worst_ratio:.6f} ≤ 1 over {draws} draws; "
        f"= {tight:.1f} at n=2, z₁=z₂ (tight); gap bound max excess {worst_gap_excess:.1e}",
        {
            "max_ratio": worst_ratio,
            "max_excess": worst_excess,
            "tight_ratio": tight,
            "max_gap_excess": worst_gap_excess,
            "draws": draws,
        },
    )


# --- F5.1 item 5: Frobenius ---------------------------------------------------------------------


def check_frobenius_half(*, draws: int = 400, n_max: int = 16, seed: int = 505) -> CheckResult:
    """``‖J‖_F ≤ ½`` (equality iff p has two entries ½), uniform ``p`` gives ``√(n−1)/n``; SymPy identity
    ``‖J‖_F² = Σp² − 2Σp³ + (Σp²)²``."""
    worst = 0.0
    identity_err = 0.0
    for z in _draws(seed, draws, n_max):
        p = reference_softmax(z)
        frob = float(np.linalg.norm(softmax_jacobian(p), "fro"))
        worst = max(worst, frob)
        s2 = float(np.sum(p**2))
        identity_err = max(identity_err, abs(frob**2 - (s2 - 2 * float(np.sum(p**3)) + s2**2)))
    uniform_err = max(
        abs(float(np.linalg.norm(softmax_jacobian(np.full(n, 1.0 / n)), "fro")) - np.sqrt(n - 1) / n)
        for n in range(2, 65)
    )
    two_halves = float(np.linalg.norm(softmax_jacobian(np.array([0.5, 0.5, 0.0, 0.0])), "fro"))
    numeric_ok = worst <= 0.5 + ROUNDING and identity_err <= ROUNDING and uniform_err <= ROUNDING
    numeric_ok &= two_halves == 0.5
    evidence = (
        f"max ‖J‖_F = {worst:.6f} ≤ 0.5 over {draws} draws; = {two_halves} at p=(½,½,0,0); "
        f"uniform √(n−1)/n err {uniform_err:.0e}; SymPy identity"
    )
    data = {"max_frobenius": worst, "identity_err": identity_err, "uniform_err": uniform_err, "draws": draws}
    return _combine(symbolic.frobenius_identity(), numeric_ok, evidence, data)


# --- F5.1 item 3: attainment in ℓ₂ --------------------------------------------------------------


def check_l2_attainment(*, draws: int = 2000, seed: int = 506) -> CheckResult:
    """``‖J‖₂ = ½`` exactly at ``n=2, z=(0,0)``; along ``z = (0, 0, −t)`` it increases towards ½ and stays
    below; a random search with ``n ≥ 3`` (biased towards two tied logits) never reaches ½."""
    at_tie = float(np.linalg.norm(softmax_jacobian(reference_softmax(np.zeros(2))), 2))
    ts = np.linspace(0.0, 30.0, 61)
    path = np.array(
        [np.linalg.norm(softmax_jacobian(reference_softmax(np.array([0.0, 0.0, -t]))), 2) for t in ts]
    )
    increasing = bool(np.all(np.diff(path) > 0.0))
    rng = rng_for(seed)
    best = 0.0
    for _ in range(draws):
        n = int(rng.integers(3, 9))
        z = rng.uniform(-30.0, 0.0, size=n)
        z[:2] = rng.normal(0.0, 1e-3, size=2)  # near-tie on two logits: the approach to the supremum
        best = max(best, float(np.linalg.norm(softmax_jacobian(reference_softmax(z)), 2)))
    proof = symbolic.two_token_eigenvalues()
    numeric_ok = at_tie == 0.5 and increasing and float(path[-1]) < 0.5 and best < 0.5
    evidence = (
        f"n=2 tie: ‖J‖₂ = {at_tie!r}; z=(0,0,−t): increasing, ½ − ‖J‖₂ = {0.5 - path[-1]:.1e} at t=30; "
        f"n≥3 search max {best:.15f} < ½"
    )
    data = {"n2_tie_norm": at_tie, "path_t": ts, "path_norm": path, "search_max": best, "draws": draws}
    return _combine(proof, numeric_ok, evidence, data)


# --- F5.1 item 8: Lipschitz constants -----------------------------------------------------------

NORMS: tuple[float, ...] = (1.0, 2.0, np.inf)


def _norm_label(order: float) -> str:
    return "∞" if order == np.inf else f"{order:g}"


def check_lipschitz_half(*, pairs: int = 400, n_max: int = 16, seed: int = 507) -> CheckResult:
    """``‖softmax(z) − softmax(z′)‖_p ≤ ½‖z − z′‖_p`` for ``p ∈ {1, 2, ∞}``: random far pairs and nearby
    pairs around tied logits (where the local constant is largest)."""
    rng = rng_for(seed)
    worst = dict.fromkeys(NORMS, 0.0)
    for index in range(pairs):
        n = int(rng.integers(2, n_max + 1))
        z = np.clip(random_logits(rng, n), -30.0, 30.0)
        if index % 2:
            z_other = z + rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 0)
        else:
            z_other = np.clip(random_logits(rng, n), -30.0, 30.0)
        if index % 4 == 1:
            z[: n - n // 2] = 0.0  # equal logits: for n = 2 this is where ½ is attained
        diff_p = reference_softmax(z) - reference_softmax(z_other)
        for order in NORMS:
            ratio = float(np.linalg.norm(diff_p, order) / np.linalg.norm(z - z_other, order))
            worst[order] = max(worst[order], ratio)
    ok = all(value <= 0.5 + ROUNDING for value in worst.values())
    shown = ", ".join(f"ℓ{_norm_label(o)} {v:.6f}" for o, v in worst.items())
    return CheckResult(
        _verdict_if(ok),
        f"max ‖Δsoftmax‖/‖Δz‖: {shown} (bound 0.5) over {pairs} pairs",
        {_norm_label(o): v for o, v in worst.items()} | {"pairs": pairs},
    )


def check_l1_linf_attainment() -> CheckResult:
    """At ``p = (½, ¼, ¼)`` (``z = (log 2, 0, 0)``), ``‖J‖₁ = ‖J‖_∞ = ½`` exactly while ``‖J‖₂ = 0.375``;
    ``‖J‖₁ = max_j 2p_j(1−p_j)`` on random draws."""
    jac = softmax_jacobian(reference_softmax(np.array([np.log(2.0), 0.0, 0.0])))
    l1, linf, l2 = operator_norm(jac, 1), operator_norm(jac, np.inf), operator_norm(jac, 2)
    formula_err = 0.0
    for z in _draws(508, 200, 12):
        p = reference_softmax(z)
        formula_err = max(
            formula_err, abs(operator_norm(softmax_jacobian(p), 1) - float(np.max(2 * p * (1 - p))))
        )
    ok = abs(l1 - 0.5) <= 1e-15 and abs(linf - 0.5) <= 1e-15 and abs(l2 - 0.375) <= 1e-15
    ok &= formula_err <= ROUNDING
    return CheckResult(
        _verdict_if(ok),
        f"p=(½,¼,¼): ‖J‖₁ = {l1:.17g}, ‖J‖_∞ = {linf:.17g}, ‖J‖₂ = {l2:.17g}; "
        f"max_j 2p_j(1−p_j) formula err {formula_err:.0e}",
        {"l1": l1, "linf": linf, "l2": l2, "formula_err": formula_err},
    )


def lp_operator_norm_lower_bound(
    jac: np.ndarray, order: float, rng: np.random.Generator, starts: int = 4
) -> float:
    """A lower bound on ``‖J‖_{p→p}``: the best ``‖Jx‖_p/‖x‖_p`` from Nelder–Mead restarts."""
    from scipy.optimize import minimize

    def negative_ratio(x: np.ndarray) -> float:
        denominator = float(np.linalg.norm(x, order))
        return 0.0 if denominator == 0.0 else -float(np.linalg.norm(jac @ x, order)) / denominator

    best = 0.0
    n = jac.shape[0]
    candidates = [np.eye(n)[0] - np.eye(n)[1], *(rng.standard_normal(n) for _ in range(starts))]
    for start in candidates:
        result = minimize(
            negative_ratio,
            start,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 800},
        )
        best = max(best, -float(result.fun), -negative_ratio(start))
    return best


def check_interior_norms_strict(*, instances: int = 6, starts: int = 1, seed: int = 509) -> CheckResult:
    """Nair's "for p ∈ (1,∞) the local constant stays strictly below ½": a finite-logit counterexample at
    ``n = 2`` (``z₁ = z₂`` gives exactly ½ for every p, by ``x = (1,−1)`` and Riesz–Thorin), while for
    ``n ≥ 3`` near-ties the best ℓ_p ratio found stays below ½.

    Verdict: ``refined`` when the n = 2 counterexample holds and n ≥ 3 stays below ½ (the statement
    needs ``n ≥ 3``), ``holds`` if there is no counterexample, ``falsified`` if n ≥ 3 also reaches ½.
    """
    tie = softmax_jacobian(reference_softmax(np.zeros(2)))
    x = np.array([1.0, -1.0])
    n2 = {
        f"{order:g}": float(np.linalg.norm(tie @ x, order) / np.linalg.norm(x, order))
        for order in (1.25, 1.5, 2.0, 3.0, 4.0)
    }
    counterexample = all(abs(value - 0.5) <= 1e-15 for value in n2.values())
    rng = rng_for(seed)
    best = dict.fromkeys((1.5, 2.0, 3.0), 0.0)
    for _ in range(instances):
        n = int(rng.integers(3, 6))
        z = rng.uniform(-8.0, 0.0, size=n)
        z[:2] = 0.0
        jac = softmax_jacobian(reference_softmax(z))
        for order in best:
            if order == 2.0:
                best[order] = max(best[order], operator_norm(jac, 2))
            else:
                best[order] = max(best[order], lp_operator_norm_lower_bound(jac, order, rng, starts=starts))
    below = all(value < 0.5 for value in best.values())
    verdict: Verdict = ("refined" if counterexample else "holds") if below else "falsified"
    return CheckResult(
        verdict,
        f"n=2, z₁=z₂: ‖J‖_p→p = ½ exactly for p ∈ {{{', '.join(n2)}}} (counterexample); "
        f"n≥3 best found: " + ", ".join(f"ℓ{o:g} {v:.6f}" for o, v in best.items()) + " < ½",
        {"n2_ratios": n2, "n3_best": {f"{o:g}": v for o, v in best.items()}, "instances": instances},
    )


# --- F5.1 item 6: entropy -----------------------------------------------------------------------


def check_entropy_chain(*, draws: int = 400, n_max: int = 16, seed: int = 510) -> CheckResult:
    """``tr J/(n−1) ≤ ‖J‖₂ ≤ ‖J‖_F ≤ tr J = 1 − e^{−H₂(p)} ≤ 1 − e^{−H(p)}``."""
    worst = 0.0
    for z in _draws(seed, draws, n_max):
        p = reference_softmax(z)
        jac = softmax_jacobian(p)
        spectral, frob, trace = (
            float(np.linalg.eigvalsh(jac)[-1]),
            float(np.linalg.norm(jac, "fro")),
            float(np.trace(jac)),
        )
        renyi2 = -np.log(float(np.sum(p**2)))
        chain = [trace / (p.shape[0] - 1), spectral, frob, trace, 1.0 - np.exp(-shannon_entropy(p))]
        worst = max(worst, float(np.max(np.diff(chain) * -1.0)), abs(trace - (1.0 - np.exp(-renyi2))))
    return CheckResult(
        _verdict_if(worst <= ROUNDING),
        f"max violation of trJ/(n−1) ≤ ‖J‖₂ ≤ ‖J‖_F ≤ trJ ≤ 1−e^(−H): {worst:.1e} over {draws} draws",
        {"max_violation": worst, "draws": draws},
    )


# --- F5.1 item 7: temperature -------------------------------------------------------------------


def check_temperature(*, draws: int = 120, n_max: int = 12, seed: int = 511) -> CheckResult:
    """For ``p = softmax(z/T)``: ``∂p/∂z = J/T`` (FD), ``‖∂p/∂z‖₂ ≤ 1/(2T)``, ``dH/dT = Var_p(z)/T³ ≥ 0``
    (FD in T), plus SymPy ``dH/dβ = −β·Var``."""
    rng = rng_for(seed)
    worst = {"fd_jac": 0.0, "norm_excess": -np.inf, "fd_entropy": 0.0, "min_dH": np.inf}
    for z in _draws(seed + 1, draws, n_max):
        temperature = float(10.0 ** rng.uniform(-1, 1))
        p = reference_softmax(z / temperature)
        jac_over_t = softmax_jacobian(p) / temperature
        fd = central_difference_jacobian(lambda v, t=temperature: reference_softmax(v / t), z, eps=1e-6)
        worst["fd_jac"] = max(worst["fd_jac"], relative_error(jac_over_t, fd))
        worst["norm_excess"] = max(
            worst["norm_excess"], float(np.linalg.norm(jac_over_t, 2)) - 0.5 / temperature
        )
        # Centred form: E[z²] − E[z]² cancels catastrophically when p is nearly one-hot.
        variance = float(p @ (z - p @ z) ** 2)
        step = 1e-6 * temperature
        d_entropy = (
            shannon_entropy(reference_softmax(z / (temperature + step)))
            - shannon_entropy(reference_softmax(z / (temperature - step)))
        ) / (2 * step)
        expected = variance / temperature**3
        worst["fd_entropy"] = max(worst["fd_entropy"], abs(d_entropy - expected) / max(1.0, abs(expected)))
        worst["min_dH"] = min(worst["min_dH"], expected)
    numeric_ok = (
        worst["fd_jac"] <= 1e-7
        and worst["norm_excess"] <= ROUNDING
        and worst["fd_entropy"] <= 1e-5
        and worst["min_dH"] >= 0.0
    )
    evidence = (
        f"FD ∂p/∂z vs J/T err {worst['fd_jac']:.1e}; "
        f"max ‖J/T‖₂ − 1/(2T) = {worst['norm_excess']:.1e} (≤ 1e-12 rounding); "
        f"FD dH/dT vs Var/T³ err {worst['fd_entropy']:.1e}, min dH/dT {worst['min_dH']:.1e} ≥ 0; SymPy dH/dβ"
    )
    return _combine(
        symbolic.entropy_inverse_temperature_derivative(),
        numeric_ok,
        evidence,
        {"worst": worst, "draws": draws},
    )


# --- F5.1 item 9: attention-level gradients -----------------------------------------------------


def check_attention_gradients(*, draws: int = 40, seed: int = 512) -> CheckResult:
    """``∂o_c/∂z_j = p_j(V_jc − o_c)`` and ``‖∂o/∂q‖₂ ≤ ‖V‖₂‖K‖₂/(2√d)``, both by FD through the reference
    :func:`attnlab.reference.softmax_attention`."""
    rng = rng_for(seed)
    worst_fd = 0.0
    worst_ratio = 0.0
    for _ in range(draws):
        m, d, d_v = int(rng.integers(2, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        z = np.clip(random_logits(rng, m), -30.0, 30.0)
        values = rng.standard_normal((m, d_v)) * 3.0
        p = reference_softmax(z)
        out = p @ values
        analytic = (p[:, None] * (values - out[None, :])).T  # (d_v, m): ∂o_c/∂z_j
        fd = central_difference_jacobian(
            lambda logits, v=values: softmax_attention(
                logits[None, :], np.eye(logits.shape[0]), v, scale=1.0
            )[0],
            z,
        )
        worst_fd = max(worst_fd, relative_error(analytic, fd))
        keys = rng.standard_normal((m, d)) * 2.0
        query = rng.standard_normal(d)
        jac_q = central_difference_jacobian(
            lambda q, k=keys, v=values: softmax_attention(q[None, :], k, v)[0], query
        )
        bound = np.linalg.norm(values, 2) * np.linalg.norm(keys, 2) / (2.0 * np.sqrt(d))
        worst_ratio = max(worst_ratio, float(np.linalg.norm(jac_q, 2) / bound))
    ok = worst_fd <= 1e-7 and worst_ratio <= 1.0 + 1e-7
    return CheckResult(
        _verdict_if(ok),
        f"FD ∂o/∂z vs p_j(V_j − o) err {worst_fd:.1e}; max ‖∂o/∂q‖₂ / (‖V‖‖K‖/(2√d)) = {worst_ratio:.4f} ≤ 1",
        {"fd_err": worst_fd, "max_ratio": worst_ratio, "draws": draws},
    )


# --- headline figure (claims.md F5.3) -----------------------------------------------------------


def jacobian_temperature_curves(n: int, temperatures: np.ndarray, seed: int = 530) -> dict[str, np.ndarray]:
    """``‖J‖₂``, ``‖J‖_F`` and the bounds ``½, p_max, 1 − p_max²`` of ``softmax(z/T)`` along ``temperatures``
    for one seeded standard-normal logit vector ``z`` of length ``n``."""
    z = rng_for(seed + n).standard_normal(n)
    spectral, frob, p_max = [], [], []
    for temperature in temperatures:
        p = reference_softmax(z / temperature)
        jac = softmax_jacobian(p)
        spectral.append(np.linalg.eigvalsh(jac)[-1])  # J is symmetric PSD: ‖J‖₂ = λ_max
        frob.append(np.linalg.norm(jac, "fro"))
        p_max.append(np.max(p))
    p_max_arr = np.array(p_max)
    return {
        "T": temperatures,
        "spectral": np.array(spectral),
        "frobenius": np.array(frob),
        "p_max": p_max_arr,
        "one_minus_pmax_sq": 1.0 - p_max_arr**2,
    }


def figure_jacobian_vs_temperature(outdir: Path) -> list[Path]:
    """F5.3: ‖J‖₂ and ‖J‖_F vs temperature for n = 16, 64, 256 with the bounds overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import save_figure

    temperatures = np.logspace(-2.5, 3, 160)
    sizes = (16, 64, 256)
    fig, axes = plt.subplots(1, len(sizes), figsize=(13, 3.8), sharey=True)
    data: dict[str, object] = {"T": temperatures, "seed": 530}
    for ax, n in zip(axes, sizes):
        curves = jacobian_temperature_curves(n, temperatures)
        data[f"n={n}"] = {key: value for key, value in curves.items() if key != "T"}
        ax.plot(temperatures, curves["spectral"], color="C0", lw=2.2, zorder=5, label=r"$\|J\|_2$")
        ax.plot(temperatures, curves["frobenius"], color="C1", lw=2, label=r"$\|J\|_F$")
        ax.axhline(0.5, color="k", ls="--", lw=1, label=r"$1/2$")
        ax.plot(temperatures, curves["p_max"], color="C2", ls=":", lw=1.5, label=r"$p_{\max}$")
        ax.plot(
            temperatures, curves["one_minus_pmax_sq"], color="C3", ls="-.", lw=1.5, label=r"$1-p_{\max}^2$"
        )
        ax.axhline(1.0 / n, color="0.6", lw=1, label=r"$1/n$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.2)
        ax.set_xlabel("temperature T")
        ax.set_title(f"n = {n}, z ~ N(0, I)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("norm of the softmax Jacobian")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(
        "Softmax Jacobian is small when attention is saturated (small T) and when it is diffuse (large T)"
    )
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    return save_figure(fig, outdir, "softmax_jacobian_vs_temperature", data)


# --- registration -------------------------------------------------------------------------------

JACOBIAN_FIGURE = figure_jacobian_vs_temperature

register(
    Claim(
        id="softmax.jacobian.form",
        family=FAMILY,
        statement=(
            r"\frac{\partial\,\mathrm{softmax}(z)}{\partial z} = J = \operatorname{diag}(p) - pp^\top"
            r" = \nabla^2 \mathrm{LSE}(z) = \operatorname{Cov}_{I\sim p}(e_I);\ J = J^\top \succeq 0,\ "
            r"J\mathbf{1} = 0,\ \operatorname{rank} J = |\operatorname{supp} p| - 1,\ "
            r"x^\top J x = \operatorname{Var}_{I\sim p}(x_I)"
        ),
        source=TEXTBOOK,
        assumptions=("z ∈ Rⁿ finite, n ≥ 2", "rank statement for any p in the simplex"),
        verdict="holds",
        quick=check_jacobian_form,
        full=partial(check_jacobian_form, draws=1500, n_max=32),
    )
)
register(
    Claim(
        id="softmax.jacobian.interlacing",
        family=FAMILY,
        statement=r"p_{(1)} \ge \dots \ge p_{(n)} \Rightarrow p_{(i+1)} \le \lambda_i(J) \le p_{(i)}",
        source="derived (Weyl interlacing for a rank-one update); claims.md F5.1 item 2",
        assumptions=("eigenvalues sorted in decreasing order",),
        verdict="holds",
        quick=check_interlacing,
        full=partial(check_interlacing, draws=5000, n_max=64),
    )
)
register(
    Claim(
        id="softmax.jacobian.spectral_bound",
        family=FAMILY,
        statement=(
            r"\|J\|_2 \le \min\!\left(\tfrac12,\ p_{\max},\ 1 - p_{\max}^2\right),\quad "
            r"\|J\|_2 \le 2(n-1)e^{-\Delta/T}\ (\Delta = \text{top-two logit gap})"
        ),
        source=TEXTBOOK,
        assumptions=("finite logits", "tight: equality at n = 2, z₁ = z₂"),
        verdict="holds",
        quick=check_spectral_bound,
        full=partial(check_spectral_bound, draws=8000, n_max=128),
        figure=JACOBIAN_FIGURE,
    )
)
register(
    Claim(
        id="softmax.jacobian.frobenius_half",
        family=FAMILY,
        statement=(
            r"\|J\|_F^2 = \textstyle\sum p_i^2 - 2\sum p_i^3 + (\sum p_i^2)^2 \le \tfrac14;\ "
            r"\text{equality iff two entries of } p \text{ equal } \tfrac12;\ "
            r"p = \mathbf{1}/n \Rightarrow \|J\|_F = \sqrt{n-1}/n"
        ),
        source=TEXTBOOK,
        assumptions=("p in the probability simplex",),
        verdict="holds",
        quick=check_frobenius_half,
        full=partial(check_frobenius_half, draws=8000, n_max=128),
        figure=JACOBIAN_FIGURE,
    )
)
register(
    Claim(
        id="softmax.jacobian.l2_attainment",
        family=FAMILY,
        statement=(
            r"\|J\|_2 = \tfrac12 \text{ at } n = 2,\ z_1 = z_2;\ \text{for } n \ge 3 \text{ and finite } z,\ "
            r"\|J\|_2 < \tfrac12 \text{ and } \sup_z \|J\|_2 = \tfrac12 "
            r"\text{ (approached as two logits tie, the rest} \to -\infty)"
        ),
        source="derived; claims.md F5.1 item 3",
        assumptions=("finite logits",),
        verdict="holds",
        quick=check_l2_attainment,
        full=partial(check_l2_attainment, draws=40000),
    )
)
register(
    Claim(
        id="softmax.lipschitz.half",
        family=FAMILY,
        statement=(
            r"\|\mathrm{softmax}(z) - \mathrm{softmax}(z')\|_p \le \tfrac12 \|z - z'\|_p "
            r"\quad \text{for all } p \ge 1 \text{ (checked for } p \in \{1, 2, \infty\})"
        ),
        source=f"{NAIR}: 'contractive with the Lipschitz constant 1/2, uniformly across all ℓ_p norms'",
        assumptions=("ℓ₁, ℓ∞ via max column/row sums ≤ ½; ℓ_p by Riesz–Thorin",),
        verdict="holds",
        quick=check_lipschitz_half,
        full=partial(check_lipschitz_half, pairs=8000, n_max=64),
    )
)
register(
    Claim(
        id="softmax.lipschitz.l1_linf_attainment",
        family=FAMILY,
        statement=(
            r"\|J\|_{1} = \|J\|_{\infty} = \max_j 2p_j(1-p_j),\ \text{so the local constant } \tfrac12 "
            r"\text{ is attained at finite logits, e.g. } p = (\tfrac12, \tfrac14, \tfrac14)\ "
            r"(\|J\|_2 = 0.375 \text{ there})"
        ),
        source=f"{NAIR}: 'attains 1/2 for p = 1 and p = ∞'",
        assumptions=("z = (log 2, 0, 0)",),
        verdict="holds",
        quick=check_l1_linf_attainment,
    )
)
register(
    Claim(
        id="softmax.lipschitz.interior_norms_strict",
        family=FAMILY,
        statement=(
            r"\text{for } p \in (1, \infty):\ \|J(z)\|_{p \to p} < \tfrac12 \text{ at every finite } z,"
            r"\ \text{the supremum } \tfrac12 \text{ being reached only in the limit}"
        ),
        source=(
            f"{NAIR}: 'for p ∈ (1,∞) … remains strictly below 1/2 and the supremum 1/2 is achieved "
            "only in the limit'"
        ),
        assumptions=("as quoted, no restriction on n",),
        verdict="refined",
        reason=(
            "false for n = 2: z₁ = z₂ gives ‖J‖_p→p = ½ exactly for every p; the strict bound needs n ≥ 3 "
            "(checked: ℓ₂ exactly, ℓ1.5/ℓ3 by search)"
        ),
        quick=check_interior_norms_strict,
        full=partial(check_interior_norms_strict, instances=100, starts=4),
    )
)
register(
    Claim(
        id="softmax.entropy.trace_bound",
        family=FAMILY,
        statement=(
            r"\frac{\operatorname{tr} J}{n-1} \le \|J\|_2 \le \|J\|_F \le \operatorname{tr} J = "
            r"1 - \textstyle\sum p_i^2 = 1 - e^{-H_2(p)} \le 1 - e^{-H(p)}"
        ),
        source="derived; claims.md F5.1 item 6",
        assumptions=("H₂ Rényi-2 entropy, H Shannon entropy, nats",),
        verdict="holds",
        quick=check_entropy_chain,
        full=partial(check_entropy_chain, draws=8000, n_max=128),
    )
)
register(
    Claim(
        id="softmax.temperature.scaling",
        family=FAMILY,
        statement=(
            r"p = \mathrm{softmax}(z/T):\ \frac{\partial p}{\partial z} = \frac{J}{T},\ "
            r"\Big\|\frac{\partial p}{\partial z}\Big\|_2 \le \frac{1}{2T},\ "
            r"\frac{dH}{dT} = \frac{\operatorname{Var}_p(z)}{T^3} \ge 0\ "
            r"\Big(\frac{dH}{d\beta} = -\beta \operatorname{Var}_p(z),\ \beta = 1/T\Big)"
        ),
        source="derived; claims.md F5.1 item 7",
        assumptions=("T > 0",),
        verdict="holds",
        quick=check_temperature,
        full=partial(check_temperature, draws=1500, n_max=32),
        figure=JACOBIAN_FIGURE,
    )
)
register(
    Claim(
        id="softmax.attention.logit_gradient",
        family=FAMILY,
        statement=(
            r"o = \textstyle\sum_j p_j v_j:\ \frac{\partial o_c}{\partial z_j} = p_j (V_{jc} - o_c);\ "
            r"z = Kq/\sqrt d \Rightarrow \big\|\frac{\partial o}{\partial q}\big\|_2 \le "
            r"\frac{\|V\|_2 \|K\|_2}{2\sqrt d}"
        ),
        source="derived; claims.md F5.1 item 9",
        assumptions=("one query row, no mask",),
        verdict="holds",
        quick=check_attention_gradients,
        full=partial(check_attention_gradients, draws=600),
    )
)
