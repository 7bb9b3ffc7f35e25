"""Softmax Jacobian and Lipschitz facts, registered as claims of family ``softmax``.

Notation: ``p = softmax(z)``, ``J = ∂p/∂z = diag(p) − ppᵀ``, ``LSE(z) = log Σ_j e^{z_j}``. Sources:
textbook derivations (Boyd & Vandenberghe, *Convex Optimization* §3.1.5) and Nair 2025
(arXiv 2510.23012v1, abstract) for the ℓ_p Lipschitz constants. Every numeric check is float64 and
seeded; the probabilities come from the lab's reference operator
(:func:`attnlab.reference.attention_weights` with ``K = I`` and unit scale, so the logits are ``z``).

Each check takes the operator it runs (``softmax``, the Jacobian formula, an attention operator) and
its constants as keyword arguments, so a claim's mutants can plant a wrong operator or constant.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from attnlab.papers import Source, paper
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
from attnlab.theory.registry import CheckResult, Claim, Mutant, Verdict, register

FAMILY = "softmax"
DERIVED = Source(None)
BOYD_LSE = Source(
    paper("boyd2004convex"),
    "§3.1.5 (log-sum-exp: gradient and Hessian)",
    "∇²f(x) = diag(z)/(1ᵀz) − zzᵀ/(1ᵀz)², z_i = e^{x_i} (close paraphrase)",
)
NAIR = paper("nair2025softmax")
#: Slack for float64 rounding when comparing a measured quantity with an exact bound.
ROUNDING = 1e-12
#: The multiplicative temperatures applied to a draw's logits (a "temperature" strategy over the draws).
TEMPERATURE_FACTORS = (1e-2, 1e-1, 1.0, 1e1, 1e2)


def reference_softmax(z: np.ndarray) -> np.ndarray:
    """``softmax(z)`` for a logit vector ``z (n,)`` through the reference attention operator."""
    z = np.asarray(z, dtype=np.float64)
    return attention_weights(z[None, :], np.eye(z.shape[0]), scale=1.0)[0]


Softmax = Callable[[np.ndarray], np.ndarray]
Jacobian = Callable[[np.ndarray], np.ndarray]


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


# --- the Jacobian's form ------------------------------------------------------------------------


def check_jacobian_form(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 150,
    n_max: int = 12,
    seed: int = 501,
) -> CheckResult:
    """FD of ``softmax`` against ``jacobian(p)``; symmetry, PSD, ``J1 = 0``, rank and the variance form;
    SymPy for ``∇²LSE = J``."""
    rng = rng_for(seed + 1)
    worst = {"fd": 0.0, "kernel": 0.0, "asym": 0.0, "neg_eig": 0.0, "variance": 0.0}
    rank_ok = True
    for z in _draws(seed, draws, n_max):
        p = softmax(z)
        jac = jacobian(p)
        fd = central_difference_jacobian(softmax, z, eps=1e-6)
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
        rank_ok &= int(np.linalg.matrix_rank(jacobian(p), tol=1e-12)) == support - 1
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


# --- interlacing --------------------------------------------------------------------------------


def check_interlacing(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 300,
    n_max: int = 12,
    seed: int = 502,
) -> CheckResult:
    """Sorted ``p₁ ≥ … ≥ p_n`` and eigenvalues ``λ₁ ≥ … ≥ λ_n``: ``p_{i+1} ≤ λ_i ≤ p_i``."""
    worst = 0.0
    for z in _draws(seed, draws, n_max):
        p = np.sort(softmax(z))[::-1]
        eig = np.sort(np.linalg.eigvalsh(jacobian(p)))[::-1]
        upper = float(np.max(eig - p))
        lower = float(np.max(p[1:] - eig[:-1]))
        worst = max(worst, upper, lower)
    return CheckResult(
        _verdict_if(worst <= ROUNDING),
        f"max interlacing violation {worst:.1e} (≤ {ROUNDING:.0e} is rounding) over {draws} draws",
        {"max_violation": worst, "draws": draws},
    )


# --- spectral bound -----------------------------------------------------------------------------


def spectral_bound(p: np.ndarray) -> float:
    """``min(½, p_max, 1 − p_max²)``, the claimed upper bound on ``‖J(p)‖₂``."""
    p_max = float(np.max(p))
    return min(0.5, p_max, 1.0 - p_max**2)


def check_spectral_bound(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    bound: Callable[[np.ndarray], float] = spectral_bound,
    draws: int = 400,
    n_max: int = 16,
    seed: int = 503,
) -> CheckResult:
    """``‖J‖₂ ≤ min(½, p_max, 1 − p_max²)`` and the logit-gap form ``‖J‖₂ ≤ 2(n−1)e^{−Δ}``; tightness at
    ``n = 2`` with equal logits (ratio exactly 1)."""
    worst_ratio = 0.0
    worst_excess = -np.inf
    worst_gap_excess = -np.inf
    for z in _draws(seed, draws, n_max):
        p = softmax(z)
        norm = float(np.linalg.norm(jacobian(p), 2))
        limit = bound(p)
        worst_excess = max(worst_excess, norm - limit)
        if limit > 1e-9:  # saturated draws (p_max = 1 in float64) have norm and bound both ~0
            worst_ratio = max(worst_ratio, norm / limit)
        top = np.sort(z)[::-1]
        gap_bound = 2.0 * (z.shape[0] - 1) * np.exp(-(top[0] - top[1]))
        worst_gap_excess = max(worst_gap_excess, norm - gap_bound)
    tie = softmax(np.zeros(2))
    tight = float(np.linalg.norm(jacobian(tie), 2)) / bound(tie)
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


# --- Frobenius ----------------------------------------------------------------------------------


def check_frobenius_half(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 400,
    n_max: int = 16,
    seed: int = 505,
) -> CheckResult:
    """``‖J‖_F ≤ ½`` (equality iff p has two entries ½), uniform ``p`` gives ``√(n−1)/n``; SymPy identity
    ``‖J‖_F² = Σp² − 2Σp³ + (Σp²)²``."""
    worst = 0.0
    identity_err = 0.0
    for z in _draws(seed, draws, n_max):
        p = softmax(z)
        frob = float(np.linalg.norm(jacobian(p), "fro"))
        worst = max(worst, frob)
        s2 = float(np.sum(p**2))
        identity_err = max(identity_err, abs(frob**2 - (s2 - 2 * float(np.sum(p**3)) + s2**2)))
    uniform_err = max(
        abs(float(np.linalg.norm(jacobian(np.full(n, 1.0 / n)), "fro")) - np.sqrt(n - 1) / n) for n in range(2, 65)
    )
    two_halves = float(np.linalg.norm(jacobian(np.array([0.5, 0.5, 0.0, 0.0])), "fro"))
    numeric_ok = worst <= 0.5 + ROUNDING and identity_err <= ROUNDING and uniform_err <= ROUNDING
    numeric_ok &= two_halves == 0.5
    evidence = (
        f"max ‖J‖_F = {worst:.6f} ≤ 0.5 over {draws} draws; = {two_halves} at p=(½,½,0,0); "
        f"uniform √(n−1)/n err {uniform_err:.0e}; SymPy identity"
    )
    data = {"max_frobenius": worst, "identity_err": identity_err, "uniform_err": uniform_err, "draws": draws}
    return _combine(symbolic.frobenius_identity(), numeric_ok, evidence, data)


# --- attainment in ℓ₂ ---------------------------------------------------------------------------


def check_l2_attainment(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 2000,
    seed: int = 506,
) -> CheckResult:
    """``‖J‖₂ = ½`` exactly at ``n=2, z=(0,0)``; along ``z = (0, 0, −t)`` it increases towards ½ and stays
    below; a random search with ``n ≥ 3`` (biased towards two tied logits) never reaches ½."""
    at_tie = float(np.linalg.norm(jacobian(softmax(np.zeros(2))), 2))
    ts = np.linspace(0.0, 30.0, 61)
    path = np.array([np.linalg.norm(jacobian(softmax(np.array([0.0, 0.0, -t]))), 2) for t in ts])
    increasing = bool(np.all(np.diff(path) > 0.0))
    rng = rng_for(seed)
    best = 0.0
    for _ in range(draws):
        n = int(rng.integers(3, 9))
        z = rng.uniform(-30.0, 0.0, size=n)
        z[:2] = rng.normal(0.0, 1e-3, size=2)  # near-tie on two logits: the approach to the supremum
        best = max(best, float(np.linalg.norm(jacobian(softmax(z)), 2)))
    proof = symbolic.two_token_eigenvalues()
    numeric_ok = at_tie == 0.5 and increasing and float(path[-1]) < 0.5 and best < 0.5
    evidence = (
        f"n=2 tie: ‖J‖₂ = {at_tie!r}; z=(0,0,−t): increasing={increasing}, ½ − ‖J‖₂ = {0.5 - path[-1]:.1e} "
        f"at t=30; n≥3 search max {best:.15f} < ½"
    )
    data = {"n2_tie_norm": at_tie, "path_t": ts, "path_norm": path, "search_max": best, "draws": draws}
    return _combine(proof, numeric_ok, evidence, data)


# --- Lipschitz constants ------------------------------------------------------------------------

NORMS: tuple[float, ...] = (1.0, 2.0, np.inf)


def _norm_label(order: float) -> str:
    return "∞" if order == np.inf else f"{order:g}"


def check_lipschitz_half(
    *, softmax: Softmax = reference_softmax, pairs: int = 400, n_max: int = 16, seed: int = 507
) -> CheckResult:
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
        diff_p = softmax(z) - softmax(z_other)
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


def check_l1_linf_attainment(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 200,
    seed: int = 508,
) -> CheckResult:
    """At ``p = (½, ¼, ¼)`` (``z = (log 2, 0, 0)``), ``‖J‖₁ = ‖J‖_∞ = ½`` exactly while ``‖J‖₂ = 0.375``;
    ``‖J‖₁ = max_j 2p_j(1−p_j)`` on random draws."""
    jac = jacobian(softmax(np.array([np.log(2.0), 0.0, 0.0])))
    l1, linf, l2 = operator_norm(jac, 1), operator_norm(jac, np.inf), operator_norm(jac, 2)
    formula_err = 0.0
    for z in _draws(seed, draws, 12):
        p = softmax(z)
        formula_err = max(formula_err, abs(operator_norm(jacobian(p), 1) - float(np.max(2 * p * (1 - p)))))
    ok = abs(l1 - 0.5) <= 1e-15 and abs(linf - 0.5) <= 1e-15 and abs(l2 - 0.375) <= 1e-15
    ok &= formula_err <= ROUNDING
    return CheckResult(
        _verdict_if(ok),
        f"p=(½,¼,¼): ‖J‖₁ = {l1:.17g}, ‖J‖_∞ = {linf:.17g}, ‖J‖₂ = {l2:.17g}; "
        f"max_j 2p_j(1−p_j) formula err {formula_err:.0e} over {draws} draws",
        {"l1": l1, "linf": linf, "l2": l2, "formula_err": formula_err, "draws": draws},
    )


def _dual_direction(y: np.ndarray, order: float) -> np.ndarray:
    """The unit-ℓ_{order*} vector ``u`` with ``uᵀy = ‖y‖_order`` (``sign(y)|y|^{p−1}/‖y‖_p^{p−1}``)."""
    norm = float(np.linalg.norm(y, order))
    if norm == 0.0:
        return np.zeros_like(y)
    return np.sign(y) * (np.abs(y) / norm) ** (order - 1.0)


def lp_operator_norm_search(
    matrix: np.ndarray, order: float, rng: np.random.Generator, starts: int = 8, iterations: int = 500
) -> float:
    """The best ``‖Ax‖_p/‖x‖_p`` found by the ℓ_p power method (Boyd 1974; Higham 1992) from ``starts``
    random unit vectors: a lower bound on ``‖A‖_{p→p}`` that each ascent step increases.

    Step: ``y = Ax``, ``z = Aᵀ u(y)`` with ``u`` the dual direction; stop at a fixed point
    (``‖z‖_q ≤ zᵀx``), else ``x ← u_q(z)``, the unit-ℓ_p vector aligned with ``z`` (``1/p + 1/q = 1``).
    """
    dual_order = order / (order - 1.0)
    best = 0.0
    for _ in range(starts):
        x: np.ndarray = rng.standard_normal((matrix.shape[1],))
        x /= np.linalg.norm(x, order)
        for _ in range(iterations):
            z = matrix.T @ _dual_direction(matrix @ x, order)
            if float(np.linalg.norm(z, dual_order)) <= float(z @ x) * (1.0 + 1e-15):
                break
            x = _dual_direction(z, dual_order)
        best = max(best, float(np.linalg.norm(matrix @ x, order) / np.linalg.norm(x, order)))
    return best


#: The interior ℓ_p norms of the strictness check (Nair: strictly below ½ for p ∈ (1, ∞)).
INTERIOR_ORDERS: tuple[float, ...] = (1.5, 2.0, 3.0)
#: Calibration of the search, independent of the operator under test: ``diag(p) − ppᵀ`` at
#: ``p = (½, ½)`` and ``p = (½, ½, 0)`` has ``‖·‖_{p→p} = ½`` exactly for every p (attained at
#: ``x = (1, −1, 0)``; ½ bounds it by Riesz–Thorin from the ℓ₁/ℓ∞ column sums), so a search that
#: works must find at least ½ − 1e-9 there from random starts.
CALIBRATION_WEIGHTS: tuple[tuple[float, ...], ...] = ((0.5, 0.5), (0.5, 0.5, 0.0))


def check_interior_norms_strict(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    norm_search: Callable[..., float] = lp_operator_norm_search,
    instances: int = 6,
    starts: int = 8,
    seed: int = 509,
) -> CheckResult:
    """Nair's "for p ∈ (1,∞) the local constant stays strictly below ½": a finite-logit counterexample at
    ``n = 2`` (``z₁ = z₂`` gives exactly ½ for every p, by ``x = (1,−1)`` and Riesz–Thorin), while for
    ``n ≥ 3`` near-ties the ℓ_p power-method search finds values strictly below ½.

    The search is calibrated first on matrices whose norm is exactly ½ (:data:`CALIBRATION_WEIGHTS`):
    from random starts it must find ½ − 1e-9; a search that cannot climb fails the check
    (AssertionError).

    Verdict: ``refined`` when the n = 2 counterexample holds and n ≥ 3 stays below ½ (the statement
    needs ``n ≥ 3``), ``holds`` if there is no counterexample, ``falsified`` if n ≥ 3 also reaches ½.
    """
    tie = jacobian(softmax(np.zeros(2)))
    x = np.array([1.0, -1.0])
    n2 = {
        f"{order:g}": float(np.linalg.norm(tie @ x, order) / np.linalg.norm(x, order))
        for order in (1.25, 1.5, 2.0, 3.0, 4.0)
    }
    counterexample = all(abs(value - 0.5) <= 1e-15 for value in n2.values())
    rng = rng_for(seed)
    for weights in CALIBRATION_WEIGHTS:
        known = np.diag(weights) - np.outer(weights, weights)
        for order in INTERIOR_ORDERS:
            found = norm_search(known, order, rng, starts=starts)
            assert found >= 0.5 - 1e-9, (
                f"ℓ{order:g} norm search is not climbing: {found:.6f} on diag(p) − ppᵀ at p = {weights}, "
                "whose norm is exactly ½"
            )
    best = dict.fromkeys(INTERIOR_ORDERS, 0.0)
    for _ in range(instances):
        n = int(rng.integers(3, 6))
        z = rng.uniform(-8.0, 0.0, size=n)
        z[:2] = 0.0
        jac = jacobian(softmax(z))
        for order in best:
            best[order] = max(best[order], norm_search(jac, order, rng, starts=starts))
    below = all(value < 0.5 - ROUNDING for value in best.values())
    verdict: Verdict = ("refined" if counterexample else "holds") if below else "falsified"
    return CheckResult(
        verdict,
        f"n=2, z₁=z₂: ‖J‖_p→p = ½ exactly for p ∈ {{{', '.join(n2)}}} (counterexample); "
        f"n≥3 ({instances} near-ties, {starts} power-method starts, calibrated on norm-½ matrices): "
        + ", ".join(f"ℓ{o:g} {v:.6f}" for o, v in best.items())
        + " < ½",
        {"n2_ratios": n2, "n3_best": {f"{o:g}": v for o, v in best.items()}, "instances": instances},
    )


# --- entropy ------------------------------------------------------------------------------------


def check_entropy_chain(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 400,
    n_max: int = 16,
    seed: int = 510,
) -> CheckResult:
    """``tr J/(n−1) ≤ ‖J‖₂ ≤ ‖J‖_F ≤ tr J = 1 − e^{−H₂(p)} ≤ 1 − e^{−H(p)}``."""
    worst = 0.0
    for z in _draws(seed, draws, n_max):
        p = softmax(z)
        jac = jacobian(p)
        spectral, frob, trace = (
            float(np.linalg.norm(jac, 2)),
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


# --- temperature --------------------------------------------------------------------------------


def check_temperature(
    *,
    softmax: Softmax = reference_softmax,
    jacobian: Jacobian = softmax_jacobian,
    draws: int = 120,
    n_max: int = 12,
    seed: int = 511,
) -> CheckResult:
    """For ``p = softmax(z/T)``: ``∂p/∂z = J/T`` (FD), ``‖∂p/∂z‖₂ ≤ 1/(2T)``, ``dH/dT = Var_p(z)/T³ ≥ 0``
    (FD in T), plus SymPy ``dH/dβ = −β·Var``."""
    rng = rng_for(seed)
    worst = {"fd_jac": 0.0, "norm_excess": -np.inf, "fd_entropy": 0.0, "min_dH": np.inf}
    for z in _draws(seed + 1, draws, n_max):
        temperature = float(10.0 ** rng.uniform(-1, 1))
        p = softmax(z / temperature)
        jac_over_t = jacobian(p) / temperature
        fd = central_difference_jacobian(lambda v, t=temperature: softmax(v / t), z, eps=1e-6)
        worst["fd_jac"] = max(worst["fd_jac"], relative_error(jac_over_t, fd))
        worst["norm_excess"] = max(worst["norm_excess"], float(np.linalg.norm(jac_over_t, 2)) - 0.5 / temperature)
        # Centred form: E[z²] − E[z]² cancels catastrophically when p is nearly one-hot.
        variance = float(p @ (z - p @ z) ** 2)
        step = 1e-6 * temperature
        d_entropy = (
            shannon_entropy(softmax(z / (temperature + step))) - shannon_entropy(softmax(z / (temperature - step)))
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


# --- attention-level gradients ------------------------------------------------------------------


def check_attention_gradients(
    *,
    operator: Callable[..., np.ndarray] = softmax_attention,
    softmax: Softmax = reference_softmax,
    draws: int = 40,
    seed: int = 512,
) -> CheckResult:
    """``∂o_c/∂z_j = p_j(V_jc − o_c)`` and ``‖∂o/∂q‖₂ ≤ ‖V‖₂‖K‖₂/(2√d)``, both by FD through the attention
    ``operator`` (default :func:`attnlab.reference.softmax_attention`)."""
    rng = rng_for(seed)
    worst_fd = 0.0
    worst_ratio = 0.0
    for _ in range(draws):
        m, d, d_v = int(rng.integers(2, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        z = np.clip(random_logits(rng, m), -30.0, 30.0)
        values = rng.standard_normal((m, d_v)) * 3.0
        p = softmax(z)
        out = p @ values
        analytic = (p[:, None] * (values - out[None, :])).T  # (d_v, m): ∂o_c/∂z_j
        fd = central_difference_jacobian(
            lambda logits, v=values: operator(logits[None, :], np.eye(logits.shape[0]), v, scale=1.0)[0],
            z,
        )
        worst_fd = max(worst_fd, relative_error(analytic, fd))
        keys = rng.standard_normal((m, d)) * 2.0
        query = rng.standard_normal(d)
        jac_q = central_difference_jacobian(lambda q, k=keys, v=values: operator(q[None, :], k, v)[0], query)
        bound = np.linalg.norm(values, 2) * np.linalg.norm(keys, 2) / (2.0 * np.sqrt(d))
        worst_ratio = max(worst_ratio, float(np.linalg.norm(jac_q, 2) / bound))
    ok = worst_fd <= 1e-7 and worst_ratio <= 1.0 + 1e-7
    return CheckResult(
        _verdict_if(ok),
        f"FD ∂o/∂z vs p_j(V_j − o) err {worst_fd:.1e}; max ‖∂o/∂q‖₂ / (‖V‖‖K‖/(2√d)) = {worst_ratio:.4f} ≤ 1 "
        f"over {draws} draws",
        {"fd_err": worst_fd, "max_ratio": worst_ratio, "draws": draws},
    )


# --- headline figure ----------------------------------------------------------------------


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
    """‖J‖₂ and ‖J‖_F vs temperature for n = 16, 64, 256 with the bounds overlaid."""
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
        ax.plot(temperatures, curves["one_minus_pmax_sq"], color="C3", ls="-.", lw=1.5, label=r"$1-p_{\max}^2$")
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
    fig.suptitle("Softmax Jacobian is small when attention is saturated (small T) and when it is diffuse (large T)")
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    return save_figure(fig, outdir, "softmax_jacobian_vs_temperature", data)


# --- mutants: deliberately wrong operators and constants ----------------------------------------


def _jacobian_scaled_outer(p: np.ndarray) -> np.ndarray:
    """``diag(p) − 0.9 ppᵀ``: the outer-product term shrunk by 10 %."""
    return np.diag(p) - 0.9 * np.outer(p, p)


def _jacobian_half_outer(p: np.ndarray) -> np.ndarray:
    """``diag(p) − ½ ppᵀ``: half the outer-product term."""
    return np.diag(p) - 0.5 * np.outer(p, p)


def _jacobian_plus_outer(p: np.ndarray) -> np.ndarray:
    """``diag(p) + ppᵀ``: the rank-one update with the wrong sign."""
    return np.diag(p) + np.outer(p, p)


def _jacobian_inflated(p: np.ndarray) -> np.ndarray:
    """``1.05 (diag(p) − ppᵀ)``: a Jacobian 5 % too large."""
    return 1.05 * softmax_jacobian(p)


def _jacobian_shrunk_for_two(p: np.ndarray) -> np.ndarray:
    """``0.99 J`` for two tokens only: removes the n = 2 counterexample."""
    return softmax_jacobian(p) * (0.99 if p.shape[0] == 2 else 1.0)


def _softmax_warm(z: np.ndarray) -> np.ndarray:
    """``softmax(1.01 z)``: a temperature 1 % off."""
    return reference_softmax(1.01 * np.asarray(z, dtype=np.float64))


def _softmax_sharp(z: np.ndarray) -> np.ndarray:
    """``softmax(2z)``: half the temperature, Lipschitz constant 1."""
    return reference_softmax(2.0 * np.asarray(z, dtype=np.float64))


def _softmax_top_two(z: np.ndarray) -> np.ndarray:
    """Softmax over the two largest logits only (the rest get weight 0)."""
    z = np.asarray(z, dtype=np.float64)
    keep = np.argsort(z)[-2:]
    p = np.zeros_like(z)
    p[keep] = reference_softmax(z[keep])
    return p


def _spectral_bound_too_tight(p: np.ndarray) -> float:
    """``min(0.45, p_max, 1 − p_max²)``: claims a constant below the attained ½."""
    p_max = float(np.max(p))
    return min(0.45, p_max, 1.0 - p_max**2)


def _norm_search_start_only(matrix: np.ndarray, order: float, rng: np.random.Generator, starts: int = 8) -> float:
    """A "search" that returns the ratio at one random start and never climbs."""
    x = rng.standard_normal(matrix.shape[1])
    return float(np.linalg.norm(matrix @ x, order) / np.linalg.norm(x, order))


def _attention_wrong_scale(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float | None = None) -> np.ndarray:
    """Softmax attention whose logits are scaled 1.5× too much."""
    sigma = np.asarray(q).shape[-1] ** -0.5 if scale is None else scale
    return softmax_attention(q, k, v, scale=1.5 * sigma)


WRONG_OUTER = Mutant("outer_term_scaled", "J = diag(p) − 0.9 ppᵀ", {"jacobian": _jacobian_scaled_outer})
WARM_SOFTMAX = Mutant("softmax_temperature_off", "softmax(1.01 z) in place of softmax(z)", {"softmax": _softmax_warm})

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
        kind="derived",
        source=BOYD_LSE,
        assumptions=("z ∈ Rⁿ finite, n ≥ 2", "rank statement for any p in the simplex"),
        verdict="holds",
        quick=check_jacobian_form,
        full=partial(check_jacobian_form, draws=1500, n_max=32),
        mutants=(WRONG_OUTER, WARM_SOFTMAX),
    )
)
register(
    Claim(
        id="softmax.jacobian.interlacing",
        family=FAMILY,
        statement=r"p_{(1)} \ge \dots \ge p_{(n)} \Rightarrow p_{(i+1)} \le \lambda_i(J) \le p_{(i)}",
        kind="derived",
        source=DERIVED,
        assumptions=("eigenvalues sorted in decreasing order", "Weyl interlacing for a rank-one negative update"),
        verdict="holds",
        quick=check_interlacing,
        full=partial(check_interlacing, draws=5000, n_max=64),
        mutants=(
            Mutant("rank_one_update_sign", "J = diag(p) + ppᵀ (positive update)", {"jacobian": _jacobian_plus_outer}),
        ),
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
        kind="derived",
        source=DERIVED,
        assumptions=("finite logits", "tight: equality at n = 2, z₁ = z₂"),
        verdict="holds",
        quick=check_spectral_bound,
        full=partial(check_spectral_bound, draws=8000, n_max=128),
        figure=JACOBIAN_FIGURE,
        mutants=(
            Mutant("bound_constant_too_small", "min(0.45, p_max, 1 − p_max²)", {"bound": _spectral_bound_too_tight}),
            Mutant("jacobian_inflated", "J scaled by 1.05", {"jacobian": _jacobian_inflated}),
        ),
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
        kind="derived",
        source=DERIVED,
        assumptions=("p in the probability simplex",),
        verdict="holds",
        quick=check_frobenius_half,
        full=partial(check_frobenius_half, draws=8000, n_max=128),
        figure=JACOBIAN_FIGURE,
        mutants=(Mutant("outer_term_halved", "J = diag(p) − ½ ppᵀ", {"jacobian": _jacobian_half_outer}),),
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
        kind="derived",
        source=DERIVED,
        assumptions=("finite logits",),
        verdict="holds",
        quick=check_l2_attainment,
        full=partial(check_l2_attainment, draws=40000),
        mutants=(
            Mutant(
                "softmax_top_two",
                "softmax over the two largest logits only: n ≥ 3 ties reach ½",
                {"softmax": _softmax_top_two},
            ),
        ),
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
        kind="paper",
        source=Source(
            NAIR,
            "v1, abstract",
            "we prove that the softmax function is contractive with the Lipschitz constant 1/2, uniformly "
            "across all ℓ_p norms with p ≥ 1",
            abstract_level=True,
        ),
        assumptions=("ℓ₁, ℓ∞ via max column/row sums ≤ ½; ℓ_p by Riesz–Thorin",),
        verdict="holds",
        quick=check_lipschitz_half,
        full=partial(check_lipschitz_half, pairs=8000, n_max=64),
        mutants=(Mutant("softmax_half_temperature", "softmax(2z): Lipschitz constant 1", {"softmax": _softmax_sharp}),),
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
        kind="paper",
        source=Source(
            NAIR,
            "v1, abstract",
            "the local Lipschitz constant of softmax attains 1/2 for p = 1 and p = ∞",
            abstract_level=True,
        ),
        assumptions=("z = (log 2, 0, 0)",),
        verdict="holds",
        quick=check_l1_linf_attainment,
        mutants=(WRONG_OUTER, Mutant("softmax_sharper", "softmax(2z): p ≠ (½, ¼, ¼)", {"softmax": _softmax_sharp})),
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
        kind="paper",
        source=Source(
            NAIR,
            "v1, abstract",
            "for p ∈ (1,∞), the constant remains strictly below 1/2 and the supremum 1/2 is achieved only in the limit",
            abstract_level=True,
        ),
        assumptions=("as quoted, no restriction on n",),
        verdict="refined",
        reason=(
            "false for n = 2: z₁ = z₂ gives ‖J‖_p→p = ½ exactly for every p (the abstract states no n; the body "
            "may assume n ≥ 3)"
        ),
        condition="at least n ≥ 3 logits; the n ≥ 3 near-ties searched stay strictly below ½",
        quick=check_interior_norms_strict,
        full=partial(check_interior_norms_strict, instances=100, starts=16),
        mutants=(
            Mutant(
                "no_two_token_counterexample",
                "J shrunk by 1 % at n = 2: the counterexample disappears",
                {"jacobian": _jacobian_shrunk_for_two},
            ),
            Mutant(
                "softmax_top_two",
                "softmax over the two largest logits: n ≥ 3 ties reach ½",
                {"softmax": _softmax_top_two},
            ),
            Mutant(
                "search_never_climbs",
                "the ℓ_p norm search returns its random start",
                {"norm_search": _norm_search_start_only},
            ),
        ),
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
        kind="derived",
        source=DERIVED,
        assumptions=("H₂ Rényi-2 entropy, H Shannon entropy, nats",),
        verdict="holds",
        quick=check_entropy_chain,
        full=partial(check_entropy_chain, draws=8000, n_max=128),
        mutants=(WRONG_OUTER,),
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
        kind="derived",
        source=DERIVED,
        assumptions=("T > 0",),
        verdict="holds",
        quick=check_temperature,
        full=partial(check_temperature, draws=1500, n_max=32),
        figure=JACOBIAN_FIGURE,
        mutants=(WARM_SOFTMAX,),
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
        kind="derived",
        source=DERIVED,
        assumptions=("one query row, no mask",),
        verdict="holds",
        quick=check_attention_gradients,
        full=partial(check_attention_gradients, draws=600),
        mutants=(
            Mutant("attention_logits_scaled", "attention with σ scaled by 1.5", {"operator": _attention_wrong_scale}),
        ),
    )
)
