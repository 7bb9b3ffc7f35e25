"""Composition scores between attention heads, per SVD component, with random baselines.

Row-vector convention throughout (a residual vector ``x`` is a row, a head maps it to ``x @ W``):

* ``OV = W_V @ W_O`` (d_model x d_model) is what a head writes given what it reads;
* ``QK = W_Q @ W_K.T`` (d_model x d_model) is the bilinear form ``score = x_q @ QK @ x_k.T``.

The composition score of Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits",
as TransformerLens computes it, is

    CS(left, right) = ||left @ right||_F / (||left||_F * ||right||_F)        in [0, 1],

with ``left`` the earlier head's OV and ``right`` the later head's QK (Q-composition), QK.T
(K-composition) or OV (V-composition).

Merullo, Eickhoff & Pavlick (2024), "Talking Heads" (arXiv:2406.09519), decompose the earlier head's
OV by its SVD, ``OV = sum_i s_i u_i v_i^T``, and score each rank-1 component separately. The
singular value cancels, so ``CS_i = ||v_i^T @ right||_2 / ||right||_F``: only the direction ``v_i``
the component writes into the residual stream matters. A uniformly random unit direction gives
``E[CS^2] = 1/d_model``, i.e. a baseline of about ``1/sqrt(d_model)``; :func:`random_direction_baseline`
estimates it by Monte Carlo for the given ``right`` matrix.

Ablating a component means projecting its write direction ``v_i`` out of the head's output
(:func:`project_out`); since the ``v_i`` are orthonormal this removes exactly that component.
What a channel encodes is measured by :func:`variance_explained_by_groups` (eta squared of the
channel coordinates grouped by a prompt label, e.g. the position or identity of the missing item).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

CompositionKind = Literal["q", "k", "v"]

ArrayT = TypeVar("ArrayT")


def _as_matrix(name: str, x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.ndim < 2:
        raise TypeError(
            f"{name}: expected a real matrix of shape (..., d_in, d_out), got {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite entries")
    return arr


def composition_score(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``||left @ right||_F / (||left||_F ||right||_F)``, batched over leading axes.

    Args:
        left: ``(..., d, d)`` earlier head's OV.
        right: ``(..., d, d)`` later head's QK, QK.T or OV.

    Returns:
        Array of shape ``broadcast(...)`` with values in ``[0, 1]`` (0 where a factor is zero).
    """
    left = _as_matrix("left", left)
    right = _as_matrix("right", right)
    if left.shape[-1] != right.shape[-2]:
        raise ValueError(
            f"right: expected shape (..., {left.shape[-1]}, d) matching left's last axis, got {right.shape}"
        )
    numerator = np.linalg.norm(left @ right, axis=(-2, -1))
    denominator = np.linalg.norm(left, axis=(-2, -1)) * np.linalg.norm(right, axis=(-2, -1))
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def composition_right(kind: CompositionKind, later_qk: np.ndarray, later_ov: np.ndarray) -> np.ndarray:
    """The right-hand matrix for Q-, K- or V-composition (QK, QK.T or OV of the later head)."""
    if kind == "q":
        return np.asarray(later_qk, dtype=np.float64)
    if kind == "k":
        return np.swapaxes(np.asarray(later_qk, dtype=np.float64), -1, -2)
    if kind == "v":
        return np.asarray(later_ov, dtype=np.float64)
    raise ValueError(f"kind: expected 'q', 'k' or 'v', got {kind!r}")


@dataclass(frozen=True)
class SVDComponents:
    """``matrix = sum_i singular_values[i] * outer(read[i], write[i])`` (rank-1 components, descending).

    ``read[i]`` (a row) is the residual direction the component reads, ``write[i]`` the direction it
    writes; both sets are orthonormal.
    """

    singular_values: np.ndarray
    read: np.ndarray
    write: np.ndarray

    def component(self, index: int) -> np.ndarray:
        """The rank-1 matrix ``s_i u_i v_i^T``."""
        return self.singular_values[index] * np.outer(self.read[index], self.write[index])


def svd_components(matrix: np.ndarray, rank: int | None = None) -> SVDComponents:
    """SVD of a ``(d, d)`` matrix, keeping the top ``rank`` components (all non-trivial ones by default)."""
    matrix = _as_matrix("matrix", matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix: expected shape (d_in, d_out), got {matrix.shape}")
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    if rank is None:
        rank = int(np.sum(s > s[0] * 1e-10)) if s.size and s[0] > 0 else 0
    if not 0 <= rank <= s.size:
        raise ValueError(f"rank: expected an integer in [0, {s.size}], got {rank}")
    return SVDComponents(singular_values=s[:rank], read=u[:, :rank].T.copy(), write=vh[:rank].copy())


def direction_composition_scores(directions: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``||v @ right|| / (||v|| ||right||_F)`` for each row ``v`` of ``directions`` ``(m, d)``.

    This is the composition score of any rank-1 matrix ``u v^T`` with ``right`` (``u`` cancels).
    """
    directions = _as_matrix("directions", directions)
    right = _as_matrix("right", right)
    if directions.ndim != 2 or right.ndim != 2 or directions.shape[1] != right.shape[0]:
        raise ValueError(
            f"directions: expected shape (m, {right.shape[0]}) for right of shape {right.shape}, "
            f"got {directions.shape}"
        )
    right_norm = np.linalg.norm(right)
    norms = np.linalg.norm(directions, axis=1) * right_norm
    projected = np.linalg.norm(directions @ right, axis=1)
    return np.divide(projected, norms, out=np.zeros_like(projected), where=norms > 0)


def component_composition_scores(left: np.ndarray, right: np.ndarray, rank: int | None = None) -> np.ndarray:
    """Composition score of each rank-1 SVD component of ``left`` with ``right``, shape ``(rank,)``.

    Equal to ``composition_score(s_i u_i v_i^T, right)`` for each component ``i`` (descending ``s_i``).
    """
    parts = svd_components(left, rank)
    return direction_composition_scores(parts.write, right)


@dataclass(frozen=True)
class Baseline:
    """Mean and standard deviation of a score under a random null, and the sample count."""

    mean: float
    std: float
    samples: int


def random_direction_baseline(right: np.ndarray, *, samples: int = 2000, seed: int = 0) -> Baseline:
    """Per-component composition score of uniformly random unit directions with ``right``.

    For any ``right`` the mean square is exactly ``1/d``; the mean is close to ``1/sqrt(d)``.
    """
    right = _as_matrix("right", right)
    if samples < 2:
        raise ValueError(f"samples: expected at least 2, got {samples}")
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((samples, right.shape[0]))
    scores = direction_composition_scores(directions, right)
    return Baseline(float(scores.mean()), float(scores.std(ddof=1)), samples)


def random_matrix_baseline(
    right: np.ndarray, *, rank: int, samples: int = 500, seed: int = 0
) -> Baseline:
    """Full composition score of random Gaussian rank-``rank`` matrices ``A @ B`` with ``right``.

    The null for :func:`composition_score` of a whole head whose OV has rank ``d_head``.
    """
    right = _as_matrix("right", right)
    d = right.shape[0]
    if not 1 <= rank <= d:
        raise ValueError(f"rank: expected an integer in [1, {d}], got {rank}")
    rng = np.random.default_rng(seed)
    lefts = rng.standard_normal((samples, d, rank)) @ rng.standard_normal((samples, rank, d))
    scores = composition_score(lefts, right)
    return Baseline(float(scores.mean()), float(scores.std(ddof=1)), samples)


def orthonormal_basis(directions: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the rows of ``directions`` ``(k, d)`` (QR; k <= d)."""
    directions = _as_matrix("directions", directions)
    if directions.ndim != 2 or directions.shape[0] > directions.shape[1]:
        raise ValueError(f"directions: expected shape (k, d) with k <= d, got {directions.shape}")
    q, r = np.linalg.qr(directions.T)
    if np.any(np.abs(np.diag(r)) < 1e-12 * max(1.0, float(np.abs(r).max()))):
        raise ValueError("directions: expected linearly independent rows")
    return q.T.copy()


def project_out(vectors: ArrayT, basis: ArrayT) -> ArrayT:
    """Remove the span of the orthonormal rows of ``basis`` ``(k, d)`` from ``vectors`` ``(..., d)``.

    Works for NumPy arrays and Torch tensors alike (``x - (x @ B^T) @ B``); this is the ablation of
    the SVD components whose write directions are the rows of ``basis``.
    """
    return vectors - (vectors @ basis.T) @ basis  # type: ignore[attr-defined]


def project_onto(vectors: ArrayT, basis: ArrayT) -> ArrayT:
    """The component of ``vectors`` ``(..., d)`` in the span of the orthonormal rows of ``basis``."""
    return (vectors @ basis.T) @ basis  # type: ignore[attr-defined]


def _centred(values: np.ndarray) -> tuple[np.ndarray, float]:
    """``values`` minus their column means, and the total sum of squares."""
    centred = values - values.mean(axis=0)
    return centred, float(np.sum(centred**2))


def variance_explained_by_groups(values: np.ndarray, groups: np.ndarray) -> float:
    """Fraction of the total variance of ``values`` ``(m, k)`` explained by group means (eta squared).

    ``sum_g m_g ||mean_g - mean||^2 / sum_i ||x_i - mean||^2`` for the groups given by the labels
    ``groups`` ``(m,)``. With ``G`` groups and labels independent of the values its expectation is about
    ``(G - 1) / (m - 1)``, the chance level to compare against.
    """
    values = _as_matrix("values", values)
    labels = np.asarray(groups)
    if values.ndim != 2 or labels.shape != (values.shape[0],):
        raise ValueError(
            f"groups: expected shape ({values.shape[0]},) matching values (m, k), got {labels.shape}"
        )
    centred, total = _centred(values)
    if total == 0.0:
        return 0.0
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((counts.size, values.shape[1]))
    np.add.at(sums, inverse.reshape(-1), centred)
    between = float(np.sum(sums**2 / counts[:, None]))
    return between / total


def variance_explained_linearly(values: np.ndarray, features: np.ndarray) -> float:
    """Fraction of the total variance of ``values`` ``(m, k)`` explained by a least-squares affine map of
    ``features`` ``(m, p)`` (the multivariate R squared).

    The continuous counterpart of :func:`variance_explained_by_groups`, for labels that are vectors
    (e.g. a fresh random item per prompt). With features independent of the values its expectation is
    about ``p / (m - 1)``.
    """
    values = _as_matrix("values", values)
    features = _as_matrix("features", features)
    if values.ndim != 2 or features.ndim != 2 or features.shape[0] != values.shape[0]:
        raise ValueError(
            f"features: expected shape ({values.shape[0]}, p) matching values (m, k), got {features.shape}"
        )
    centred, total = _centred(values)
    if total == 0.0:
        return 0.0
    design = features - features.mean(axis=0)
    coefficients, *_ = np.linalg.lstsq(design, centred, rcond=None)
    return float(np.sum((design @ coefficients) ** 2)) / total
