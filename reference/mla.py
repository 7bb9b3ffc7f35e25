"""Multi-head latent attention (MLA) of DeepSeek-V2/V3, naive and absorbed forms.

Source: DeepSeek-AI, "DeepSeek-V2" (arXiv 2405.04434) and the DeepSeek-V3 inference code
(``MLA`` with ``attn_impl="naive"`` / ``"absorb"``). Row-vector convention: ``y = x W``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import (
    as_float_array,
    check_choice,
    check_field_shape,
    check_int,
    check_last_dim,
    check_real,
    check_scale,
    overflow_checked,
)

RMS_EPS = 1e-6


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = RMS_EPS) -> np.ndarray:
    """``x / sqrt(mean(x²) + ε) · w`` over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_interleaved(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotary embedding on interleaved feature pairs ``(2p, 2p+1)`` with ``θ_p = t · base^{-2p/d}``.

    ``x`` is ``(..., n, d)`` with even ``d``; ``positions`` is ``(n,)``.
    """
    d = x.shape[-1]
    freqs = base ** (-np.arange(0, d, 2) / d)
    angles = positions[:, None] * freqs[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


@dataclass(frozen=True)
class MLAWeights:
    """Projection weights of one MLA layer (shapes for model width ``D``, ``H`` heads).

    Attributes:
        w_dq: ``(D, d_cq)`` query down-projection, or None for ``q_lora_rank = 0`` (then
            ``w_uq`` is ``(D, H (d_nope + d_rope))``).
        q_norm: ``(d_cq,)`` RMSNorm weight of the query latent (None when ``w_dq`` is None).
        w_uq: ``(d_cq, H (d_nope + d_rope))`` query up-projection.
        w_dkv: ``(D, d_c + d_rope)`` joint KV down-projection and shared RoPE key.
        kv_norm: ``(d_c,)`` RMSNorm weight of the KV latent.
        w_ukv: ``(d_c, H (d_nope + d_v))`` KV up-projection; per head ``[W_UK^h | W_UV^h]``.
        w_o: ``(H d_v, D)`` output projection.
    """

    w_dq: np.ndarray | None
    q_norm: np.ndarray | None
    w_uq: np.ndarray
    w_dkv: np.ndarray
    kv_norm: np.ndarray
    w_ukv: np.ndarray
    w_o: np.ndarray
    n_heads: int
    d_nope: int
    d_rope: int
    d_v: int

    @property
    def d_model(self) -> int:
        return int(self.w_dkv.shape[0])

    @property
    def d_latent(self) -> int:
        return int(self.kv_norm.shape[0])


def _heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """``(..., n, H·c) -> (..., H, n, c)``."""
    return np.swapaxes(x.reshape(*x.shape[:-1], n_heads, x.shape[-1] // n_heads), -2, -3)


#: The fields of an MLA weights object that hold arrays.
ARRAY_FIELDS = ("w_dq", "q_norm", "w_uq", "w_dkv", "kv_norm", "w_ukv", "w_o")
SIZE_FIELDS = ("n_heads", "d_nope", "d_rope", "d_v")


def check_mla_weights(weights: Any, as_array: Callable[[str, Any, int], Any]) -> dict[str, Any]:
    """Validate the fields of MLA weights (NumPy :class:`MLAWeights` or its torch twin) and return them.

    ``as_array(name, value, ndim)`` checks one array field the way the path checks arrays (type, dtype,
    rank, finiteness) and returns it converted; this function checks the sizes and every shape against
    them, naming the field (``weights.w_o``), so the NumPy and torch paths share one description.
    """
    sizes = {
        "n_heads": check_int("weights.n_heads", weights.n_heads, minimum=1, what="a positive int (H)"),
        "d_nope": check_int("weights.d_nope", weights.d_nope, minimum=0, what="a non-negative int"),
        "d_rope": check_int("weights.d_rope", weights.d_rope, minimum=0, what="a non-negative int"),
        "d_v": check_int("weights.d_v", weights.d_v, minimum=1, what="a positive int"),
    }
    h, d_nope, d_rope, d_v = (sizes[k] for k in SIZE_FIELDS)
    if d_rope % 2:
        raise ValueError(f"weights.d_rope: expected an even size for interleaved RoPE, got {d_rope}")
    if d_nope + d_rope == 0:
        raise ValueError("weights.d_nope/weights.d_rope: expected a positive query/key head size d_nope + d_rope")
    w_dkv = as_array("weights.w_dkv", weights.w_dkv, 2)
    d_model, d_c = int(w_dkv.shape[0]), int(w_dkv.shape[1]) - d_rope
    if d_c < 1:
        raise ValueError(
            f"weights.w_dkv: expected shape (D, d_c + d_rope) with d_c >= 1 and d_rope = {d_rope}, "
            f"got {tuple(w_dkv.shape)}"
        )
    arrays: dict[str, Any] = {"w_dkv": w_dkv, "w_dq": None, "q_norm": None}
    if weights.w_dq is None:
        if weights.q_norm is not None:
            raise ValueError("weights.q_norm: expected None without a query down-projection w_dq")
        q_in = d_model
    else:
        arrays["w_dq"] = as_array("weights.w_dq", weights.w_dq, 2)
        if weights.q_norm is None:
            raise ValueError("weights.q_norm: the RMSNorm weight is required with a query down-projection w_dq")
        arrays["q_norm"] = as_array("weights.q_norm", weights.q_norm, 1)
        q_in = int(arrays["w_dq"].shape[1])
        check_field_shape("weights.w_dq", arrays["w_dq"], (d_model, q_in), f"D = {d_model} rows, as w_dkv")
        check_field_shape("weights.q_norm", arrays["q_norm"], (q_in,), "d_cq, the columns of w_dq")
    expected = {
        "kv_norm": ((d_c,), f"d_c = {d_c}: the columns of w_dkv less d_rope"),
        "w_uq": ((q_in, h * (d_nope + d_rope)), f"(d_cq or D, H·(d_nope + d_rope)) with H = {h}"),
        "w_ukv": ((d_c, h * (d_nope + d_v)), f"(d_c, H·(d_nope + d_v)) with H = {h}"),
        "w_o": ((h * d_v, d_model), f"(H·d_v, D) with H = {h}, d_v = {d_v}"),
    }
    for name, (shape, what) in expected.items():
        arrays[name] = as_array(f"weights.{name}", getattr(weights, name), len(shape))
        check_field_shape(f"weights.{name}", arrays[name], shape, what)
    return {**arrays, **sizes}


def _numpy_field(name: str, value: Any, ndim: int) -> np.ndarray:
    return as_float_array(name, value, ndim=ndim, layout="(rows, cols)" if ndim == 2 else "(size,)")


def checked_weights(weights: Any) -> MLAWeights:
    """``weights`` validated (:func:`check_mla_weights`), its arrays in the compute dtype."""
    if not isinstance(weights, MLAWeights):
        raise TypeError(f"weights: expected an MLAWeights, got {type(weights).__name__}")
    checked = check_mla_weights(weights, _numpy_field)
    return MLAWeights(**{f.name: checked[f.name] for f in fields(MLAWeights)})


def check_mla_options(impl: Any, rope_base: Any) -> tuple[str, float]:
    impl = check_choice("impl", impl, ("naive", "absorb"))
    return impl, check_real("rope_base", rope_base, minimum=0.0, exclusive=True, what="a positive finite RoPE base")


@overflow_checked
def mla_attention(
    x: Any,
    weights: MLAWeights,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> np.ndarray:
    """Multi-head latent attention.

    Naive: ``q_h = [q^C_h; RoPE(q^R_h)]`` from ``W_UQ RMSNorm(W_DQ x)``; ``[c; k^R] = W_DKV x``,
    ``ĉ = RMSNorm(c)``, ``[k^C_h; v_h] = W_UKV^h ĉ``; keys ``[k^C_h; RoPE(k^R)]`` (the RoPE key is
    shared by all heads); ``o_h = softmax(σ q_h·k_h) v_h``; ``y = W_O concat_h o_h``.

    Absorbed: ``q̃_h = (W_UK^h)ᵀ q^C_h`` scores directly against the cached latent ``ĉ``
    (an MQA with key ``[ĉ; k^R]`` and value ``ĉ``), then ``o_h = W_UV^h õ_h``. Identical in exact
    arithmetic; the cache per token shrinks from ``H(d_nope + d_rope + d_v)`` to ``d_c + d_rope``.

    Args:
        x: ``(..., n, D)`` token states.
        weights: :class:`MLAWeights`.
        impl: ``"naive"`` or ``"absorb"``.
        scale: σ, default ``(d_nope + d_rope) ** -0.5`` (no YaRN ``mscale``).
        causal, mask: as :func:`softmax_attention` (mask broadcastable to ``(..., H, n, n)``).
        rope_base: RoPE base θ.

    Returns:
        ``(..., n, D)``.
    """
    weights = checked_weights(weights)
    impl, rope_base = check_mla_options(impl, rope_base)
    x = as_float_array("x", x)
    check_last_dim("x", x, weights.d_model, "D, the model width of weights")
    h, d_nope, d_rope, d_c = weights.n_heads, weights.d_nope, weights.d_rope, weights.d_latent
    sigma = check_scale(scale, (d_nope + d_rope) ** -0.5)
    n = x.shape[-2]
    positions = np.arange(n, dtype=np.float64)

    if weights.w_dq is None or weights.q_norm is None:
        q_latent = x
    else:
        q_latent = rms_norm(x @ weights.w_dq, weights.q_norm)
    q = _heads(q_latent @ weights.w_uq, h)  # (..., H, n, d_nope + d_rope)
    q_nope, q_rope = q[..., :d_nope], rope_interleaved(q[..., d_nope:], positions, rope_base)

    kv = x @ weights.w_dkv
    c_hat = rms_norm(kv[..., :d_c], weights.kv_norm)[..., None, :, :]  # (..., 1, n, d_c)
    k_rope = rope_interleaved(kv[..., d_c:], positions, rope_base)[..., None, :, :]  # (..., 1, n, d_r)
    w_ukv = weights.w_ukv.reshape(d_c, h, d_nope + weights.d_v)
    w_uk, w_uv = w_ukv[..., :d_nope], w_ukv[..., d_nope:]

    if impl == "naive":
        kv_up = _heads(c_hat[..., 0, :, :] @ weights.w_ukv, h)  # (..., H, n, d_nope + d_v)
        k = np.concatenate([kv_up[..., :d_nope], np.broadcast_to(k_rope, (*kv_up.shape[:-1], d_rope))], -1)
        heads = softmax_attention(
            np.concatenate([q_nope, q_rope], -1),
            k,
            kv_up[..., d_nope:],
            scale=sigma,
            causal=causal,
            mask=mask,
        )
    else:
        q_absorbed = np.einsum("...hnd,chd->...hnc", q_nope, w_uk)
        latent_out = softmax_attention(
            np.concatenate([q_absorbed, q_rope], -1),
            np.concatenate([c_hat, k_rope], -1),
            c_hat,
            scale=sigma,
            causal=causal,
            mask=mask,
        )
        heads = np.einsum("...hnc,chv->...hnv", latent_out, w_uv)
    merged = np.swapaxes(heads, -2, -3).reshape(*heads.shape[:-3], n, h * weights.d_v)
    return merged @ weights.w_o
