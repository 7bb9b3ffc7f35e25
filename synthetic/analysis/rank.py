"""Rank and spectrum measures for learned weight matrices (e.g. an attention head's W_OV).

All functions work in float64 on a single 2-d matrix ``A`` of shape ``(m, n)`` (NumPy array, array-like
or Torch tensor, which is detached and moved to the CPU). Singular values are always sorted in
descending order ``σ_1 ≥ σ_2 ≥ … ≥ σ_p ≥ 0`` with ``p = min(m, n)``.

Definitions used throughout (and tested against closed forms):

* **energy rank** at level ``τ ∈ (0, 1]``: the smallest ``k`` with
  ``Σ_{i≤k} σ_i² ≥ τ · Σ_i σ_i²`` — the number of singular directions that carry a fraction ``τ`` of
  the squared Frobenius norm ``‖A‖_F² = Σ σ_i²``. Scale-free; 0 for the zero matrix.
* **effective rank** (Roy & Vetterli, "The effective rank: a measure of effective dimensionality",
  EUSIPCO 2007): ``erank(A) = exp(H(p))`` with ``p_i = σ_i / Σ_j σ_j`` and Shannon entropy
  ``H(p) = -Σ p_i log p_i`` (natural log, ``0 log 0 = 0``). It equals ``k`` for ``k`` equal non-zero
  singular values and lies in ``[1, rank(A)]``; 0 for the zero matrix.
* **stable rank**: ``‖A‖_F² / ‖A‖_2² = Σ σ_i² / σ_1²``.
* **nuclear norm**: ``‖A‖_* = Σ σ_i``.

Measurement caveat for nuclear norms. The raw nuclear norm is *not* a fair
comparison between two parameterisations of the same map (e.g. a factorized ``W_O W_V`` against a
single ``W_OV``): Adam grows the factorized model's scale, so its raw ``‖W_OV‖_*`` can come out larger
even when it is the lower-rank solution. Compare nuclear norms only at a fixed margin
(:func:`nuclear_norm` with ``margin=``), or use the scale-free measures above, or
:func:`normalized_nuclear_norm` ``‖A‖_* / ‖A‖_F``, which lies in ``[1, √rank(A)]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: Relative slack on the energy threshold so that a spectrum whose cumulative energy hits
#: ``τ·total`` exactly is not pushed one rank higher by SVD round-off (~1e-16 relative).
ENERGY_RTOL = 1e-10


def as_matrix(name: str, matrix: Any) -> np.ndarray:
    """``matrix`` as a finite float64 2-d NumPy array; Torch tensors are detached and copied to the CPU.

    Raises:
        TypeError: not numeric (strings, objects, complex, bool).
        ValueError: not 2-d, empty, or containing NaN/Inf.
    """
    if hasattr(matrix, "detach") and hasattr(matrix, "cpu"):
        matrix = matrix.detach().cpu().numpy()
    if isinstance(matrix, (str, bytes)) or matrix is None:
        raise TypeError(f"{name}: expected a real 2-d matrix (m, n), got {type(matrix).__name__}")
    arr = np.asarray(matrix)
    if arr.dtype == object or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real (float or integer) matrix, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d matrix of shape (m, n), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty matrix, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf; every entry must be finite")
    return arr


def as_spectrum(name: str, singular_values: Any) -> np.ndarray:
    """Validate singular values: 1-d, finite, non-negative; returned sorted descending in float64."""
    arr = np.asarray(singular_values)
    if arr.dtype == object or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real singular values, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array of singular values, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: singular values must be finite and non-negative")
    return np.sort(arr)[::-1]


def _check_energy(energy: Any) -> float:
    if isinstance(energy, bool) or not isinstance(energy, (int, float, np.floating, np.integer)):
        raise TypeError(f"energy: expected a float in (0, 1], got {type(energy).__name__}")
    value = float(energy)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"energy: expected a fraction in (0, 1], got {value}")
    return value


def singular_spectrum(matrix: Any) -> np.ndarray:
    """Singular values of ``A`` (shape ``(m, n)``), descending, shape ``(min(m, n),)``, float64."""
    return np.linalg.svd(as_matrix("matrix", matrix), compute_uv=False)


def normalized_spectrum(matrix: Any) -> np.ndarray:
    """``σ_i / σ_1`` — the spectrum with its scale removed (all zeros for the zero matrix)."""
    sigma = singular_spectrum(matrix)
    return sigma / sigma[0] if sigma[0] > 0 else sigma


def energy_rank_of_spectrum(singular_values: Any, energy: float = 0.99) -> int:
    """Energy rank ``min{k : Σ_{i≤k} σ_i² ≥ energy · Σ_i σ_i²}`` of a given spectrum (0 if all σ = 0).

    The threshold is applied with a relative slack of :data:`ENERGY_RTOL` so round-off in the SVD
    cannot raise the rank of a spectrum that meets the threshold exactly.
    """
    sigma = as_spectrum("singular_values", singular_values)
    level = _check_energy(energy)
    squares = sigma**2
    total = float(squares.sum())
    if total == 0.0:
        return 0
    cumulative = np.cumsum(squares)
    target = level * total * (1.0 - ENERGY_RTOL)
    position = int(np.searchsorted(cumulative, target, side="left"))
    return min(position + 1, int(sigma.size))


def energy_rank(matrix: Any, energy: float = 0.99) -> int:
    """Smallest ``k`` whose top-``k`` singular directions hold ``energy`` of ``‖A‖_F²`` (see module doc)."""
    return energy_rank_of_spectrum(singular_spectrum(matrix), energy)


def energy_ranks(matrix: Any, energies: Iterable[float] = (0.9, 0.99)) -> dict[str, int]:
    """Energy ranks at several levels, keyed by the level as text (``{"0.9": k90, "0.99": k99}``)."""
    sigma = singular_spectrum(matrix)
    return {str(float(level)): energy_rank_of_spectrum(sigma, level) for level in energies}


def effective_rank_of_spectrum(singular_values: Any) -> float:
    """Roy–Vetterli effective rank ``exp(-Σ p_i log p_i)``, ``p_i = σ_i / Σ σ_j`` (0 if all σ = 0)."""
    sigma = as_spectrum("singular_values", singular_values)
    total = float(sigma.sum())
    if total == 0.0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def effective_rank(matrix: Any) -> float:
    """Roy–Vetterli effective rank of ``A`` (see module docstring); in ``[1, rank(A)]`` for ``A ≠ 0``."""
    return effective_rank_of_spectrum(singular_spectrum(matrix))


def stable_rank(matrix: Any) -> float:
    """Stable rank ``‖A‖_F² / ‖A‖_2²`` (0 for the zero matrix); in ``[1, rank(A)]`` otherwise."""
    sigma = singular_spectrum(matrix)
    return float(np.sum(sigma**2) / sigma[0] ** 2) if sigma[0] > 0 else 0.0


def nuclear_norm(matrix: Any, *, margin: float | None = None) -> float:
    """``‖A‖_* = Σ σ_i``, or ``‖A‖_* / margin`` when ``margin`` is given.

    The second form is the nuclear norm of ``A`` rescaled to unit margin. It is the fair quantity for
    comparing two trained models only when the model's margin is positively homogeneous of degree 1 in
    ``A`` (it is for the logits of a model linear in ``A`` with everything else held fixed). The raw
    norm is scale-dependent: see the caveat in the module docstring.

    Raises:
        ValueError: ``margin`` is not a positive finite number (a model that does not separate its
            training data has no unit-margin rescaling).
    """
    sigma = singular_spectrum(matrix)
    value = float(sigma.sum())
    if margin is None:
        return value
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating, np.integer)):
        raise TypeError(f"margin: expected a positive float, got {type(margin).__name__}")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a positive finite margin, got {margin}")
    return value / float(margin)


def normalized_nuclear_norm(matrix: Any) -> float:
    """Scale-free ``‖A‖_* / ‖A‖_F`` in ``[1, √rank(A)]`` (0 for the zero matrix)."""
    sigma = singular_spectrum(matrix)
    frobenius = float(np.sqrt(np.sum(sigma**2)))
    return float(sigma.sum()) / frobenius if frobenius > 0 else 0.0


def _svd(matrix: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, sigma, vt = np.linalg.svd(as_matrix("matrix", matrix), full_matrices=False)
    return u, sigma, vt


def _check_components(components: Any, count: int) -> list[int]:
    if isinstance(components, (int, np.integer)) and not isinstance(components, bool):
        components = [components]
    if not isinstance(components, Sequence) and not isinstance(components, np.ndarray):
        raise TypeError(f"components: expected an int or a sequence of ints, got {type(components).__name__}")
    indices: list[int] = []
    for index in components:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"components: expected integer indices, got {type(index).__name__}")
        if not 0 <= int(index) < count:
            raise ValueError(f"components: index {int(index)} out of range [0, min(m, n) = {count})")
        indices.append(int(index))
    return sorted(set(indices))


def svd_component(matrix: Any, index: int) -> np.ndarray:
    """The rank-1 term ``σ_i u_i v_iᵀ`` of the SVD of ``A`` (0-based ``index``, descending order)."""
    u, sigma, vt = _svd(matrix)
    (i,) = _check_components(index, sigma.size)
    return sigma[i] * np.outer(u[:, i], vt[i])


def ablate_svd_components(matrix: Any, components: int | Sequence[int]) -> np.ndarray:
    """``A − Σ_{i∈components} σ_i u_i v_iᵀ``: ``A`` with the chosen singular directions removed.

    ``components`` are 0-based indices into the descending spectrum. Ablating every component returns
    (numerically) the zero matrix; ablating none returns ``A``. Shape ``(m, n)``, float64.
    """
    u, sigma, vt = _svd(matrix)
    keep = np.ones(sigma.size, dtype=bool)
    keep[_check_components(components, sigma.size)] = False
    return (u[:, keep] * sigma[keep]) @ vt[keep]


def truncate_to_rank(matrix: Any, rank: int) -> np.ndarray:
    """Best rank-``k`` approximation ``Σ_{i<k} σ_i u_i v_iᵀ`` (Eckart–Young), shape ``(m, n)``."""
    u, sigma, vt = _svd(matrix)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise TypeError(f"rank: expected an int, got {type(rank).__name__}")
    if not 0 <= rank <= sigma.size:
        raise ValueError(f"rank: expected 0 <= rank <= min(m, n) = {sigma.size}, got {rank}")
    return (u[:, :rank] * sigma[:rank]) @ vt[:rank]


def rank_summary(matrix: Any, energies: Iterable[float] = (0.9, 0.99)) -> dict[str, Any]:
    """JSON-ready summary: spectrum, energy ranks, effective/stable rank, raw and normalised nuclear norm."""
    sigma = singular_spectrum(matrix)
    frobenius = float(np.sqrt(np.sum(sigma**2)))
    return {
        "singular_values": sigma.tolist(),
        "energy_rank": {str(float(level)): energy_rank_of_spectrum(sigma, level) for level in energies},
        "effective_rank": effective_rank_of_spectrum(sigma),
        "stable_rank": float(np.sum(sigma**2) / sigma[0] ** 2) if sigma[0] > 0 else 0.0,
        "nuclear_norm_raw": float(sigma.sum()),
        "normalized_nuclear_norm": float(sigma.sum()) / frobenius if frobenius > 0 else 0.0,
        "frobenius_norm": frobenius,
    }


__all__ = [
    "ENERGY_RTOL",
    "ablate_svd_components",
    "as_matrix",
    "as_spectrum",
    "effective_rank",
    "effective_rank_of_spectrum",
    "energy_rank",
    "energy_rank_of_spectrum",
    "energy_ranks",
    "normalized_nuclear_norm",
    "normalized_spectrum",
    "nuclear_norm",
    "rank_summary",
    "singular_spectrum",
    "stable_rank",
    "svd_component",
    "truncate_to_rank",
]
