"""Symbolic (SymPy) checks behind the tensor-attention claims (polynomial method, Khatri–Rao identity).

Each function returns a :class:`~attnlab.proofs_checks.results.CheckResult` and is used as (part of) a
claim's check in :mod:`attnlab.theory.tensor`. The checks exercise the library's own building blocks
(``taylor_multi_indices``, ``taylor_coefficients``, ``khatri_rao``) on symbolic inputs, so a wrong
coefficient or row order in the code flips them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from attnlab.proofs_checks.results import CheckResult
from attnlab.reference import tensor_poly
from attnlab.reference.tensor import khatri_rao

#: (d, g) pairs of the monomial-count check: d = 2, 3 and every g <= 4.
MONOMIAL_CASES: tuple[tuple[int, int], ...] = tuple((d, g) for d in (2, 3) for g in range(5))


def check_monomial_count() -> CheckResult:
    """``P_g(s⟨q, a∘b⟩)`` has exactly ``C(d+g, g)`` monomials in ``q``, with coefficients ``c_α a^α b^α``.

    Expands ``Σ_{t≤g} (s·Σ_ℓ q_ℓ a_ℓ b_ℓ)ᵗ / t!`` as a polynomial in ``q`` (``a``, ``b``, ``s`` symbolic)
    and compares the monomial set and every coefficient with the library's multi-indices and
    ``c_α = s^{|α|}/α!``.
    """
    s = sp.Symbol("s", positive=True)
    mismatches: list[str] = []
    counts: dict[str, int] = {}
    for d, g in MONOMIAL_CASES:
        q = sp.symbols(f"q0:{d}")
        a = sp.symbols(f"a0:{d}")
        b = sp.symbols(f"b0:{d}")
        logit = s * sum(q[ell] * a[ell] * b[ell] for ell in range(d))
        expansion = sp.Poly(sp.expand(sum(logit**t / sp.factorial(t) for t in range(g + 1))), *q)
        terms = dict(expansion.terms())
        counts[f"d={d},g={g}"] = len(terms)
        alphas = tensor_poly.taylor_multi_indices(d, g)
        library_monomials = {tuple(int(e) for e in alpha) for alpha in alphas}
        if set(terms) != library_monomials or len(terms) != math.comb(d + g, g):
            mismatches.append(f"d={d},g={g}: {len(terms)} monomials vs C(d+g,g)={math.comb(d + g, g)}")
            continue
        # The library's coefficients at s = 1/2 (a rational value exercises the s^{|α|} power).
        numeric = tensor_poly.taylor_coefficients(alphas, 0.5)
        for alpha, c_lib in zip(alphas, numeric):
            key = tuple(int(e) for e in alpha)
            expected = s ** sum(key) / sp.prod([sp.factorial(e) for e in key])
            expected *= sp.prod([a[ell] ** key[ell] * b[ell] ** key[ell] for ell in range(d)])
            if sp.expand(terms[key] - expected) != 0:
                mismatches.append(f"d={d},g={g},α={key}: symbolic coefficient differs")
            c_exact = sp.Rational(1, 2) ** sum(key) / sp.prod([sp.factorial(e) for e in key])
            if abs(float(c_exact) - float(c_lib)) > 1e-15 * float(c_exact):
                mismatches.append(f"d={d},g={g},α={key}: library c_α={c_lib!r} vs {c_exact}")
    if mismatches:
        return CheckResult(
            "falsified",
            f"{len(mismatches)} mismatches, first: {mismatches[0]}",
            {"counts": counts, "mismatches": mismatches[:10]},
        )
    return CheckResult(
        "holds",
        f"monomial count == C(d+g,g) and coefficients == s^|α|/α!·a^α b^α for {len(MONOMIAL_CASES)} "
        "(d,g) cases, d∈{2,3}, g≤4",
        {"counts": counts},
    )


def check_khatri_rao_identity(*, khatri_rao: Callable[[Any, Any], Any] = khatri_rao) -> CheckResult:
    """``(A⊘B)ᵀ(C⊘D) = (AᵀC)∘(BᵀD)`` with symbolic 2×2 and 3×2 matrices, using the library's ``khatri_rao``.

    Also checks the row convention: row ``j·m2 + k`` of ``A⊘B`` is ``A_j ∘ B_k``.
    """
    shapes = ((2, 2, 2), (3, 2, 2), (2, 3, 2), (3, 3, 2))  # (m1, m2, d)
    failures: list[str] = []
    for m1, m2, d in shapes:
        a = np.array(sp.symbols(f"a0:{m1 * d}"), dtype=object).reshape(m1, d)
        b = np.array(sp.symbols(f"b0:{m2 * d}"), dtype=object).reshape(m2, d)
        c = np.array(sp.symbols(f"c0:{m1 * 2}"), dtype=object).reshape(m1, 2)
        e = np.array(sp.symbols(f"e0:{m2 * 2}"), dtype=object).reshape(m2, 2)
        ab = khatri_rao(a, b)
        ce = khatri_rao(c, e)
        if ab.shape != (m1 * m2, d):
            failures.append(f"{m1}x{d} ⊘ {m2}x{d}: shape {ab.shape}")
            continue
        for j in range(m1):
            for k in range(m2):
                if any(sp.expand(ab[j * m2 + k, ell] - a[j, ell] * b[k, ell]) != 0 for ell in range(d)):
                    failures.append(f"{m1}x{d} ⊘ {m2}x{d}: row {j * m2 + k} is not A_{j}∘B_{k}")
        lhs = sp.Matrix(ab.T.dot(ce))
        rhs = sp.Matrix(a.T.dot(c)).multiply_elementwise(sp.Matrix(b.T.dot(e)))
        if (lhs - rhs).expand() != sp.zeros(d, 2):
            failures.append(f"{m1}x{d}, {m2}x{d}: (A⊘B)ᵀ(C⊘D) ≠ (AᵀC)∘(BᵀD)")
    if failures:
        return CheckResult("falsified", failures[0], {"failures": failures})
    return CheckResult(
        "holds",
        f"(A⊘B)ᵀ(C⊘D) − (AᵀC)∘(BᵀD) expands to 0 for {len(shapes)} symbolic shape sets; rows j·m2+k = A_j∘B_k",
        {"shapes": [list(s) for s in shapes]},
    )


#: Grid of the Taylor-remainder check.
REMAINDER_RADII: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 3.375, 5.0)
REMAINDER_DEGREES: tuple[int, ...] = tuple(range(1, 11))


@functools.cache
def _sup_relative_error(radius: float, degree: int, points: int = 61) -> float:
    """``max_{|x|≤R} |P_g(x)e^{−x} − 1|`` on a grid incl. ±R, at 40 significant digits (no cancellation)."""
    with mpmath.workdps(40):
        worst = mpmath.mpf(0)
        for i in range(points):
            x = mpmath.mpf(radius) * (mpmath.mpf(2 * i) / (points - 1) - 1)
            partial = mpmath.fsum(x**t / mpmath.factorial(t) for t in range(degree + 1))
            worst = max(worst, abs(partial * mpmath.exp(-x) - 1))
        return float(worst)


@functools.lru_cache(maxsize=1)
def _remainder_identity_failures() -> list[int]:
    """Degrees g ≤ 6 at which the series truncation or the integral remainder identity fails (SymPy)."""
    x, t = sp.symbols("x t", real=True)
    failures: list[int] = []
    for g in range(7):
        taylor = sum(x**i / sp.factorial(i) for i in range(g + 1))
        if sp.expand(sp.series(sp.exp(x), x, 0, g + 1).removeO() - taylor) != 0:
            failures.append(g)
        remainder = sp.integrate((x - t) ** g / sp.factorial(g) * sp.exp(t), (t, 0, x))
        if sp.simplify(remainder - (sp.exp(x) - taylor)) != 0:
            failures.append(g)
    return failures


def check_taylor_remainder(
    *, bound: Callable[[float, int], float] = tensor_poly.taylor_relative_error_bound
) -> CheckResult:
    """Taylor remainder: ``sup_{|x|≤R} |P_g(x)/eˣ − 1| ≤ R^{g+1}e^{R}/(g+1)!`` (``bound``), hence also the
    looser ``R^{g+1}e^{2R}/(g+1)!``.

    Symbolic part: ``series(exp(x), x, 0, g+1)`` truncates to ``P_g`` and the integral remainder
    ``eˣ − P_g(x) = ∫₀ˣ (x−t)^g/g!·eᵗ dt`` holds exactly (g ≤ 6); the bound follows from it. Numeric
    part: the true sup on a grid (40-digit arithmetic) against ``bound`` and against the ``e^{2R}`` form.
    Verdict: ``holds`` when neither is ever exceeded, ``falsified`` otherwise.
    """
    symbolic_failures = _remainder_identity_failures()
    if symbolic_failures:
        return CheckResult("falsified", f"series/integral remainder identity fails for g={symbolic_failures}")

    rows = []
    for radius in REMAINDER_RADII:
        for g in REMAINDER_DEGREES:
            actual = _sup_relative_error(radius, g)
            sharp = bound(radius, g)
            loose = math.exp((g + 1) * math.log(radius) + 2 * radius - math.lgamma(g + 2))
            rows.append({"R": radius, "g": g, "sup_error": actual, "sharp_bound": sharp, "loose_bound": loose})
    worst_sharp = max(r["sup_error"] / r["sharp_bound"] for r in rows)
    worst_loose = max(r["sup_error"] / r["loose_bound"] for r in rows)
    data = {"rows": rows, "max_ratio_sharp": worst_sharp, "max_ratio_loose": worst_loose}
    cases = f"{len(rows)} (R,g) cases, R≤{max(REMAINDER_RADII):g}, g≤{max(REMAINDER_DEGREES)}"
    verdict = "holds" if worst_sharp <= 1.0 and worst_loose <= 1.0 else "falsified"
    return CheckResult(
        verdict,
        f"sup error / (R^(g+1)e^R/(g+1)!) ≤ {worst_sharp:.3f}, / (R^(g+1)e^(2R)/(g+1)!) ≤ {worst_loose:.3g} "
        f"over {cases}; integral remainder verified symbolically for g≤6",
        data,
    )
