"""Exact (SymPy) checks for the head-count theorem on rational SSMs.

Source setting: Ghodsi, "How Many Heads Make an SSM?" (arXiv 2512.15115 v1).  With rational ``A, B, C``
every lag ``L_ℓ = C A^ℓ B`` is exact, so the lag-span dimension ``k`` is an exact matrix rank, the
construction's coefficients solve a linear system exactly, and the heads' output minus the SSM's
output is the zero polynomial in symbolic inputs ``x_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp


@dataclass(frozen=True)
class RationalSSM:
    a: sp.Matrix
    b: sp.Matrix
    c: sp.Matrix

    def lags(self, n: int) -> list[sp.Matrix]:
        out, propagated = [], self.b
        for _ in range(n):
            out.append(self.c * propagated)
            propagated = self.a * propagated
        return out

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, C)`` as float64 arrays (for the float64 SSM model of :mod:`attnlab.theory.ssm`)."""

        def conv(m: sp.Matrix) -> np.ndarray:
            return np.array(m.tolist(), dtype=float)

        return conv(self.a), conv(self.b), conv(self.c)


def random_rational_ssm(rng: np.random.Generator, state: int, p: int, d: int) -> RationalSSM:
    """Rational ``A, B, C`` with small numerators and denominators 8, 3, 3 (exact arithmetic)."""

    def rational(shape: tuple[int, int], denominator: int) -> sp.Matrix:
        nums = rng.integers(-4, 5, size=shape)
        return sp.Matrix(shape[0], shape[1], lambda i, j: sp.Rational(int(nums[i, j]), denominator))

    return RationalSSM(rational((state, state), 8), rational((state, d), 3), rational((p, state), 3))


def lag_matrix_exact(ssm: RationalSSM, n: int) -> sp.Matrix:
    """``[vec L_0 | … | vec L_{n−1}]`` with row-major ``vec`` (matches ``theory.ssm.lag_matrix``)."""
    columns = [sp.Matrix(list(lag)) for lag in ssm.lags(n)]  # sp.Matrix iterates row-major
    return sp.Matrix.hstack(*columns)


def exact_lag_rank(ssm: RationalSSM, n: int) -> int:
    return int(lag_matrix_exact(ssm, n).rank())


def rational_instances(seed: int = 0, instances: int = 3) -> list[RationalSSM]:
    """Seeded rational SSMs of shapes (N, p, d) = (3, 2, 2), (2, 2, 2), (4, 2, 3), cycled."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 2, 2), (2, 2, 2), (4, 2, 3)]
    return [random_rational_ssm(rng, *shapes[index % len(shapes)]) for index in range(instances)]


def exact_construction_residual(ssm: RationalSSM, n: int) -> sp.Matrix:
    """``Y_heads − Y_SSM`` as polynomials in symbolic inputs, with H = k exact heads.

    Heads: a basis ``V_h`` of the lag span from ``columnspace()``; coefficients ``c_{hℓ}`` solve
    ``Σ_h c_{hℓ} vec V_h = vec L_ℓ`` exactly; scores ``α^h_ij = c_{h,i−j} 1[j ≤ i]``.  Returns the
    ``n × p`` matrix of expanded differences (all zero iff the construction is exact).
    """
    lags = ssm.lags(n)
    p, d = lags[0].shape
    matrix = lag_matrix_exact(ssm, n)
    basis = matrix.columnspace()
    basis_matrix = sp.Matrix.hstack(*basis)
    coefficients = [basis_matrix.solve_least_squares(matrix[:, lag]) for lag in range(n)]
    for lag in range(n):  # the solve must be exact, not a projection
        if basis_matrix * coefficients[lag] != matrix[:, lag]:
            raise ArithmeticError(f"lag {lag} is not in the column space")
    values = [sp.Matrix(p, d, list(vec)) for vec in basis]
    xs = [sp.Matrix(d, 1, sp.symbols(f"x{t}_0:{d}")) for t in range(n)]
    rows = []
    for i in range(n):
        heads = sp.zeros(p, 1)
        ssm_out = sp.zeros(p, 1)
        for j in range(i + 1):
            ssm_out += lags[i - j] * xs[j]
            for h, value in enumerate(values):
                heads += coefficients[i - j][h] * value * xs[j]
        rows.append((heads - ssm_out).applyfunc(sp.expand).T)
    return sp.Matrix.vstack(*rows)


def cayley_hamilton_span(ssm: RationalSSM, n: int) -> bool:
    """``charpoly(A)`` annihilates ``A``, so every ``L_ℓ`` with ``ℓ ≥ N`` lies in span{L_0 … L_{N−1}}."""
    state = ssm.a.shape[0]
    lam = sp.Symbol("lam")
    coeffs = ssm.a.charpoly(lam).all_coeffs()  # monic, degree N
    annihilated = sp.zeros(state, state)
    for power, coeff in enumerate(reversed(coeffs)):
        annihilated += coeff * ssm.a**power
    if annihilated != sp.zeros(state, state):
        return False
    head = lag_matrix_exact(ssm, state)
    full = lag_matrix_exact(ssm, max(n, state + 1))
    return bool(head.rank() == full.rank() and sp.Matrix.hstack(head, full).rank() == head.rank())
