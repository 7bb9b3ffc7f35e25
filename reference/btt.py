"""Bilinear attention with Block Tensor-Train (BTT) scoring matrices.

Source: Kuang, Amsel, Lotfi, Qiu, Potapczynski & Wilson 2025, "Customizing the Inductive Biases of Softmax
Attention using Structured Matrices", ICML 2025, arXiv 2509.07963 (abstract: scoring functions
``x_iᵀ W x_j`` with high-rank structured ``W``, among them BTT). The operator below follows the authors'
code, YilunKuang/structured-attention@4895ad5, ``src/model.py`` (``BilinearBTTAttention``,
``BilinearBTT_W_Q_Projection``, ``BilinearBTT_W_K_Projection``); the paper's body was not available to
the lab.

With ``D = a·b = c·d`` where ``(a, b) = (c, d) = factor_pair(D)`` (``b`` the smallest divisor of ``D``
above ``√D``; ``D = 64`` gives ``(4, 16)``), BTT rank ``s`` and ``H`` heads, the score of head ``h`` is::

    s^h_ij = σ x_iᵀ LN(W_h y_j),      σ = D^{-1/2} (or 1/D under the code's μP flag)
    W_h[(a', b'), (c', d')] = Σ_{s'} W_Q[(h, b'), a', (c', s')] · W_K[c', d', (h, b', s')]

(row index ``a'·b + b'``, column index ``c'·d + d'``), computed as two small contractions
(``y → Σ_{d'}`` with ``W_K``, then ``Σ_{c', s'}`` with ``W_Q``) without forming ``W_h``. ``LN`` is a layer norm
over the ``D`` features without affine parameters (eps 1e-5); the raw query ``x_i`` enters unprojected.
The code rescales both cores on every call, ``W ← W / max(1, RMS(W) / √(min(d_in, d_out)/d_in²))`` with
``RMS(W) = √(mean(W²) + 1e-8)``. Link: ``softmax`` (``O = softmax_row(S + M) V``) or ``identity``
(``O = (S ⊙ visible) V``). Values are inputs, already projected per head (``W_V``, ``W_O`` stay outside).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.validation import (
    allowed_positions,
    as_float_array,
    broadcast_batch,
    check_bool,
    check_int,
    check_scale,
    overflow_checked,
)

#: The layer norm's eps (``F.layer_norm``'s in the released code).
LN_EPS = 1e-5
#: Added under the square root of the weights' mean square before the RMS cap.
RMS_EPS = 1e-8
LINKS = ("softmax", "identity")


def factor_pair(dim: int) -> tuple[int, int]:
    """``(dim / b, b)`` with ``b`` the smallest divisor of ``dim`` strictly greater than ``√dim`` (``dim >= 2``)."""
    dim = check_int("dim", dim, minimum=2, what="an int >= 2 (D = a·b with b > √D)")
    bigger = next(f for f in range(1, dim + 1) if dim % f == 0 and f > math.sqrt(dim))
    return dim // bigger, bigger


def layer_norm(x: np.ndarray, eps: float = LN_EPS) -> np.ndarray:
    """``(x − mean) / √(var + eps)`` over the last axis (biased variance; no affine parameters)."""
    centred = x - np.mean(x, axis=-1, keepdims=True)
    return centred / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps)


def rms_cap(weight: np.ndarray, fan_in: int, fan_out: int) -> np.ndarray:
    """``W / max(1, RMS(W) / √(min(fan_in, fan_out) / fan_in²))``: shrink only weights above the init scale."""
    rms = math.sqrt(float(np.mean(weight * weight)) + RMS_EPS)
    return weight / max(1.0, rms / math.sqrt(min(fan_in, fan_out) / fan_in**2))


def check_link(link: Any) -> str:
    if link not in LINKS:
        raise ValueError(f"link: expected one of {LINKS}, got {link!r}")
    return str(link)


def btt_shape(dim: int, heads: int, w_q: np.ndarray, w_k: np.ndarray) -> tuple[int, int, int, int, int]:
    """``(a, b, c, d, s)`` of the cores for width ``dim`` and ``heads`` heads, checking both cores' shapes."""
    if dim < 2:
        raise ValueError(f"x: expected a feature width D >= 2 (D = a·b with b > √D), got D = {dim}")
    a, b = factor_pair(dim)
    c, d = a, b
    if w_q.ndim != 3 or w_q.shape[0] != heads * b or w_q.shape[1] != a or w_q.shape[2] % c:
        raise ValueError(
            f"w_q: expected shape (H·b, a, c·s) = ({heads * b}, {a}, {c}·s) for D = {dim} = {a}·{b} and H = {heads} "
            f"(the heads of v), got {w_q.shape}"
        )
    s = w_q.shape[2] // c
    if w_k.shape != (c, d, heads * b * s):
        raise ValueError(
            f"w_k: expected shape (c, d, H·b·s) = {(c, d, heads * b * s)} (rank s = {s} from w_q), got {w_k.shape}"
        )
    return a, b, c, d, s


def core_blocks(
    w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The cores as ``L[h, b', a', c', s']`` and ``R[c', d', h, b', s']``."""
    a, b, c, d, s = sizes
    return w_q.reshape(heads, b, a, c, s), w_k.reshape(c, d, heads, b, s)


def flatten_keys(z: np.ndarray) -> np.ndarray:
    """``Z[..., h, b', a']`` → the ``D`` key features of each head, index ``a'·b + b'`` (a'-major)."""
    return np.swapaxes(z, -1, -2).reshape(*z.shape[:-2], z.shape[-2] * z.shape[-1])


def btt_keys(
    y: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, int, int, int, int]
) -> np.ndarray:
    """``W_h y_j`` for every head, shape ``(..., H, m, D)``, through the two core contractions."""
    c, d = sizes[2], sizes[3]
    left, right = core_blocks(w_q, w_k, heads, sizes)
    grid = y.reshape(*y.shape[:-1], c, d)  # y_j[(c', d')], c'-major
    partial = np.einsum("...mcd,cdhbs->...mhbcs", grid, right)
    z = np.einsum("...mhbcs,hbacs->...mhba", partial, left)
    keys = flatten_keys(z)  # (..., m, H, D)
    return np.moveaxis(keys, -2, -3)


def btt_dense(w_q: Any, w_k: Any, dim: int, heads: int) -> np.ndarray:
    """The dense scoring matrices ``W_h`` of shape ``(H, D, D)`` (for checks; the operator never forms them)."""
    wq, wk = as_float_array("w_q", w_q, min_ndim=3), as_float_array("w_k", w_k, min_ndim=3)
    sizes = btt_shape(dim, heads, wq, wk)
    a, b, c, d, _ = sizes
    left, right = core_blocks(wq, wk, heads, sizes)
    dense = np.einsum("hbacs,cdhbs->habcd", left, right)
    return dense.reshape(heads, a * b, c * d)


def check_btt_inputs(
    x: Any, y: Any, v: Any, w_q: Any, w_k: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int, int], tuple[int, ...]]:
    """Validated arrays (``y`` without its head axis), the core sizes ``(a, b, c, d, s)`` and the broadcast
    leading dims ``(..., H)`` of the output."""
    xa, ya, va = as_float_array("x", x), as_float_array("y", y), as_float_array("v", v)
    wq, wk = as_float_array("w_q", w_q, min_ndim=3), as_float_array("w_k", w_k, min_ndim=3)
    if va.ndim < 3:
        raise ValueError(f"v: expected per-head values (..., H, m, d_v) with a head axis, got shape {va.shape}")
    if ya.shape[-1] != xa.shape[-1]:
        raise ValueError(f"y: expected last axis of size {xa.shape[-1]} (D, the last axis of x), got shape {ya.shape}")
    if ya.shape[-2] != va.shape[-2]:
        raise ValueError(f"y/v: expected the same number of keys on axis -2, got y{ya.shape} and v{va.shape}")
    if ya.ndim >= 3 and ya.shape[-3] != 1:
        raise ValueError(
            f"y: key tokens are shared by the heads (the structured map gives each head its own keys), so axis -3 "
            f"must have size 1, as in (B, 1, m, D); got shape {ya.shape}"
        )
    sizes = btt_shape(xa.shape[-1], va.shape[-3], wq, wk)
    lead = broadcast_batch(("v", "x", "y"), (va, xa, ya))
    return xa, (ya[..., 0, :, :] if ya.ndim >= 3 else ya), va, wq, wk, sizes, lead


def capped_cores(
    w_q: np.ndarray, w_k: np.ndarray, heads: int, sizes: tuple[int, int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Both cores through the RMS cap with the released code's fans (``W_Q``: in ``c·s``, out ``a``; ``W_K``:
    in ``d``, out ``H·b·s``)."""
    a, b, c, d, s = sizes
    return rms_cap(w_q, fan_in=c * s, fan_out=a), rms_cap(w_k, fan_in=d, fan_out=heads * b * s)


@overflow_checked
def btt_attention(
    x: Any,
    y: Any,
    v: Any,
    w_q: Any,
    w_k: Any,
    *,
    scale: float | None = None,
    layer_norm_keys: bool = True,
    normalize_weights: bool = True,
    link: str = "softmax",
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """BTT bilinear attention ``O = link(σ x_iᵀ LN(W_h y_j) + M) V`` per head ``h``.

    Args:
        x: query tokens ``(..., n, D)`` (raw, unprojected; typically ``(B, 1, n, D)``, shared by the heads).
        y: key tokens ``(..., m, D)`` (``(B, 1, m, D)`` for self-attention, ``y = x``).
        v: per-head values ``(..., H, m, d_v)``; the leading dims of ``x`` and ``y`` broadcast against them.
        w_q: the left core in the released code's layout ``(H·b, a, c·s)``.
        w_k: the right core in the released code's layout ``(c, d, H·b·s)``.
        scale: σ, default ``D ** -0.5`` (the code's μP flag uses ``1/D``).
        layer_norm_keys: layer-normalise the structured keys ``W_h y_j`` (the code always does).
        normalize_weights: apply the code's per-call RMS cap to both cores.
        link: ``softmax`` or ``identity`` (masked logits used directly).
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., H, n, m)``; True = attend.

    Returns:
        ``(..., H, n, d_v)`` float64; a query with no visible key returns zeros.
    """
    xa, ya, va, wq, wk, sizes, lead = check_btt_inputs(x, y, v, w_q, w_k)
    normalize = check_bool("normalize_weights", normalize_weights)
    use_ln = check_bool("layer_norm_keys", layer_norm_keys)
    kind = check_link(link)
    heads = va.shape[-3]
    if normalize:
        wq, wk = capped_cores(wq, wk, heads, sizes)
    sigma = check_scale(scale, xa.shape[-1] ** -0.5)
    keys = btt_keys(ya, wq, wk, heads, sizes)
    if use_ln:
        keys = layer_norm(keys)
    keys = np.broadcast_to(keys, (*lead, *keys.shape[-2:]))
    queries = np.broadcast_to(xa, (*lead, *xa.shape[-2:]))
    scores = sigma * (queries @ np.swapaxes(keys, -1, -2))
    allowed = allowed_positions(queries.shape[-2], keys.shape[-2], causal=causal, mask=mask, lead=lead)
    weights = masked_softmax(scores, allowed) if kind == "softmax" else np.where(allowed, scores, 0.0)
    return weights @ np.broadcast_to(va, (*lead, *va.shape[-2:]))
