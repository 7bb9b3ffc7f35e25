"""Linear time-invariant state-space models and their lag operators.

Source: the "implicit" side of Ghodsi, "How Many Heads Make an SSM?" (arXiv 2512.15115, v1): an LTI
SSM ``h_t = A h_{t−1} + B x_t``, ``y_t = C h_t + D x_t`` (``h_0 = 0``) is the sequence map
``y_t = Σ_{s≤t} L_{t−s} x_s`` with lag operators (Markov parameters) ``L_0 = CB + D`` and
``L_ℓ = C A^ℓ B``.  The *lag-span dimension* ``k = dim span{L_0, …, L_{n−1}}`` is the quantity the
head-count theorem is about.

Arrays use row layout: an input sequence is ``(..., n, d)`` and the output ``(..., n, p)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnlab.validation import as_float_array

#: Relative singular-value threshold for numerical rank (1e-10·σ₁).
RANK_RTOL = 1e-10


@dataclass(frozen=True)
class LinearSSM:
    """``h_t = A h_{t−1} + B x_t``, ``y_t = C h_t + D x_t`` with ``h_0 = 0``.

    Shapes: ``a (N, N)``, ``b (N, d)``, ``c (p, N)``, ``d (p, d)`` (``None`` means no feedthrough).
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray | None = None

    def __post_init__(self) -> None:
        a = as_float_array("a", self.a, ndim=2)
        b = as_float_array("b", self.b, ndim=2)
        c = as_float_array("c", self.c, ndim=2)
        state = a.shape[0]
        if a.shape != (state, state):
            raise ValueError(f"a: expected a square (N, N) state matrix, got shape {a.shape}")
        if b.shape[0] != state:
            raise ValueError(f"b: expected shape ({state}, d), got {b.shape}")
        if c.shape[1] != state:
            raise ValueError(f"c: expected shape (p, {state}), got {c.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)
        if self.d is not None:
            d = as_float_array("d", self.d, ndim=2)
            if d.shape != (c.shape[0], b.shape[1]):
                raise ValueError(f"d: expected shape ({c.shape[0]}, {b.shape[1]}), got {d.shape}")
            object.__setattr__(self, "d", d)

    @property
    def state_dim(self) -> int:
        return int(self.a.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.b.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.c.shape[0])

    @property
    def has_feedthrough(self) -> bool:
        return self.d is not None and bool(np.any(self.d != 0))

    def lag_operators(self, n: int) -> np.ndarray:
        """``(n, p, d)`` stack of ``L_0 = CB + D`` and ``L_ℓ = C A^ℓ B`` for ``ℓ = 1 … n−1``."""
        n = _check_length(n)
        lags = np.empty((n, self.output_dim, self.input_dim))
        propagated = self.b.copy()  # A^ℓ B
        for lag in range(n):
            lags[lag] = self.c @ propagated
            propagated = self.a @ propagated
        if self.d is not None:
            lags[0] += self.d
        return lags

    def __call__(self, x: Any) -> np.ndarray:
        """Run the recurrence on ``x (..., n, d)``; returns ``y (..., n, p)``."""
        x = as_float_array("x", x)
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"x: expected last axis d = {self.input_dim}, got shape {x.shape}")
        state = np.zeros((*x.shape[:-2], self.state_dim))
        out = np.empty((*x.shape[:-1], self.output_dim))
        for t in range(x.shape[-2]):
            state = state @ self.a.T + x[..., t, :] @ self.b.T
            out[..., t, :] = state @ self.c.T
            if self.d is not None:
                out[..., t, :] += x[..., t, :] @ self.d.T
        return out


def _check_length(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive sequence length, got {n!r}")
    return int(n)


def lag_matrix(ssm: LinearSSM, n: int) -> np.ndarray:
    """``M = [vec L_0 | … | vec L_{n−1}] ∈ R^{pd×n}`` (row-major ``vec``)."""
    lags = ssm.lag_operators(n)
    return lags.reshape(n, -1).T


def lag_singular_values(ssm: LinearSSM, n: int) -> np.ndarray:
    """Singular values of the lag matrix ``M`` in decreasing order (length ``min(pd, n)``)."""
    return np.linalg.svd(lag_matrix(ssm, n), compute_uv=False)


def numerical_rank(singular_values: np.ndarray, rtol: float = RANK_RTOL) -> int:
    """Number of singular values above ``rtol·σ₁`` (zero for an all-zero matrix)."""
    if singular_values.size == 0 or singular_values[0] == 0:
        return 0
    return int(np.sum(singular_values > rtol * singular_values[0]))


def lag_span_dimension(ssm: LinearSSM, n: int, rtol: float = RANK_RTOL) -> int:
    """``k = dim span{L_0, …, L_{n−1}}`` = numerical rank of ``M`` (tolerance ``rtol·σ₁``)."""
    return numerical_rank(lag_singular_values(ssm, n), rtol)


def lag_span_bound(ssm: LinearSSM, n: int) -> int:
    """``min(n, pd, N + 1[D ≠ 0])``: Cayley–Hamilton puts every ``C A^ℓ B`` in span{CB, …, CA^{N−1}B}."""
    return min(n, ssm.output_dim * ssm.input_dim, ssm.state_dim + int(ssm.has_feedthrough))


def spectral_radius(a: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(a))))


def random_diagonal_ssm(
    rng: np.random.Generator,
    modes: int,
    *,
    p: int = 3,
    d: int = 3,
    radius: tuple[float, float] = (0.2, 0.95),
) -> LinearSSM:
    """Diagonal ``A`` with ``modes`` distinct real eigenvalues of modulus in ``radius``; Gaussian ``B, C``.

    The eigenvalues are spread over the interval (random signs), so they are distinct with gap
    bounded away from zero and ``k = min(modes, pd, n)`` generically.
    """
    low, high = radius
    grid = np.linspace(low, high, modes)
    jitter = rng.uniform(-0.25, 0.25, modes) * (high - low) / max(modes, 1)
    eigenvalues = np.clip(grid + jitter, low, high) * rng.choice([-1.0, 1.0], modes)
    return LinearSSM(
        a=np.diag(eigenvalues),
        b=rng.standard_normal((modes, d)),
        c=rng.standard_normal((p, modes)),
    )


def shift_ssm(rng: np.random.Generator, taps: int, *, p: int = 3, d: int = 3) -> LinearSSM:
    """Nilpotent shift ``A`` (an FIR filter): ``L_ℓ = 0`` for ``ℓ ≥ taps``."""
    return LinearSSM(
        a=np.eye(taps, k=-1),
        b=rng.standard_normal((taps, d)),
        c=rng.standard_normal((p, taps)),
    )


def random_similar_ssm(
    rng: np.random.Generator, eigenvalues: np.ndarray, *, p: int = 2, d: int = 2, conditioning: float = 0.5
) -> LinearSSM:
    """``A = S Λ S⁻¹`` with random non-orthogonal ``S = I + conditioning·G``: diagonalisable, non-normal."""
    modes = len(eigenvalues)
    basis = np.eye(modes) + conditioning * rng.standard_normal((modes, modes)) / np.sqrt(modes)
    a = basis @ np.diag(eigenvalues) @ np.linalg.inv(basis)
    return LinearSSM(a=a, b=rng.standard_normal((modes, d)), c=rng.standard_normal((p, modes)))
