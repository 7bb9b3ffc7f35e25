"""BASED (Arora et al. 2024): Taylor-feature linear attention and sliding-window softmax attention.

Source: Simran Arora, Sabri Eyuboglu, Michael Zhang, Aman Timalsina, Silas Alberti, Dylan Zinsley,
James Zou, Atri Rudra, Christopher Ré, "Simple linear attention language models balance the
recall-throughput tradeoff", ICML 2024, arXiv 2402.18668 (abstract: BASED combines linear attention with a
2nd-order Taylor feature map and small sliding-window attention layers); feature map and
normalisation as in the authors' code (HazyResearch/based, ``based/models/mixers/linear_attention.py``
and ``slide_attention.py``).

BASED is an architecture of separate layers, so the operator has two ``layer``\\ s:

* ``"linear"``: normalised linear attention with the Taylor feature map of the projected ``q, k``
  (feature dimension ``d' = d_k``),

      φ(x) = [1, x / d'^{1/4}, vec(x xᵀ) / (√2 √d')]  ∈ R^{1 + d' + d'²}      (layout "full", the code's)
      φ(x) = [1, x / d'^{1/4}, diag(x xᵀ) / (√2 √d'), triu₊₁(x xᵀ) / √d']     (layout "compact", fla's)

  both with ``φ(q)·φ(k) = 1 + s + s²/2``, ``s = q·k / √d'`` (≥ 1/2 > 0), and
  ``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)`` over ``j <= i`` when causal (``ε = 1e-12``,
  the code's). Evaluations: ``quadratic`` (parallel), ``recurrent`` (prefix state, resumable) and
  ``chunked``; they agree to rounding.
* ``"window"``: causal softmax attention over the last ``window`` keys, ``i' − w < j <= i'`` with
  ``i' = i + m − n`` (bottom-right), scale ``σ = d_k^{-1/2}``, optionally masked (the code's
  ``flash_attn(window_size=(w − 1, 0))``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from attnlab.reference._core import masked_softmax
from attnlab.reference.linear import check_chunked_is_causal, linear_attention_chunked, linear_attention_recurrent
from attnlab.reference.softmax import _prepare_qk
from attnlab.validation import (
    as_float_array,
    check_bool,
    check_last_dim,
    check_positive_int,
    expand_kv_heads,
    overflow_checked,
)

LAYERS = ("linear", "window")
LAYOUTS = ("full", "compact")
FORMS = ("quadratic", "recurrent", "chunked")
DEFAULT_EPS = 1e-12
DEFAULT_WINDOW = 64


def taylor_features(x: np.ndarray, *, layout: str = "full") -> np.ndarray:
    """The 2nd-order Taylor feature map of ``x`` ``(..., d')`` (see the module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    d = x.shape[-1]
    ones = np.ones((*x.shape[:-1], 1), dtype=x.dtype)
    first = x / d**0.25
    outer = x[..., :, None] * x[..., None, :]
    if layout == "full":
        second = outer.reshape(*x.shape[:-1], d * d) / math.sqrt(2.0 * d)
        return np.concatenate([ones, first, second], axis=-1)
    rows, cols = np.triu_indices(d, k=1)
    diagonal = np.diagonal(outer, axis1=-2, axis2=-1) / math.sqrt(2.0 * d)
    cross = outer[..., rows, cols] / math.sqrt(d)
    return np.concatenate([ones, first, diagonal, cross], axis=-1)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.number)):
        raise TypeError(f"eps: expected a non-negative float, got {type(eps).__name__}")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    return float(eps)


def _linear(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: Any,
    eps: Any,
    layout: str,
    form: str,
    chunk_size: Any,
    initial_state: Any,
    return_state: Any,
) -> Any:
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    causal = check_bool("causal", causal)
    return_state = check_bool("return_state", return_state)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    eps = _check_eps(eps)
    qa, ka, va = (as_float_array(name, x) for name, x in (("q", q), ("k", k), ("v", v)))
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, va = expand_kv_heads(qa, ka, va)
    n, m = qa.shape[-2], ka.shape[-2]
    if causal and n != m:
        raise ValueError(f"q/k: causal linear attention needs equal query and key lengths, got n={n}, m={m}")
    check_chunked_is_causal(form, causal)
    if (initial_state is not None or return_state) and form != "recurrent":
        name = "initial_state" if initial_state is not None else "return_state"
        raise ValueError(f"{name}: state is carried by the 'recurrent' form only")
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")

    def phi(x: np.ndarray) -> np.ndarray:
        return taylor_features(x, layout=layout)

    if form == "recurrent":
        return linear_attention_recurrent(
            qa, ka, va, feature_map=phi, causal=causal, eps=eps, initial_state=initial_state, return_state=return_state
        )
    if form == "chunked":
        return linear_attention_chunked(qa, ka, va, feature_map=phi, chunk_size=chunk_size, eps=eps)
    kernel = taylor_features(qa, layout=layout) @ np.swapaxes(taylor_features(ka, layout=layout), -1, -2)
    if causal:
        kernel = np.tril(kernel)
    return (kernel @ va) / (kernel.sum(axis=-1, keepdims=True) + eps)


def check_layer_options(layer: Any, **options: Any) -> None:
    """Reject an option that belongs to the other layer (``window``/``scale``/``mask`` are the window
    layer's; ``eps``/``layout``/``form``/``chunk_size``/state the linear layer's)."""
    if layer not in LAYERS:
        raise ValueError(f"layer: expected one of {LAYERS}, got {layer!r}")
    if layer == "linear":
        for name in ("window", "scale", "mask"):
            if options.get(name) is not None:
                raise ValueError(f"{name}: applies to layer='window' only; the linear layer has no {name}")
        return
    defaults = {
        "eps": DEFAULT_EPS,
        "layout": "full",
        "form": "quadratic",
        "chunk_size": 64,
        "initial_state": None,
        "return_state": False,
    }
    for name, default in defaults.items():
        value = options.get(name, default)
        if value is not default and value != default:
            raise ValueError(f"{name}: applies to layer='linear' only; the window layer has no {name}")


def based_fast_path_options(
    path: str, *, layer: Any, causal: Any, initial_state: Any, return_state: Any, **options: Any
) -> bool:
    """Validate a stateless fast path's options (``path`` names it in the message); returns ``causal``."""
    check_layer_options(layer, initial_state=initial_state, return_state=return_state, **options)
    causal = check_bool("causal", causal)
    if initial_state is not None or check_bool("return_state", return_state):
        name = "initial_state" if initial_state is not None else "return_state"
        raise ValueError(f"{name}: the {path} path carries no recurrent state; use the reference's 'recurrent' form")
    if layer == "linear":
        if options["form"] not in FORMS:
            raise ValueError(f"form: expected one of {FORMS}, got {options['form']!r}")
        if options["layout"] not in LAYOUTS:
            raise ValueError(f"layout: expected one of {LAYOUTS}, got {options['layout']!r}")
        check_positive_int("chunk_size", options["chunk_size"])
        check_chunked_is_causal(options["form"], causal)
    return causal


def window_band(n: int, m: int, window: int) -> np.ndarray:
    """``(n, m)`` booleans: key ``j`` visible to query ``i`` iff ``i + m − n − w < j <= i + m − n``."""
    i = np.arange(n)[:, None] + (m - n)
    j = np.arange(m)[None, :]
    return (j <= i) & (j > i - window)


def _window(q: Any, k: Any, v: Any, *, causal: Any, window: Any, scale: Any, mask: Any) -> np.ndarray:
    if not check_bool("causal", causal):
        raise ValueError("causal: BASED's sliding-window layer is causal; expected causal=True")
    width = check_positive_int("window", window)
    qa, ka, va, sigma, allowed = _prepare_qk(q, k, v, scale=scale, causal=False, mask=mask)
    band = window_band(qa.shape[-2], ka.shape[-2], min(width, ka.shape[-2]))  # wider windows see every key
    return masked_softmax(sigma * (qa @ np.swapaxes(ka, -1, -2)), allowed & band) @ va


@overflow_checked
def based_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    layer: str = "linear",
    causal: bool = True,
    eps: float = DEFAULT_EPS,
    layout: str = "full",
    form: str = "quadratic",
    chunk_size: int = 64,
    initial_state: Any = None,
    return_state: bool = False,
    window: int | None = None,
    scale: float | None = None,
    mask: Any = None,
) -> Any:
    """BASED's linear (Taylor) or sliding-window attention layer.

    Args:
        q: ``(..., H, n, d_k)`` (for the linear layer, the feature-dimension projection, ``d' = d_k``).
        k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``; query head ``h`` reads KV head
            ``h // (H / H_kv)``.
        layer: ``"linear"`` (Taylor linear attention) or ``"window"`` (sliding-window softmax).
        causal: linear layer: sum over ``j <= i`` (needs ``n == m``); the window layer is causal only.
        eps, layout, form, chunk_size, initial_state, return_state: linear layer only: the normaliser's
            ε (1e-12), the feature layout (``full``/``compact``), the evaluation
            (``quadratic``/``recurrent``/``chunked``), the chunk length, and the recurrent state
            ``(S, z)`` to resume from / to return.
        window, scale, mask: window layer only: the window ``w`` (default 64), σ (default
            ``d_k ** -0.5``) and a boolean mask broadcastable to ``(..., n, m)`` (True = attend).

    Returns:
        ``(..., H, n, d_v)`` float64 (and the state for ``return_state``). A window-layer query with no
        visible key returns zeros.
    """
    check_layer_options(
        layer,
        window=window,
        scale=scale,
        mask=mask,
        eps=eps,
        layout=layout,
        form=form,
        chunk_size=chunk_size,
        initial_state=initial_state,
        return_state=return_state,
    )
    if layer == "linear":
        return _linear(
            q,
            k,
            v,
            causal=causal,
            eps=eps,
            layout=layout,
            form=form,
            chunk_size=chunk_size,
            initial_state=initial_state,
            return_state=return_state,
        )
    return _window(q, k, v, causal=causal, window=DEFAULT_WINDOW if window is None else window, scale=scale, mask=mask)
