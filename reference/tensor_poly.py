"""Polynomial-method approximation of tensor attention (after Alman & Song 2024, arXiv 2310.04064, §5).

Exact tensor attention ``T = D⁻¹ A (V₁⊘V₂)`` with ``A = exp(σ Q (K₁⊘K₂)ᵀ) ∈ R^{n×m₁m₂}`` costs
``O(n m₁ m₂ d)``. The polynomial method replaces ``exp`` by its degree-``g`` Taylor polynomial
``P_g(x) = Σ_{t≤g} xᵗ/t!``. Expanding the trilinear logit with the multinomial theorem,

    P_g(σ⟨q, a∘b⟩) = Σ_{|α|≤g} c_α q^α a^α b^α,     c_α = σ^{|α|} / α!,

so ``Ã = P_g(σ Q(K₁⊘K₂)ᵀ) = U (W₁⊘W₂)ᵀ`` with ``U[i,α] = c_α Q_i^α``, ``W_t[j,α] = K_t,j^α``: a
factorisation of rank ``r = #{α ∈ ℕ^d : |α| ≤ g} = C(d+g, g)``. The Khatri–Rao identity
``(A⊘B)ᵀ(C⊘D) = (AᵀC) ∘ (BᵀD)`` then gives

    Ã (V₁⊘V₂) = U [(W₁ᵀV₁) ∘ (W₂ᵀV₂)],      Ã 1 = U [(W₁ᵀ1) ∘ (W₂ᵀ1)]    (1_{m₁m₂} = 1⊘1),

and ``T̃ = D̃⁻¹ Ã (V₁⊘V₂)`` in ``O((n + m₁ + m₂)·r·d_v)`` time: nothing of size ``m₁m₂`` is formed.

Error bound. If every logit lies in ``[−R, R]`` (``R = σ d B³`` when all entries of Q, K₁, K₂ are
bounded by B, i.e. ``R = B³`` for the Alman–Song scale σ = 1/d), the Taylor remainder in integral
form gives the relative entry error ``ε = max |Ã/A − 1| ≤ R^{g+1} e^{R} / (g+1)!``, and for ε < 1 the
normalised output obeys ``‖T̃ − T‖∞ ≤ 2ε/(1−ε) · ‖V₁⊘V₂‖∞`` (each weight ratio lies in
``[(1−ε)/(1+ε), (1+ε)/(1−ε)]``).

Sources: Alman & Song, "How to Capture Higher-order Correlations? Generalizing Matrix Softmax
Attention to Kronecker Computation", ICLR 2024 (arXiv 2310.04064); Alman & Song, "Fast Attention
Requires Bounded Entries", NeurIPS 2023 (arXiv 2302.13214) for the matrix case. The construction is
the standard polynomial method, reconstructed and checked numerically and symbolically in attnlab.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import gammaln

from attnlab.reference.tensor import khatri_rao
from attnlab.validation import (
    as_float_array,
    broadcast_batch,
    check_last_dim,
    check_same_length,
    check_scale,
    overflow_checked,
)

__all__ = [
    "TensorPolyFactors",
    "monomial_features",
    "poly_output_error_bound",
    "taylor_coefficients",
    "taylor_exp",
    "taylor_multi_indices",
    "taylor_relative_error_bound",
    "tensor_attention_poly",
    "tensor_poly_factors",
    "tensor_poly_rank",
]


def _check_degree(degree: Any) -> int:
    if isinstance(degree, (bool, np.bool_)) or not isinstance(degree, (int, np.integer)):
        raise TypeError(f"degree: expected a non-negative int (the Taylor degree g), got {type(degree).__name__}")
    if int(degree) < 0:
        raise ValueError(f"degree: expected a non-negative int (the Taylor degree g), got {degree}")
    return int(degree)


def tensor_poly_rank(d: int, degree: int) -> int:
    """Rank of the Taylor factorisation: the number of monomials ``q^α`` with ``|α| ≤ g``, ``C(d+g, g)``."""
    return math.comb(int(d) + int(degree), int(degree))


@lru_cache(maxsize=64)
def _multi_index_plan(d: int, degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-indices in graded order plus, for each, its parent (one degree lower) and last variable.

    Monomial ``α`` of degree ``t ≥ 1`` is the sorted variable tuple ``(i₁ ≤ … ≤ i_t)``; its parent is
    ``(i₁ … i_{t−1})`` and it equals ``parent · x_{i_t}``. Building monomials this way costs one
    multiply per feature instead of ``d``.
    """
    combos: list[tuple[int, ...]] = []
    for t in range(degree + 1):
        combos.extend(itertools.combinations_with_replacement(range(d), t))
    position = {combo: idx for idx, combo in enumerate(combos)}
    alphas = np.zeros((len(combos), d), dtype=np.int64)
    parents = np.zeros(len(combos), dtype=np.int64)
    last = np.zeros(len(combos), dtype=np.int64)
    for idx, combo in enumerate(combos):
        for var in combo:
            alphas[idx, var] += 1
        if combo:
            parents[idx] = position[combo[:-1]]
            last[idx] = combo[-1]
    for arr in (alphas, parents, last):
        arr.setflags(write=False)
    return alphas, parents, last


def taylor_multi_indices(d: int, degree: int) -> np.ndarray:
    """All ``α ∈ ℕ^d`` with ``|α| ≤ degree``, graded (degree 0 first), shape ``(C(d+g, g), d)``."""
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or int(d) < 1:
        raise ValueError(f"d: expected a positive int (the feature dimension), got {d!r}")
    return _multi_index_plan(int(d), _check_degree(degree))[0]


def taylor_coefficients(multi_indices: np.ndarray, scale: float) -> np.ndarray:
    """Multinomial Taylor coefficients ``c_α = σ^{|α|} / α!`` (``α! = Π_ℓ α_ℓ!``), shape ``(r,)``.

    From ``(σ⟨q, a∘b⟩)ᵗ / t! = Σ_{|α|=t} (σᵗ/α!) q^α a^α b^α``.
    """
    alphas = np.asarray(multi_indices)
    total = alphas.sum(axis=-1)
    log_factorials = gammaln(alphas + 1.0).sum(axis=-1)
    return np.asarray(float(scale) ** total * np.exp(-log_factorials), dtype=np.float64)


def monomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    """Monomials ``x^α`` for all ``|α| ≤ degree`` in the order of :func:`taylor_multi_indices`.

    ``x``: ``(..., n, d)`` → ``(..., n, C(d+g, g))``; one multiply per feature (``O(n·r)``).
    """
    d = x.shape[-1]
    _, parents, last = _multi_index_plan(d, degree)
    # Feature-major layout: each new monomial is one contiguous row product (cache-friendly for
    # large n); the result is returned as a (..., n, r) view.
    columns = np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float64)
    features = np.empty((len(parents), *x.shape[:-1]), dtype=np.float64)
    features[0] = 1.0
    for idx in range(1, len(parents)):
        np.multiply(features[parents[idx]], columns[last[idx]], out=features[idx])
    return np.moveaxis(features, 0, -1)


def taylor_exp(x: Any, degree: int) -> np.ndarray:
    """``P_g(x) = Σ_{t≤g} xᵗ/t!`` evaluated by Horner's rule (elementwise, in float64)."""
    g = _check_degree(degree)
    x = np.asarray(x, dtype=np.float64)
    result = np.ones_like(x)
    for t in range(g, 0, -1):
        result = 1.0 + x * result / t
    return result


def taylor_relative_error_bound(radius: float, degree: int) -> float:
    """Sharp-form Lagrange bound ``sup_{|x|≤R} |P_g(x)/eˣ − 1| ≤ R^{g+1} e^{R} / (g+1)!``.

    From the integral remainder ``eˣ − P_g(x) = ∫₀ˣ (x−t)^g/g! · eᵗ dt``: for ``x < 0`` the factor
    ``eᵗ ≤ 1`` gives ``|x|^{g+1}/(g+1)!``, divided by ``eˣ ≥ e^{−R}``; for ``x > 0`` it is at most
    ``x^{g+1} eˣ/(g+1)!`` divided by ``eˣ``. (The looser ``e^{2R}`` also holds.)
    """
    g = _check_degree(degree)
    if radius < 0 or not math.isfinite(radius):
        raise ValueError(f"radius: expected a finite R >= 0, got {radius!r}")
    if radius == 0:
        return 0.0
    return math.exp((g + 1) * math.log(radius) + radius - math.lgamma(g + 2))


def poly_output_error_bound(epsilon: float, value_sup: float) -> float:
    """Output bound ``‖T̃ − T‖∞ ≤ 2ε/(1−ε) · ‖V₁⊘V₂‖∞`` for relative entry error ``ε < 1``."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon: the bound needs a relative entry error in [0, 1), got {epsilon!r}")
    return 2.0 * epsilon / (1.0 - epsilon) * float(value_sup)


@dataclass(frozen=True)
class TensorPolyFactors:
    """Low-rank factors with ``Ã = U (W₁⊘W₂)ᵀ = P_g(σ Q (K₁⊘K₂)ᵀ)``.

    Attributes:
        query_features: ``U``, ``(..., n, r)``, ``U[i, α] = c_α Q_i^α``.
        key1_features: ``W₁``, ``(..., m1, r)``, ``W₁[j, α] = K₁_j^α``.
        key2_features: ``W₂``, ``(..., m2, r)``, ``W₂[k, α] = K₂_k^α``.
        multi_indices: ``(r, d)`` exponents ``α``; ``r = C(d+g, g)``.
        degree: the Taylor degree ``g``.
        scale: σ.
    """

    query_features: np.ndarray
    key1_features: np.ndarray
    key2_features: np.ndarray
    multi_indices: np.ndarray
    degree: int
    scale: float

    @property
    def rank(self) -> int:
        """``r = C(d+g, g)``, the inner dimension of the factorisation (an upper bound on rank Ã)."""
        return int(self.multi_indices.shape[0])

    def matrix(self) -> np.ndarray:
        """``Ã = U (W₁⊘W₂)ᵀ``, shape ``(..., n, m1·m2)`` with columns ordered ``j·m2 + k``.

        Materialises ``m1·m2`` columns: for rank checks on small inputs only.
        """
        pairs = khatri_rao(self.key1_features, self.key2_features)
        return self.query_features @ np.swapaxes(pairs, -1, -2)


def _prepare_qk(q: Any, k1: Any, k2: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = as_float_array("q", q)
    k1 = as_float_array("k1", k1)
    k2 = as_float_array("k2", k2)
    d = q.shape[-1]
    check_last_dim("k1", k1, d, "d, the last axis of q")
    check_last_dim("k2", k2, d, "d, the last axis of q")
    return q, k1, k2


def tensor_poly_factors(q: Any, k1: Any, k2: Any, *, degree: int, scale: float | None = None) -> TensorPolyFactors:
    """Rank-``C(d+g, g)`` factors ``U, W₁, W₂`` of the Taylor approximation ``Ã`` of ``exp(σ Q(K₁⊘K₂)ᵀ)``.

    Args:
        q: ``(..., n, d)``; k1: ``(..., m1, d)``; k2: ``(..., m2, d)`` (float arrays).
        degree: Taylor degree ``g >= 0``.
        scale: σ, default ``1/d`` (the Alman–Song problem statement).

    Returns:
        :class:`TensorPolyFactors` (leading batch dims kept as given, not broadcast).
    """
    q, k1, k2 = _prepare_qk(q, k1, k2)
    g = _check_degree(degree)
    d = q.shape[-1]
    sigma = check_scale(scale, 1.0 / d)
    alphas = taylor_multi_indices(d, g)
    coefficients = taylor_coefficients(alphas, sigma)
    return TensorPolyFactors(
        query_features=monomial_features(q, g) * coefficients,
        key1_features=monomial_features(k1, g),
        key2_features=monomial_features(k2, g),
        multi_indices=alphas,
        degree=g,
        scale=sigma,
    )


@overflow_checked
def tensor_attention_poly(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    degree: int,
    scale: float | None = None,
) -> np.ndarray:
    """Polynomial-method tensor attention ``T̃ = D̃⁻¹ Ã (V₁⊘V₂)``, ``Ã = P_g(σ Q(K₁⊘K₂)ᵀ)``.

    Computed as ``U[(W₁ᵀ[V₁ 1]) ∘ (W₂ᵀ[V₂ 1])]`` (Khatri–Rao identity; the appended ones column
    yields the normaliser ``D̃ = diag(Ã 1)``), in ``O((n + m1 + m2)·r·d_v)`` time with
    ``r = C(d+g, g)``. Converges to :func:`attnlab.reference.tensor_attention` as ``g → ∞``; see the
    module docstring for the error bound.

    Args:
        q: ``(..., n, d)``; k1, v1: ``(..., m1, d)``, ``(..., m1, d_v)``; k2, v2: ``(..., m2, d)``,
            ``(..., m2, d_v)``.
        degree: Taylor degree ``g >= 0`` (even ``g`` keeps every ``Ã`` entry positive).
        scale: σ, default ``1/d``.

    Returns:
        ``(..., n, d_v)`` float64.

    Raises:
        ValueError: if some row's normaliser ``D̃_ii`` is not positive (possible only for odd ``g``
            with logits far outside the polynomial's accurate range).
    """
    q, k1, k2 = _prepare_qk(q, k1, k2)
    v1 = as_float_array("v1", v1)
    v2 = as_float_array("v2", v2)
    check_last_dim("v2", v2, v1.shape[-1], "d_v, the last axis of v1")
    check_same_length(("k1", "v1"), (k1, v1))
    check_same_length(("k2", "v2"), (k2, v2))
    broadcast_batch(("q", "k1", "k2", "v1", "v2"), (q, k1, k2, v1, v2))
    g = _check_degree(degree)
    d = q.shape[-1]
    sigma = check_scale(scale, 1.0 / d)
    coefficients = taylor_coefficients(taylor_multi_indices(d, g), sigma)
    # (W₁ᵀ[V₁ 1]) ∘ (W₂ᵀ[V₂ 1]): (..., r, d_v + 1); the last column gives the normaliser.
    mixed = _key_summary(k1, v1, g) * _key_summary(k2, v2, g)
    lead = np.broadcast_shapes(q.shape[:-2], mixed.shape[:-2])
    n, d_v = q.shape[-2], v1.shape[-1]
    out = np.empty((*lead, n, d_v))
    for rows in _row_blocks(q, len(coefficients)):
        stacked = (monomial_features(q[..., rows, :], g) * coefficients) @ mixed
        numerator, normaliser = stacked[..., :-1], stacked[..., -1:]
        if not np.all(normaliser > 0.0):
            raise ValueError(
                f"degree: the degree-{g} Taylor approximation gives a non-positive normaliser "
                "D̃ = Ã·1 for some query; the logits are outside the range where P_g approximates exp "
                "(use an even degree or a higher one)"
            )
        out[..., rows, :] = numerator / normaliser
    return out


#: Rows per block times features: keeps each block's monomials (~1 MiB) in cache, so the time is
#: linear in n without steps where the working set falls out of cache.
_BLOCK_ELEMENTS = 1 << 17


def _row_blocks(x: np.ndarray, rank: int) -> list[slice]:
    batch = math.prod(x.shape[:-2]) if x.ndim > 2 else 1
    block = max(1, _BLOCK_ELEMENTS // max(1, rank * batch))
    length = x.shape[-2]
    return [slice(start, min(start + block, length)) for start in range(0, length, block)]


def _key_summary(keys: np.ndarray, values: np.ndarray, degree: int) -> np.ndarray:
    """``W ᵀ [V 1] = Σ_j k_j^α [v_j, 1]``, accumulated over blocks of key rows: ``(..., r, d_v + 1)``."""
    rank = tensor_poly_rank(keys.shape[-1], degree)
    lead = np.broadcast_shapes(keys.shape[:-2], values.shape[:-2])
    summary = np.zeros((*lead, rank, values.shape[-1] + 1))
    for rows in _row_blocks(keys, rank):
        block_values = values[..., rows, :]
        augmented = np.concatenate([block_values, np.ones((*block_values.shape[:-1], 1))], axis=-1)
        summary += np.swapaxes(monomial_features(keys[..., rows, :], degree), -1, -2) @ augmented
    return summary
