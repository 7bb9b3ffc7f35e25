"""KQ and OV pattern extraction for one-layer query-only attention (He et al. 2025, ICML).

For the in-context regression toy the trained heads show, per head ``h``:

* ``KQ_h`` (the ``D×D`` score matrix, ``D = d + 1``) is diagonal and homogeneous on the ``d×d``
  covariate block: ``KQ_h[:d, :d] ≈ ω_h √D · I_d`` (``ω_h`` is the effective score scale after the
  ``1/√D`` of the attention logits);
* ``OV_h = O_h V_h`` (a ``D``-vector) is last-entry-only: ``OV_h ≈ μ_h e_D`` — the head reads only
  the label coordinate;
* across heads ``Σ_h μ_h ≈ 0`` (zero sum), with ``H = 2`` pairing as ``(+ω, +μ), (−ω, −μ)``.

Expanding the softmax to first order in ``ω`` gives the prediction
``(Σ_h μ_h) ȳ + (Σ_h μ_h ω_h) · (1/L) Σ_ℓ y_ℓ (x_ℓ − x̄)ᵀ x_q``: a debiased gradient-descent step with
implied step size ``η = Σ_h μ_h ω_h`` (``2μω`` for the ``H = 2`` pair), once the zero-sum kills ȳ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class HeadPatterns:
    """Measured KQ/OV pattern statistics of one trained layer (lists are per head).

    Attributes:
        omega: mean diagonal of the covariate block of ``KQ_h`` divided by ``√D`` (score scale ``ω_h``).
        mu: last entry of ``OV_h`` (``μ_h``).
        kq_offdiag_ratio: ``max |off-diagonal| / mean |diagonal|`` of the covariate block of ``KQ_h``.
        kq_diag_spread: ``std(diagonal) / mean |diagonal|`` of the covariate block (homogeneity).
        ov_last_ratio: ``|μ_h| / max_{i<D} |OV_h[i]|`` (how strongly the head reads only the label).
        zero_sum_ratio: ``|Σ_h μ_h| / max_h |μ_h|``.
        implied_eta: ``Σ_h μ_h ω_h``, the step size of the debiased GD step the layer implements.
        active_heads: heads whose ``|μ_h ω_h|`` is at least 10% of the largest (the others are dummies).
    """

    omega: list[float]
    mu: list[float]
    kq_offdiag_ratio: list[float]
    kq_diag_spread: list[float]
    ov_last_ratio: list[float]
    zero_sum_ratio: float
    implied_eta: float
    active_heads: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_float_array(name: str, value: ArrayLike, ndim: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def extract_patterns(kq: ArrayLike, ov: ArrayLike, *, covariate_dims: int) -> HeadPatterns:
    """Summarise per-head ``KQ`` ``(H, D, D)`` and ``OV`` ``(H, D)`` into :class:`HeadPatterns`.

    ``covariate_dims`` is ``d``: the first ``d`` token coordinates are covariates, the last one the
    label. ``KQ_h[i, j]`` multiplies context coordinate ``i`` and query coordinate ``j``.
    """
    kq_arr = _as_float_array("kq", kq, 3)
    ov_arr = _as_float_array("ov", ov, 2)
    heads, width, width_q = kq_arr.shape
    if width != width_q or ov_arr.shape != (heads, width):
        raise ValueError(f"kq must be (H, D, D) and ov (H, D); got {kq_arr.shape} and {ov_arr.shape}")
    if not 1 <= covariate_dims < width:
        raise ValueError(f"covariate_dims must lie in [1, {width - 1}], got {covariate_dims}")
    d = covariate_dims
    tiny = np.finfo(np.float64).tiny
    block = kq_arr[:, :d, :d]
    diagonal = np.diagonal(block, axis1=1, axis2=2)
    mean_abs_diag = np.abs(diagonal).mean(axis=1)
    off = block * (1.0 - np.eye(d))
    offdiag = np.abs(off).max(axis=(1, 2)) if d > 1 else np.zeros(heads)
    offdiag_ratio = offdiag / np.maximum(mean_abs_diag, tiny)
    omega = diagonal.mean(axis=1) / math.sqrt(width)
    mu = ov_arr[:, -1]
    ov_ratio = np.abs(mu) / np.maximum(np.abs(ov_arr[:, :-1]).max(axis=1), tiny)
    strength = np.abs(mu * omega)
    active = [int(h) for h in np.flatnonzero(strength >= 0.1 * strength.max())] if strength.max() > 0 else []
    return HeadPatterns(
        omega=omega.tolist(),
        mu=mu.tolist(),
        kq_offdiag_ratio=offdiag_ratio.tolist(),
        kq_diag_spread=(diagonal.std(axis=1) / np.maximum(mean_abs_diag, tiny)).tolist(),
        ov_last_ratio=ov_ratio.tolist(),
        zero_sum_ratio=float(abs(mu.sum()) / max(np.abs(mu).max(), tiny)),
        implied_eta=float((mu * omega).sum()),
        active_heads=active,
    )


def debiased_gd_weights(omega: float, mu: float, *, covariate_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The ideal two-head ``(KQ, OV)`` pair ``(+ω, +μ), (−ω, −μ)`` in the layout of :func:`extract_patterns`.

    Useful as a known-answer input: its patterns are exactly diagonal, last-entry-only, zero-sum,
    with implied step size ``2μω``.
    """
    width = covariate_dims + 1
    kq = np.zeros((2, width, width))
    kq[0, :covariate_dims, :covariate_dims] = omega * math.sqrt(width) * np.eye(covariate_dims)
    kq[1] = -kq[0]
    ov = np.zeros((2, width))
    ov[0, -1], ov[1, -1] = mu, -mu
    return kq, ov
