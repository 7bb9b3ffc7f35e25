"""EcoFormer attention: kernelised hashing of a shared query/key projection to binary codes, in linear time.

Source: Liu, Pan, He, Cai & Zhuang 2022, "EcoFormer: Energy-Saving Attention with Linear Complexity",
NeurIPS 2022, arXiv 2209.09004 (abstract: queries and keys are mapped to low-dimensional binary codes by
learned kernelised hash functions; the inner product of codes is affine in their code distance, and
associativity of the matrix product gives linear complexity). The paper's body was not available to the
lab; every constant of the operator below (ℓ2-normalised shared projection, Gaussian kernel against
anchors with the mean squared distance of the current sequence as bandwidth, centring by a buffered mean,
sign of a linear hash, similarity offset ``b + 1``) is the one of the authors' released code,
ziplab/EcoFormer@6ff7155, ``pvt/performer.py`` (``EcoformerFastAttention``, ``linear_attention_bias``)
and ``pvt/hashing/ksh.py`` (``KernelSH.forward``).

Per (batch, head) slice, with ``x_i`` the shared projection of token ``i`` (``Q = K``)::

    u_i   = x_i / ‖x_i‖₂
    D_ir  = ‖u_i − a_r‖²                     (anchors a_1 … a_R)
    σ̄     = mean_{i,r} D_ir                  (over all n tokens; or a fixed ``bandwidth``)
    κ_ir  = exp(−D_ir / (2σ̄)) − μ_r          (μ: the buffered kernel mean)
    h_i   = sign(A κ_i) ∈ {±1}^b             (A: b × R hash weights; sign(0) = +1)
    w_ij  = h_i·h_j + c = 2(b − dist_ij) + c − b,   c = b + 1 by default (so w_ij ≥ 1)
    o_i   = Σ_{j visible} w_ij v_j / Σ_{j visible} w_ij

``dist_ij`` is the number of differing bits (the code distance). The linear-time evaluation
(:func:`ecoformer_attention_linear`) is ``o_i = (h_iᵀ(Hᵀ V) + c Σ_j v_j) / (h_i·Σ_j h_j + c n)``, with
prefix sums in place of the totals under ``causal``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.validation import (
    allowed_positions,
    as_float_array,
    broadcast_batch,
    check_bool,
    check_last_dim,
    overflow_checked,
)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x_i / ‖x_i‖₂`` along the last axis (rows are known to be non-zero)."""
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True))


def default_offset(bits: int) -> float:
    """The similarity offset of the released code, ``b + 1``: every weight is then at least 1."""
    return float(bits + 1)


def sign_code(y: np.ndarray) -> np.ndarray:
    """±1 codes with ``sign(0) = +1`` (``torch.sign`` would give a 0 "bit")."""
    return np.where(y >= 0, y.dtype.type(1.0), y.dtype.type(-1.0))


def squared_distances(u: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``D_ir = ‖u_i − a_r‖²`` of shape ``(..., n, R)``, summed coordinate by coordinate (no cancellation)."""
    diff = u[..., :, None, :] - anchors[..., None, :, :]
    return np.sum(diff * diff, axis=-1)


def kernel_bandwidth(dist: np.ndarray) -> np.ndarray:
    """σ̄: the mean of all ``n × R`` squared distances of the slice, shape ``(..., 1, 1)``."""
    return np.mean(dist, axis=(-2, -1), keepdims=True)


def kernel_features(u: np.ndarray, anchors: np.ndarray, kernel_mean: np.ndarray, bandwidth: float | None) -> np.ndarray:
    """Centred Gaussian kernel features ``κ_ir = exp(−D_ir / (2σ̄)) − μ_r``, ``(..., n, R)``."""
    dist = squared_distances(u, anchors)
    width = kernel_bandwidth(dist) if bandwidth is None else dist.dtype.type(bandwidth)
    if np.any(width <= 0.0):
        raise ValueError(
            "qk/anchors: every token coincides with every anchor, so the mean squared distance (the kernel "
            "bandwidth) is 0; pass an explicit positive bandwidth="
        )
    return np.exp(-dist / (2.0 * width)) - kernel_mean[..., None, :]


def check_bandwidth(value: Any, name: str = "bandwidth") -> float | None:
    """A fixed kernel bandwidth: None, or a positive finite float."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a positive float or None, got {type(value).__name__}")
    number = float(value)
    if not np.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name}: expected a positive finite float, got {value!r}")
    return number


def check_kernel_mean_lead(mean_shape: tuple[int, ...], qk_shape: tuple[int, ...]) -> None:
    """``kernel_mean (..., R)`` must broadcast with the leading dims of ``qk (..., n, d)``."""
    try:
        np.broadcast_shapes(tuple(qk_shape[:-2]), tuple(mean_shape[:-1]))
    except ValueError:
        raise ValueError(
            f"kernel_mean: leading dims must broadcast with those of qk, "
            f"got kernel_mean{tuple(mean_shape)} and qk{tuple(qk_shape)}"
        ) from None


def check_hash_inputs(
    qk: Any, anchors: Any, hash_weights: Any, kernel_mean: Any, bandwidth: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float | None]:
    """Validated ``qk``, ``anchors``, ``hash_weights``, ``kernel_mean`` and the optional fixed bandwidth
    (the checks every implementation of the operator shares; arrays come back in the compute dtype)."""
    qk_a = as_float_array("qk", qk)
    anchors_a = as_float_array("anchors", anchors)
    weights_a = as_float_array("hash_weights", hash_weights)
    mean_a = as_float_array("kernel_mean", kernel_mean, min_ndim=1)
    check_last_dim("anchors", anchors_a, qk_a.shape[-1], "d, the last axis of qk")
    r = anchors_a.shape[-2]
    check_last_dim("hash_weights", weights_a, r, "R, the number of anchors (axis -2 of anchors)")
    check_last_dim("kernel_mean", mean_a, r, "R, the number of anchors (axis -2 of anchors)")
    broadcast_batch(("qk", "anchors", "hash_weights"), (qk_a, anchors_a, weights_a))
    check_kernel_mean_lead(mean_a.shape, qk_a.shape)
    if np.any(np.sum(qk_a * qk_a, axis=-1) == 0.0):
        raise ValueError("qk: a token has an all-zero projection; EcoFormer ℓ2-normalises each token of qk")
    return qk_a, anchors_a, weights_a, mean_a, check_bandwidth(bandwidth)


def check_values(qk: np.ndarray, v: Any) -> np.ndarray:
    """Validated values ``v (..., n, d_v)`` with as many tokens as ``qk`` (self-attention, ``Q = K``)."""
    v_a = as_float_array("v", v)
    if v_a.shape[-2] != qk.shape[-2]:
        raise ValueError(
            f"qk/v: expected the same number of tokens on axis -2 (self-attention, Q = K), "
            f"got qk{qk.shape} and v{v_a.shape}"
        )
    return v_a


def check_offset(offset: Any, bits: int) -> float:
    """The similarity offset ``c``: ``b + 1`` when None, else a finite float ``> b``."""
    if offset is None:
        return default_offset(bits)
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, float, np.number)):
        raise TypeError(f"offset: expected a float > b (the code length) or None, got {type(offset).__name__}")
    value = float(offset)
    if not np.isfinite(value) or value <= bits:
        raise ValueError(
            f"offset: expected a finite float > b = {bits} (the code length), so that every weight is positive; "
            f"got {offset!r}"
        )
    return value


def _codes(
    qk: np.ndarray, anchors: np.ndarray, hash_weights: np.ndarray, kernel_mean: np.ndarray, bandwidth: float | None
) -> np.ndarray:
    features = kernel_features(unit_rows(qk), anchors, kernel_mean, bandwidth)
    return sign_code(features @ np.swapaxes(hash_weights, -1, -2))


def binary_codes(
    qk: Any, anchors: Any, hash_weights: Any, kernel_mean: Any, *, bandwidth: float | None = None
) -> np.ndarray:
    """The ±1 codes ``h_i = sign(A κ(u_i))`` of every token, shape ``(..., n, b)``.

    Args as :func:`ecoformer_attention`. The codes are not token-local unless ``bandwidth`` is given:
    the default bandwidth is the mean squared token–anchor distance of the whole sequence.
    """
    return _codes(*check_hash_inputs(qk, anchors, hash_weights, kernel_mean, bandwidth))


def code_weights(codes: np.ndarray, offset: float) -> np.ndarray:
    """``w_ij = h_i·h_j + c`` for every pair, ``(..., n, n)``."""
    return codes @ np.swapaxes(codes, -1, -2) + offset


def _normalise(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` per row; rows whose weights sum to 0 (nothing visible) are zeros, never NaN."""
    safe = np.where(den != 0.0, den, 1.0)
    return np.where(den != 0.0, num / safe, 0.0)


def _prepare(
    qk: Any, v: Any, anchors: Any, hash_weights: Any, kernel_mean: Any, offset: Any, bandwidth: Any, causal: Any
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    qk_a, anchors_a, weights_a, mean_a, width = check_hash_inputs(qk, anchors, hash_weights, kernel_mean, bandwidth)
    v_a = check_values(qk_a, v)
    causal = check_bool("causal", causal)
    if causal and width is None:
        raise ValueError(
            "causal: the default bandwidth is a mean over every token of the sequence, so token i's code "
            "would read tokens after i; pass a fixed bandwidth= for causal EcoFormer attention"
        )
    codes = _codes(qk_a, anchors_a, weights_a, mean_a, width)
    offset_value = check_offset(offset, codes.shape[-1])
    lead = broadcast_batch(("qk", "v"), (codes, v_a))
    codes = np.broadcast_to(codes, (*lead, *codes.shape[-2:]))
    v_a = np.broadcast_to(v_a, (*lead, *v_a.shape[-2:]))
    return codes, v_a, offset_value, causal


@overflow_checked
def ecoformer_attention(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """EcoFormer attention in its quadratic form ``o_i = Σ_j w_ij v_j / Σ_j w_ij``, ``w_ij = h_i·h_j + c``.

    Args:
        qk: the shared query/key projection ``(..., n, d)`` (``Q = K``; e.g. ``(B, H, n, d)``); each token
            is ℓ2-normalised, so it must be non-zero.
        v: values ``(..., n, d_v)``.
        anchors: kernel anchors ``(..., R, d)`` broadcasting against the leading dims of ``qk`` (the released
            code keeps one set per head, ``(H, R, d)``, sampled from normalised tokens).
        hash_weights: the hash projection ``A`` ``(..., b, R)`` (one per head in the released code).
        kernel_mean: the buffered kernel mean ``μ`` ``(..., R)``.
        offset: the similarity offset ``c`` (default ``b + 1``, the released code's; must exceed ``b`` so that
            every weight ``h_i·h_j + c >= c − b`` is positive).
        bandwidth: a fixed kernel bandwidth σ̄; None uses the mean squared token–anchor distance of the
            current sequence (the released code), which makes every code depend on the whole sequence.
        causal: key ``j`` visible to query ``i`` iff ``j <= i`` (self-attention, so bottom-right and top-left
            alignment agree); needs a fixed ``bandwidth`` (extension: the paper's setting is vision,
            non-causal).
        mask: boolean, broadcastable to ``(..., n, n)``; True = attend. The default bandwidth still averages
            over every token.

    Returns:
        ``(..., n, d_v)`` float64; a query with no visible key returns zeros. The output is piecewise
        constant in ``qk``, ``anchors``, ``hash_weights`` and ``kernel_mean`` (through the signs) and linear
        in ``v``; training uses a straight-through estimator for the signs, which is not part of the operator.
    """
    codes, v_a, c, causal = _prepare(qk, v, anchors, hash_weights, kernel_mean, offset, bandwidth, causal)
    n = codes.shape[-2]
    allowed = allowed_positions(n, n, causal=causal, mask=mask, lead=codes.shape[:-2])
    weights = np.where(allowed, code_weights(codes, c), 0.0)
    return _normalise(weights @ v_a, np.sum(weights, axis=-1, keepdims=True))


def running_sums(x: np.ndarray, causal: bool) -> np.ndarray:
    """``Σ_{j <= i} x_j`` along axis -3 (inclusive prefix) under ``causal``, else the total for every ``i``."""
    if causal:
        return np.cumsum(x, axis=-3)
    return np.broadcast_to(np.sum(x, axis=-3, keepdims=True), x.shape)


def aggregate_linear(codes: np.ndarray, v: np.ndarray, offset: float, causal: bool) -> np.ndarray:
    """``(h_iᵀ S_i + c z_i) / (h_i·g_i + c N_i)`` with ``S = Σ h_j v_jᵀ``, ``g = Σ h_j``, ``z = Σ v_j``,
    ``N`` the number of summed keys: O(n b d_v) (prefix sums of the outer products under ``causal``)."""
    ones = np.ones((*codes.shape[:-1], 1), dtype=v.dtype)
    # [v | 1] carries the value sums and the key counts through the same sums as the code products.
    v1 = np.concatenate([v, ones], axis=-1)
    if causal:
        state = running_sums(codes[..., :, :, None] * v1[..., :, None, :], causal=True)
        plain = running_sums(v1[..., :, None, :], causal=True)[..., 0, :]
        top = np.einsum("...nb,...nbe->...ne", codes, state) + offset * plain
    else:
        state = np.swapaxes(codes, -1, -2) @ v1
        top = codes @ state + offset * np.sum(v1, axis=-2, keepdims=True)
    return _normalise(top[..., :-1], top[..., -1:])


def ecoformer_attention_linear(
    qk: Any,
    v: Any,
    anchors: Any,
    hash_weights: Any,
    kernel_mean: Any,
    *,
    offset: float | None = None,
    bandwidth: float | None = None,
    causal: bool = False,
) -> np.ndarray:
    """The same operator as :func:`ecoformer_attention`, evaluated in linear time (no boolean mask).

    ``o_i = (h_iᵀ(Σ_j h_j v_jᵀ) + c Σ_j v_j) / (h_i·Σ_j h_j + c n)`` (the released code's
    ``linear_attention_bias``); under ``causal`` the sums run over ``j <= i`` (prefix sums).
    """
    codes, v_a, c, causal = _prepare(qk, v, anchors, hash_weights, kernel_mean, offset, bandwidth, causal)
    return aggregate_linear(codes, v_a, c, causal)
