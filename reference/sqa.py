"""Sparse Query Attention (SQA): fewer query heads than the model width's nominal head count.

Source: Filipek, "Sparse Query Attention (SQA): A Computationally Efficient Attention Mechanism with
Query Heads Reduction", Reactive AI, 2025 (arXiv 2510.01817); code: RxAI-dev/RxNN
(``rxnn/transformers/attention.py``, ``SparseQueryAttention``).

A layer of width ``D`` nominally has ``H = D / d_h`` heads of dim ``d_h``. GQA/MQA shrink the KV heads
``H_kv``; SQA also shrinks the *query* heads to ``H_q < H`` (keeping ``d_h``), so the score and value
products cost ``H_q n m d_h`` instead of ``H n m d_h`` — a ``H / H_q`` reduction of the attention FLOPs —
and the output projection maps ``H_q d_h`` features back to ``D``. The attention itself is GQA softmax
attention with ``H_q`` query heads over ``H_kv`` KV heads (``H_kv <= H_q``, ``H_kv | H_q``; query head
``h`` reads KV head ``h // (H_q / H_kv)``); with ``H_q = H`` the layer is a GQA (MHA for ``H_kv = H``)
layer.

Weights are per head (row-vector convention ``y = x W``): ``w_q (H_q, D, d_h)``, ``w_k (H_kv, D_c, d_h)``,
``w_v (H_kv, D_c, d_v)``, ``w_o (H_q, d_v, D_out)``; the flat ``nn.Linear`` weights of the released code
are these blocks side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.softmax import softmax_attention
from attnlab.validation import allowed_positions, as_float_array, broadcast_batch, overflow_checked


def project(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-head projections ``(..., n, D) × (H, D, e) -> (..., H, n, e)``."""
    return np.einsum("...nd,hde->...hne", x, w)


def merge_heads(o: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """Output projection ``Σ_h O_h W_O^h``: ``(..., H, n, e) × (H, e, D) -> (..., n, D)``."""
    return np.einsum("...hne,hed->...nd", o, w_o)


def check_weights(
    x: np.ndarray, context: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray
) -> None:
    """Shapes of the four per-head weights against the inputs; the GQA head counts."""
    h_q, h_kv = w_q.shape[0], w_k.shape[0]
    expected = {
        "w_q": (x.shape[-1], None),
        "w_k": (context.shape[-1], w_q.shape[-1]),
        "w_v": (context.shape[-1], None),
    }
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        rows, cols = expected[name]
        if w.shape[1] != rows or (cols is not None and w.shape[2] != cols):
            what = f"(heads, {rows}, {cols if cols is not None else 'e'})"
            raise ValueError(f"{name}: expected shape {what} (input width from x/context, d_h from w_q), got {w.shape}")
    if w_v.shape[0] != h_kv:
        raise ValueError(f"w_v: expected {h_kv} KV heads on axis 0 (those of w_k), got shape {w_v.shape}")
    if h_kv > h_q or h_q % h_kv:
        raise ValueError(
            f"w_k: expected a KV head count that divides the {h_q} query heads of w_q (H_kv <= H_q, H_kv | H_q), "
            f"got {h_kv} heads in shape {w_k.shape}"
        )
    if w_o.shape[:2] != (h_q, w_v.shape[2]):
        raise ValueError(
            f"w_o: expected shape ({h_q}, {w_v.shape[2]}, D_out) (query heads, d_v of w_v), got {w_o.shape}"
        )


@overflow_checked
def sqa_attention(
    x: Any,
    context: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> np.ndarray:
    """Sparse Query Attention layer ``Y = Σ_{h < H_q} softmax(σ (X W_Q^h)(C W_K^{g(h)})ᵀ + M)(C W_V^{g(h)}) W_O^h``.

    Args:
        x: query-side tokens ``(..., n, D)``.
        context: key/value-side tokens ``(..., m, D_c)`` (pass ``x`` itself for self-attention).
        w_q: ``(H_q, D, d_h)``; w_k: ``(H_kv, D_c, d_h)``; w_v: ``(H_kv, D_c, d_v)``; w_o: ``(H_q, d_v, D_out)``,
            with ``H_kv | H_q``.
        scale: σ, default ``d_h ** -0.5``.
        causal: key ``j`` visible to query ``i`` iff ``j <= i + m − n`` (bottom-right).
        mask: boolean, broadcastable to ``(..., n, m)`` (the batch dims of x); True = attend.

    Returns:
        ``(..., n, D_out)`` float64; a query with no visible key returns zeros.
    """
    x = as_float_array("x", x)
    context = as_float_array("context", context)
    w_q, w_k, w_v, w_o = (
        as_float_array(name, w, ndim=3) for name, w in zip(("w_q", "w_k", "w_v", "w_o"), (w_q, w_k, w_v, w_o))
    )
    check_weights(x, context, w_q, w_k, w_v, w_o)
    lead = broadcast_batch(("x", "context"), (x, context))
    allowed = allowed_positions(x.shape[-2], context.shape[-2], causal=causal, mask=mask, lead=lead)
    heads = softmax_attention(
        project(x, w_q), project(context, w_k), project(context, w_v), scale=scale, mask=allowed[..., None, :, :]
    )
    return merge_heads(heads, w_o)
