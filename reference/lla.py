"""Local Linear Attention (LLA): each query's output is the intercept of a kernel-weighted local affine fit.

Source: Zuo, Yin, Zeng, Li, Zhu & Wang 2025, "Local Linear Attention: An Optimal Interpolation of Linear and
Softmax Attention For Test-Time Regression" (arXiv 2510.01450). For query ``q_i`` LLA fits the affine model
``v ≈ b + W(k − q_i)`` to the visible key–value pairs with kernel weights ``w_ij`` and a ridge penalty,

    min_{b, W}  ½ Σ_j w_ij ‖v_j − b − W(k_j − q_i)‖² + λ ‖W‖_F²,        o_i = b̂_i,

with the softmax kernel ``w_ij = exp(σ q_i·k_j)`` (as softmax attention, the local-constant fit). Solving
the normal equations gives, with ``a_ij = w_ij / Σ_j w_ij``,

    μ_i = Σ_j a_ij k_j,   Σ_i = Σ_j a_ij (k_j − μ_i)(k_j − μ_i)ᵀ,   r_i = (Σ_i + λ'_i I)⁻¹ (q_i − μ_i),
    o_i = Σ_j a_ij [1 + (k_j − μ_i)·r_i] v_j  =  v̄_i + Cov_i(v, k) r_i,

where the objective as written gives ``λ'_i = 2λ / Σ_j w_ij`` (the penalty acts on un-normalised weights).
``lam_convention="normalised"`` (the default) takes ``λ' = lam`` directly, one ridge on the normalised
covariance for every query, which keeps the operator invariant to a row shift of the logits;
``lam_convention="objective"`` is the objective as written. ``lam = 0`` is the unregularised fit, taken as
the pseudo-inverse (minimum-norm ``W``) limit ``λ' → 0⁺`` where ``Σ_i`` is singular.

``λ' → ∞`` gives softmax attention; a flat kernel (``scale → 0``) gives global affine ridge regression.
The weights ``a_ij [1 + (k_j − μ_i)·r_i]`` sum to 1 but can be negative. No code was released with the
paper; the kernel and the λ convention are attnlab's reading of the objective.

Two evaluations: :func:`lla_attention_parallel` (per query, centred moments from explicit differences) and
:func:`lla_attention_blocked` (key blocks streamed into per-query centred moments with an online max and
pairwise merges, then one solve; resumable).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from attnlab.reference._core import masked_logsumexp, masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    check_last_dim,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    overflow_checked,
)

LAM_CONVENTIONS = ("normalised", "objective")
#: Eigenvalues below this fraction of the largest count as zero in the ``λ' = 0`` pseudo-inverse.
PINV_RTOL = 1e-10
#: Largest effective ridge used (``λ' = ∞`` would give NaN; at this size ``r`` is 0 to double precision).
MAX_RIDGE = 1e250


def check_lam(lam: Any, convention: Any) -> tuple[float, str]:
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (int, float, np.number)):
        raise TypeError(f"lam: expected a non-negative float, got {type(lam).__name__}")
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam: expected a non-negative finite float, got {lam!r}")
    if convention not in LAM_CONVENTIONS:
        raise ValueError(f"lam_convention: expected one of {LAM_CONVENTIONS}, got {convention!r}")
    return float(lam), str(convention)


def fit_correction(cov: np.ndarray, cross: np.ndarray, rhs: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """``C (Σ + λ' I)⁻¹ x`` per row; where ``λ'`` is 0, or below ``PINV_RTOL`` of the system's size, the
    pseudo-inverse of ``Σ`` (PSD) is used: that is the ``λ' → 0⁺`` limit, and a negligible ridge would only
    turn rounding in ``C``'s null directions into huge terms.

    Each system is divided by its own size ``s = tr Σ + d λ'`` first, so the product stays exact when the
    weights concentrate and ``Σ`` and ``C`` are both tiny (``(C/s)(M)⁻¹ x`` with ``M = (Σ + λ'I)/s``).
    """
    d = cov.shape[-1]
    ridge = np.minimum(ridge, min(MAX_RIDGE, float(np.finfo(cov.dtype).max) ** 0.5))
    size = np.trace(cov, axis1=-2, axis2=-1)[..., None] + d * ridge
    size = np.where(size > 0, size, 1.0)
    system = cov / size[..., None] + (ridge / size)[..., None] * np.eye(d, dtype=cov.dtype)
    coords = np.zeros_like(rhs)
    regular = (ridge / size)[..., 0] > PINV_RTOL
    if np.any(regular):
        coords[regular] = np.linalg.solve(system[regular], rhs[regular][..., None])[..., 0]
    if np.any(~regular):
        vals, vecs = np.linalg.eigh(system[~regular])
        keep = vals > PINV_RTOL * np.maximum(vals[..., -1:], 0.0)
        inv = np.where(keep, 1.0 / np.where(keep, vals, 1.0), 0.0)
        along = np.einsum("...dk,...d->...k", vecs, rhs[~regular])
        coords[~regular] = np.einsum("...dk,...k->...d", vecs, inv * along)
    return np.einsum("...cd,...d->...c", cross / size[..., None], coords)


def effective_ridge(lam: float, convention: str, lse: np.ndarray) -> np.ndarray:
    """``λ'_i``: ``lam`` itself, or ``2λ / Σ_j w_ij = 2λ e^{−lse_i}`` for the objective as written."""
    if convention == "normalised":
        return np.full((*lse.shape, 1), lam, dtype=lse.dtype)
    finite = np.isfinite(lse)
    ceiling = math.log(min(MAX_RIDGE, float(np.finfo(lse.dtype).max) ** 0.5))  # e^{−lse} past it is "infinite"
    ridge = 2.0 * lam * np.exp(np.minimum(-np.where(finite, lse, 0.0), ceiling))
    return np.where(finite, ridge, 1.0).astype(lse.dtype)[..., None]


#: Query rows per chunk are chosen so that one chunk's ``(rows, m, d)`` key differences stay this small.
CHUNK_ELEMENTS = 1 << 22


def local_moments(
    a: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Σ_i = Σ_j a_ij (k_j − μ_i)(k_j − μ_i)ᵀ``, ``C_i = Σ_j a_ij v_j (k_j − μ_i)ᵀ`` and ``q_i − μ_i``, a chunk of
    queries at a time, from the differences themselves.

    Each row is taken relative to its heaviest key ``k_{j*}``: ``μ_i − k_{j*} = Σ_j a_ij (k_j − k_{j*})`` has no
    cancellation, so ``k_{j*} − μ_i`` stays exact even when the weights are nearly one-hot (where it is tiny and
    its rounding would otherwise decide ``C_i``). Raw moments (``Σ a k kᵀ − μ μᵀ``) would cancel there too.
    """
    n, m, d = a.shape[-2], k.shape[-2], k.shape[-1]
    lead = int(np.prod(a.shape[:-2], dtype=np.int64))
    rows = max(1, CHUNK_ELEMENTS // max(1, lead * m * d))
    cov = np.empty((*a.shape[:-1], d, d), dtype=a.dtype)
    cross = np.empty((*a.shape[:-1], v.shape[-1], d), dtype=a.dtype)
    offset = np.empty(q.shape, dtype=a.dtype)
    heaviest = np.argmax(a, axis=-1)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        anchor = np.take_along_axis(k, heaviest[..., start:stop, None], axis=-2)  # (..., rows, d)
        rel = k[..., None, :, :] - anchor[..., :, None, :]
        weights = a[..., start:stop, :, None]
        shift = np.sum(weights * rel, axis=-2)  # μ_i − k_{j*}
        diff = rel - shift[..., :, None, :]
        cov[..., start:stop, :, :] = np.swapaxes(weights * diff, -1, -2) @ diff
        cross[..., start:stop, :, :] = np.swapaxes(weights * v[..., None, :, :], -1, -2) @ diff
        offset[..., start:stop, :] = (q[..., start:stop, :] - anchor) - shift
    return 0.5 * (cov + np.swapaxes(cov, -1, -2)), cross, offset


def local_fit(a: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """``o_i = v̄_i + C_i (Σ_i + λ'_i I)⁻¹ (q_i − μ_i)``, the intercept of each query's local affine fit.

    This is the weights form ``Σ_j a_ij [1 + (k_j − μ_i)·r_i] v_j`` summed in another order: where a query lies
    far outside its keys' spread the equivalent weights are large and of both signs, and summing them would
    lose what this form keeps.
    """
    cov, cross, offset = local_moments(a, k, v, q)
    return a @ v + fit_correction(cov, cross, offset, ridge)


def _prepare(q: Any, k: Any, v: Any, scale: Any, causal: Any, mask: Any, lam: Any, lam_convention: Any):
    q = as_float_array("q", q)
    k = as_float_array("k", k)
    v = as_float_array("v", v)
    check_last_dim("k", k, q.shape[-1], "d_k, the last axis of q")
    q, k, v = expand_kv_heads(q, k, v)
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    lam, convention = check_lam(lam, lam_convention)
    n, m = q.shape[-2], k.shape[-2]
    allowed = np.broadcast_to(
        allowed_positions(n, m, causal=causal, mask=mask, lead=q.shape[:-2]), (*q.shape[:-2], n, m)
    )
    return q, k, v, sigma, lam, convention, allowed


def lla_attention_parallel(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
) -> np.ndarray:
    """The per-query form ``o_i = v̄_i + C_i (Σ_i + λ'_i I)⁻¹ (q_i − μ_i)`` (see :func:`lla_attention`)."""
    q, k, v, sigma, lam, convention, allowed = _prepare(q, k, v, scale, causal, mask, lam, lam_convention)
    logits = sigma * (q @ np.swapaxes(k, -1, -2))
    a = masked_softmax(logits, allowed)
    ridge = effective_ridge(lam, convention, masked_logsumexp(logits, allowed))
    return local_fit(a, k, v, q, ridge)


class LLAState(NamedTuple):
    """Per-query weighted moments of the keys streamed so far (weights ``e^{s − peak}``).

    ``peak (..., n)`` the running max logit; ``total (..., n)`` ``W = Σ_j e^{s_j − peak}``; ``offset (..., n, d)``
    ``q − μ``; ``spread (..., n, d, d)`` ``Σ_j w_j (k_j − μ)(k_j − μ)ᵀ``; ``v_mean (..., n, d_v)`` ``v̄``;
    ``cross (..., n, d_v, d)`` ``Σ_j w_j v_j (k_j − μ)ᵀ``. Centred moments merge exactly (Chan, Golub &
    LeVeque's pairwise update), so streaming loses nothing the per-query form keeps.
    """

    peak: np.ndarray
    total: np.ndarray
    offset: np.ndarray
    spread: np.ndarray
    v_mean: np.ndarray
    cross: np.ndarray


def _empty_state(q: np.ndarray, v: np.ndarray) -> LLAState:
    lead, n, d, dv = q.shape[:-2], q.shape[-2], q.shape[-1], v.shape[-1]

    def zeros(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=q.dtype)

    return LLAState(
        np.full((*lead, n), -np.inf, dtype=q.dtype),
        zeros((*lead, n)),
        q.copy(),
        zeros((*lead, n, d, d)),
        zeros((*lead, n, dv)),
        zeros((*lead, n, dv, d)),
    )


def rescale(state: LLAState, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weight-carrying moments ``(W, Σ, C)`` of ``state`` multiplied by ``factor`` (moving them to a new
    reference max; the means do not carry weight)."""
    return factor * state.total, factor[..., None, None] * state.spread, factor[..., None, None] * state.cross


def advance_state(
    state: LLAState, logits: np.ndarray, allowed: np.ndarray, k: np.ndarray, v: np.ndarray, q: np.ndarray
) -> LLAState:
    """Fold one key block into the moments: rescale to the new running max, then merge the block's own
    centred moments (``δ = μ_b − μ``: ``spread += Σ_b + δδᵀ W W_b / (W + W_b)``, likewise ``cross``)."""
    masked = np.where(allowed, logits, -np.inf)
    peak = np.maximum(state.peak, np.max(masked, axis=-1))
    ref = np.where(np.isfinite(peak), peak, 0.0)
    old_total, old_spread, old_cross = rescale(state, np.where(np.isfinite(state.peak), np.exp(state.peak - ref), 0.0))
    w = np.where(allowed, np.exp(masked - ref[..., None]), 0.0)
    block_total = w.sum(-1)
    a = w / np.where(block_total > 0, block_total, 1.0)[..., None]
    cov, cross, offset = local_moments(a, k, v, q)
    total = old_total + block_total
    f = np.where(total > 0, block_total / np.where(total > 0, total, 1.0), 0.0)
    g = (old_total * f)[..., None, None]
    delta = state.offset - offset
    v_delta = a @ v - state.v_mean
    return LLAState(
        peak,
        total,
        state.offset - f[..., None] * delta,
        old_spread + block_total[..., None, None] * cov + g * (delta[..., :, None] * delta[..., None, :]),
        state.v_mean + f[..., None] * v_delta,
        old_cross + block_total[..., None, None] * cross + g * (v_delta[..., :, None] * delta[..., None, :]),
    )


def finish_state(state: LLAState, lam: float, convention: str) -> np.ndarray:
    """``o_i = v̄_i + C_i (Σ_i + λ'_i I)⁻¹ (q_i − μ_i)`` from the moments; rows with no key give 0."""
    seen = state.total > 0
    total = np.where(seen, state.total, 1.0)
    cov = state.spread / total[..., None, None]
    cross = state.cross / total[..., None, None]
    lse = np.where(seen, state.peak + np.log(total), -np.inf)  # total is 1 where unseen: no log(0)
    out = state.v_mean + fit_correction(
        0.5 * (cov + np.swapaxes(cov, -1, -2)), cross, state.offset, effective_ridge(lam, convention, lse)
    )
    return np.where(seen[..., None], out, 0.0)


def lla_attention_blocked(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
    block_size: int = 64,
    initial_state: LLAState | None = None,
    return_state: bool = False,
) -> Any:
    """The streaming form: key blocks of ``block_size`` folded into per-query moments, then one solve.

    ``initial_state`` continues a previous call over earlier keys with the same queries; pass each call's
    visibility of its own keys as ``mask`` (``causal`` aligns within the call). ``return_state=True`` returns
    ``(O, state)``; splitting the keys into consecutive calls equals one call over all of them.
    """
    block_size = check_positive_int("block_size", block_size)
    q, k, v, sigma, lam, convention, allowed = _prepare(q, k, v, scale, causal, mask, lam, lam_convention)
    state = _empty_state(q, v) if initial_state is None else LLAState(*(np.asarray(x) for x in initial_state))
    for start in range(0, k.shape[-2], block_size):
        stop = min(start + block_size, k.shape[-2])
        kb, vb = k[..., start:stop, :], v[..., start:stop, :]
        state = advance_state(state, sigma * (q @ np.swapaxes(kb, -1, -2)), allowed[..., start:stop], kb, vb, q)
    out = finish_state(state, lam, convention)
    return (out, state) if return_state else out


_FORMS = {"parallel": lla_attention_parallel, "blocked": lla_attention_blocked}


@overflow_checked
def lla_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    lam: float = 1.0,
    lam_convention: str = "normalised",
    form: str = "parallel",
) -> np.ndarray:
    """Local linear attention ``o_i = b̂_i`` of the kernel-weighted local affine fit at ``q_i``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv`` divides ``H``.
        scale: σ of the kernel ``w_ij = exp(σ q_i·k_j)``, default ``d_k ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)``; True = attend.
        lam: ridge ``λ >= 0``; ``0`` is the unregularised (pseudo-inverse) fit.
        lam_convention: ``"normalised"`` (``λ' = lam`` on the normalised covariance) or ``"objective"``
            (the objective as written: ``λ'_i = 2·lam / Σ_j w_ij``).
        form: ``"parallel"`` (per-query moments) or ``"blocked"`` (streamed, merged moments); equal to rounding.

    Returns:
        ``(..., H, n, d_v)``; a query with no visible key returns zeros.
    """
    if form not in _FORMS:
        raise ValueError(f"form: expected one of {sorted(_FORMS)}, got {form!r}")
    return _FORMS[form](q, k, v, scale=scale, causal=causal, mask=mask, lam=lam, lam_convention=lam_convention)
