"""Mixture-of-Head attention (MoH): heads as experts, a per-token router weighting their outputs.

Source: Jin, Zhu, Yuan & Yan, "MoH: Multi-Head Attention as Mixture-of-Head Attention", 2024
(arXiv 2410.11842; shared and routed heads, two-stage routing); code: SkyworkAI/MoH
(``MoH-ViT/attention.py``, ``MoH-DiT/models.py``).

Multi-head attention is ``Σ_h O_h W_O^h``; MoH weights the sum per token, ``Σ_h g_{t,h} O_{t,h} W_O^h``.
The first ``h_s`` heads are *shared* (always active), the other ``h_r`` are *routed*: a token activates
only its ``K`` routed heads of largest router score. With ``p^s = softmax(W_s x_t)``,
``p^r = softmax(W_r x_t)`` and ``[α_1, α_2] = softmax(W_h x_t)``:

* paper (``gating="paper"``): ``g = α_1 p^s_i`` on shared heads, ``g = α_2 p^r_i`` on the top-``K``
  routed heads, 0 elsewhere;
* released code (``gating="code"``): the selected routed scores are renormalised to sum to 1, and the
  three softmaxes are multiplied by their sizes: ``g = 2 α_1 · h_s p^s_i`` and
  ``g = 2 α_2 · K p^r_i / Σ_{j ∈ TopK} p^r_j``, so with uniform routers and every routed head selected
  every gate is 1 and MoH is multi-head attention.

The operator returns the gated head outputs ``g_{t,h} O_{t,h}``; ``W_O`` (a linear map of their
concatenation) is the layer's business. Like the released code, every head's attention is computed;
the paper's inference saving needs skipping the unselected heads' queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import as_float_array, check_positive_int, overflow_checked

GATINGS = ("paper", "code")


def router_scores(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``softmax(W x_t)`` for every token: ``(..., n, D) × (E, D) -> (..., n, E)``."""
    z = x @ w.T
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """True on the ``k`` largest entries of each row (ties go to the lower index)."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    selected = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(selected, order, True, axis=-1)
    return selected


def combine(shared: np.ndarray, picked: np.ndarray, mix: np.ndarray, *, top_k: int, gating: str) -> np.ndarray:
    """Gates ``(..., n, h_s + h_r)`` from the shared scores, the selected routed scores (0 elsewhere)
    and the mixing weights ``[α_1, α_2]``, scaled the paper's or the released code's way."""
    if gating == "code":
        shared = shared * shared.shape[-1]
        picked = picked / np.sum(picked, axis=-1, keepdims=True) * top_k
        mix = mix * 2.0
    return np.concatenate([mix[..., :1] * shared, mix[..., 1:] * picked], axis=-1)


def route(
    x: np.ndarray, w_shared: np.ndarray, w_routed: np.ndarray, w_mix: np.ndarray, *, top_k: int, gating: str
) -> np.ndarray:
    """Per-token head gates ``(..., n, H)`` (shared heads first): the router of the module docstring."""
    routed = router_scores(x, w_routed)
    picked = np.where(top_k_mask(routed, top_k), routed, 0.0)
    return combine(router_scores(x, w_shared), picked, router_scores(x, w_mix), top_k=top_k, gating=gating)


def check_router(
    q: np.ndarray, x: np.ndarray, w_shared: np.ndarray, w_routed: np.ndarray, w_mix: np.ndarray, top_k: Any, gating: Any
) -> int:
    """Validate the router's shapes and options; returns ``K``."""
    heads, n, width = q.shape[-3], q.shape[-2], x.shape[-1]
    if x.shape[-2] != n:
        raise ValueError(
            f"x: expected the router inputs (..., n, D) with n = {n} tokens (the queries'), got shape {x.shape}"
        )
    for name, w in (("w_shared", w_shared), ("w_routed", w_routed), ("w_mix", w_mix)):
        if w.shape[-1] != width:
            raise ValueError(f"{name}: expected shape (heads, D) with D = {width} (the last axis of x), got {w.shape}")
    if w_mix.shape[0] != 2:
        raise ValueError(f"w_mix: expected shape (2, D) (the shared/routed mixing router), got {w_mix.shape}")
    if w_shared.shape[0] + w_routed.shape[0] != heads:
        raise ValueError(
            f"w_shared/w_routed: expected h_s + h_r = {heads} router rows (the query heads on axis -3 of q), "
            f"got {w_shared.shape[0]} + {w_routed.shape[0]}"
        )
    k = check_positive_int("top_k", top_k)
    if k > w_routed.shape[0]:
        raise ValueError(f"top_k: expected at most h_r = {w_routed.shape[0]} routed heads, got {k}")
    if gating not in GATINGS:
        raise ValueError(f"gating: expected one of {GATINGS}, got {gating!r}")
    try:
        np.broadcast_shapes(x.shape[:-2], q.shape[:-3])
    except ValueError:
        raise ValueError(
            f"x: leading dims {x.shape[:-2]} must broadcast with the batch dims {q.shape[:-3]} of q"
        ) from None
    return k


@overflow_checked
def moh_attention(
    q: Any,
    k: Any,
    v: Any,
    x: Any,
    w_shared: Any,
    w_routed: Any,
    w_mix: Any,
    *,
    top_k: int,
    gating: str = "paper",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Gated head outputs of Mixture-of-Head attention, ``g_{t,h} · softmax(σ Q_h K_{g(h)}ᵀ + M)_t V_{g(h)}``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; ``H_kv`` divides ``H``.
        x: router inputs ``(..., n, D)`` (the layer's token states; leading dims are q's batch dims).
        w_shared: ``(h_s, D)`` shared-head router; w_routed: ``(h_r, D)`` routed-head router
            (``h_s + h_r = H``; shared heads are the first ``h_s``); w_mix: ``(2, D)`` the router
            mixing the two groups.
        top_k: ``K``, routed heads activated per token (``1 <= K <= h_r``).
        gating: ``"paper"`` (default) or ``"code"`` (the released code's renormalised, rescaled gates).
        scale, causal, mask: as :func:`attnlab.reference.softmax.softmax_attention`.

    Returns:
        ``(..., H, n, d_v)`` float64: head ``h``'s attention output scaled by its gate; a query with no
        visible key returns zeros.
    """
    q = as_float_array("q", q, min_ndim=3)
    x = as_float_array("x", x)
    w_s, w_r, w_m = (
        as_float_array(name, w, ndim=2)
        for name, w in (("w_shared", w_shared), ("w_routed", w_routed), ("w_mix", w_mix))
    )
    top = check_router(q, x, w_s, w_r, w_m, top_k, gating)
    heads = softmax_attention(q, k, v, scale=scale, causal=causal, mask=mask)
    gates = route(x, w_s, w_r, w_m, top_k=top, gating=gating)
    return heads * np.swapaxes(gates, -1, -2)[..., None]
