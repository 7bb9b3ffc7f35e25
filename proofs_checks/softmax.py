"""Symbolic (SymPy) checks of the softmax Jacobian identities.

Each function proves an identity exactly for small ``n`` and returns a
:class:`~attnlab.proofs_checks.results.CheckResult`: ``holds`` when every difference simplifies to 0,
``falsified`` otherwise (with the non-zero residual in the evidence).
"""

from __future__ import annotations

import sympy as sp

from attnlab.proofs_checks.results import CheckResult


def _softmax_symbols(n: int) -> tuple[list[sp.Symbol], list[sp.Expr]]:
    z = list(sp.symbols(f"z1:{n + 1}", real=True))
    denominator = sum(sp.exp(zi) for zi in z)
    return z, [sp.exp(zi) / denominator for zi in z]


def _jacobian_of(p: list[sp.Expr]) -> sp.Matrix:
    n = len(p)
    return sp.Matrix(n, n, lambda i, j: (p[i] if i == j else 0) - p[i] * p[j])


def _verdict(residuals: dict[str, sp.Expr], what: str) -> CheckResult:
    nonzero = {name: str(expr) for name, expr in residuals.items() if expr != 0}
    if nonzero:
        first = next(iter(nonzero.items()))
        return CheckResult("falsified", f"{what}: residual {first[0]} = {first[1]} ≠ 0", {"residuals": nonzero})
    return CheckResult(
        "holds",
        f"{what}: every residual simplifies to 0 ({len(residuals)} cases)",
        {"cases": sorted(residuals)},
    )


def lse_hessian_equals_jacobian(sizes: tuple[int, ...] = (2, 3)) -> CheckResult:
    """``∇²LSE(z) = diag(p) − ppᵀ`` and ``∇LSE = p``, symbolically in ``z`` for each ``n`` in ``sizes``."""
    residuals: dict[str, sp.Expr] = {}
    for n in sizes:
        z, p = _softmax_symbols(n)
        lse = sp.log(sum(sp.exp(zi) for zi in z))
        gradient = [sp.diff(lse, zi) for zi in z]
        hessian = sp.hessian(lse, z)
        residuals[f"n={n} gradient"] = sp.simplify(sum((g - pi) ** 2 for g, pi in zip(gradient, p)))
        difference = hessian - _jacobian_of(p)
        residuals[f"n={n} hessian"] = sp.simplify(sum(e**2 for e in difference))
    return _verdict(residuals, "Hessian of LSE − (diag p − ppᵀ)")


def jacobian_kernel_and_symmetry(sizes: tuple[int, ...] = (2, 3)) -> CheckResult:
    """With free ``p_1..p_n`` on the simplex: ``J·1 = 0``, ``J = Jᵀ``, ``det J = 0`` (0 is an eigenvalue)
    and ``xᵀJx = Σp_i x_i² − (Σp_i x_i)²``."""
    residuals: dict[str, sp.Expr] = {}
    for n in sizes:
        free = list(sp.symbols(f"p1:{n}", positive=True))
        p = [*free, 1 - sum(free)]
        x = list(sp.symbols(f"x1:{n + 1}", real=True))
        jac = _jacobian_of(p)
        residuals[f"n={n} J·1"] = sp.simplify(sum(e**2 for e in jac * sp.ones(n, 1)))
        residuals[f"n={n} J−Jᵀ"] = sp.simplify(sum(e**2 for e in jac - jac.T))
        residuals[f"n={n} det J"] = sp.simplify(jac.det())
        xv = sp.Matrix(x)
        quadratic = (xv.T * jac * xv)[0, 0]
        variance = sum(pi * xi**2 for pi, xi in zip(p, x)) - sum(pi * xi for pi, xi in zip(p, x)) ** 2
        residuals[f"n={n} xᵀJx − Var"] = sp.expand(quadratic - variance)
    return _verdict(residuals, "J·1, J − Jᵀ, det J, xᵀJx − Var_p(x)")


def frobenius_identity(sizes: tuple[int, ...] = (2, 3, 4)) -> CheckResult:
    """``‖J‖_F² = Σp_i² − 2Σp_i³ + (Σp_i²)²`` for symbolic ``p`` (no simplex constraint needed)."""
    residuals: dict[str, sp.Expr] = {}
    for n in sizes:
        p = list(sp.symbols(f"p1:{n + 1}", positive=True))
        jac = _jacobian_of(p)
        frob_sq = sum(e**2 for e in jac)
        s2 = sum(pi**2 for pi in p)
        s3 = sum(pi**3 for pi in p)
        residuals[f"n={n}"] = sp.expand(frob_sq - (s2 - 2 * s3 + s2**2))
    return _verdict(residuals, "‖J‖_F² − (Σp² − 2Σp³ + (Σp²)²)")


def two_token_eigenvalues() -> CheckResult:
    """For ``n = 2``, ``p = (q, 1−q)``: the eigenvalues of ``J`` are ``{0, 2q(1−q)}``, and ``2q(1−q) ≤ ½``
    with equality only at ``q = ½`` (the maximiser of the concave ``2q(1−q)``)."""
    q = sp.symbols("q", positive=True)
    jac = _jacobian_of([q, 1 - q])
    eigen = sorted((sp.simplify(e) for e in jac.eigenvals()), key=lambda e: sp.count_ops(e))
    expected = {sp.Integer(0), sp.expand(2 * q * (1 - q))}
    got = {sp.expand(e) for e in eigen}
    residuals: dict[str, sp.Expr] = {"eigenvalues": sp.Integer(0) if got == expected else sp.Integer(1)}
    critical = sp.solve(sp.diff(2 * q * (1 - q), q), q)
    residuals["argmax − ½"] = sp.Integer(0) if critical == [sp.Rational(1, 2)] else sp.Integer(1)
    residuals["max − ½"] = sp.simplify((2 * q * (1 - q)).subs(q, sp.Rational(1, 2)) - sp.Rational(1, 2))
    result = _verdict(residuals, "n=2 spectrum {0, 2q(1−q)}, max ½ at q=½")
    return CheckResult(result.verdict, result.evidence, {**result.data, "eigenvalues": [str(e) for e in eigen]})


def entropy_inverse_temperature_derivative() -> CheckResult:
    """``dH/dβ = −β·Var_p(z)`` for ``p = softmax(βz)``, ``n = 3`` (equivalently ``dH/dT = Var_p(z)/T³``)."""
    beta = sp.symbols("beta", positive=True)
    z, _ = _softmax_symbols(3)
    denominator = sum(sp.exp(beta * zi) for zi in z)
    p = [sp.exp(beta * zi) / denominator for zi in z]
    # H = −Σ p log p with log p = βz − LSE(βz): keeps the expression free of log(exp(·)/Σ) forms.
    log_p = [beta * zi - sp.log(denominator) for zi in z]
    entropy = -sum(pi * lpi for pi, lpi in zip(p, log_p))
    mean = sum(pi * zi for pi, zi in zip(p, z))
    variance = sum(pi * zi**2 for pi, zi in zip(p, z)) - mean**2
    residual = sp.simplify(sp.diff(entropy, beta) + beta * variance)
    return _verdict({"n=3 dH/dβ + β·Var": residual}, "dH/dβ + β·Var_p(z)")
