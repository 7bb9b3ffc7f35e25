"""Hedgehog (Zhang et al. 2024): linear attention with a learnable, softmax-mimicking feature map.

Source: Michael Zhang, Kush Bhatia, Hermann Kumbong, Christopher Ré, "The Hedgehog & the Porcupine:
Expressive Linear Attentions with Softmax Mimicry", ICLR 2024, arXiv 2402.04347 (abstract: a trainable
per-head MLP with an element-wise exponential, distilled to softmax attention weights). Code variants:
HazyResearch/lolcats (``src/model/feature_map.py``: ``softmax_dim``, ``exp_dim``) and
flash-linear-attention (``fla/modules/feature_map.py::HedgehogFeatureMap``).

Per head, ``y = x W + b`` (``W ∈ R^{d_k × d'}``, identity and zero by default: the paper's
initialisation), then a feature map ``φ(x) ∈ R^{2d'}``:

* ``paper``:       ``[exp(y), exp(−y)]`` (the paper's operator, evaluated as written: it overflows once
  ``|y| > 709`` in float64; the fast paths evaluate it shifted, which cancels);
* ``softmax_dim``: ``[softmax(y), softmax(−y)]`` (lolcats), each softmax over the ``d'`` features;
* ``exp_dim``:     ``[exp(y − max y), exp(−y + min y)]`` (lolcats);
* ``fla``:         ``softmax([2y, −2y])`` over all ``2d'`` features (fla).

Attention is normalised linear attention of the features,
``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)`` over ``j <= i`` when causal (``ε = 1e-12``,
lolcats'). A per-token factor on ``φ(q_i)`` cancels (up to ε), so the query normalisers of ``fla`` are
harmless; per-token factors on ``φ(k_j)`` re-weight key ``j``, so the four variants are different
operators, not stabilisations of one. ``key_weight``/``key_bias`` give the keys their own projection
(default: tied to the queries'). Evaluations ``quadratic``, ``recurrent`` (resumable prefix state) and
``chunked`` agree to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.reference.linear import check_chunked_is_causal, linear_attention_chunked, linear_attention_recurrent
from attnlab.validation import (
    InputOverflow,
    as_float_array,
    check_bool,
    check_last_dim,
    check_positive_int,
    expand_kv_heads,
    max_abs,
    overflow_checked,
)

VARIANTS = ("paper", "softmax_dim", "exp_dim", "fla")
FORMS = ("quadratic", "recurrent", "chunked")
DEFAULT_EPS = 1e-12


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hedgehog_project(name: str, x: np.ndarray, weight: Any, bias: Any) -> np.ndarray:
    """``y = x W + b`` with ``W`` ``(..., d_k, d')`` and ``b`` ``(..., d')`` broadcast over ``x``'s leading dims."""
    y = x
    if weight is not None:
        w = as_float_array(f"{name}weight", weight, min_ndim=2, layout="(..., d_k, d')")
        if w.shape[-2] != x.shape[-1]:
            raise ValueError(
                f"{name}weight: expected shape (..., {x.shape[-1]}, d') matching d_k = {x.shape[-1]}, got {w.shape}"
            )
        try:
            y = x @ w
        except ValueError:
            raise ValueError(
                f"{name}weight: leading dims {w.shape[:-2]} do not broadcast against {x.shape[:-2]}"
            ) from None
    if bias is not None:
        b = as_float_array(f"{name}bias", bias, min_ndim=1, layout="(..., d')")
        if b.shape[-1] != y.shape[-1]:
            raise ValueError(f"{name}bias: expected last axis d' = {y.shape[-1]}, got shape {b.shape}")
        try:
            y = y + b[..., None, :]
        except ValueError:
            raise ValueError(
                f"{name}bias: leading dims {b.shape[:-1]} do not broadcast against {y.shape[:-2]}"
            ) from None
    return y


def hedgehog_features(y: np.ndarray, *, variant: str = "paper", shift: np.ndarray | None = None) -> np.ndarray:
    """``φ`` of projected inputs ``y`` ``(..., d')`` → ``(..., 2d')`` (strictly positive).

    ``shift`` (paper variant only) is subtracted from both exponents, ``[e^{y − μ}, e^{−y − μ}]``: a
    per-token (queries) or per-slice (keys) factor that cancels in normalised attention up to ε; the fast
    paths use it to stay finite.
    """
    if variant == "paper":
        mu = 0.0 if shift is None else shift
        return np.concatenate([np.exp(y - mu), np.exp(-y - mu)], axis=-1)
    if variant == "softmax_dim":
        return np.concatenate([_softmax(y), _softmax(-y)], axis=-1)
    if variant == "exp_dim":
        return np.concatenate(
            [np.exp(y - y.max(axis=-1, keepdims=True)), np.exp(y.min(axis=-1, keepdims=True) - y)], axis=-1
        )
    if variant == "fla":
        return _softmax(np.concatenate([2.0 * y, -2.0 * y], axis=-1))
    raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")


#: The paper's features ``e^{±y}`` enter the reference unshifted: ``e^{y_q + y_k}`` must stay finite in float64.
PAPER_EXPONENT_LIMIT = 700.0


def check_paper_exponents(yq_max: float, yk_max: float) -> None:
    """Reject projections for which the paper's feature products ``e^{|y_q| + |y_k|}`` overflow float64 (the
    reference's range; the fast paths evaluate shifted features, but stay within it)."""
    if not yq_max + yk_max < PAPER_EXPONENT_LIMIT:
        # the checked operator's wrapper names the arguments of the call
        raise InputOverflow((), "float64", f"the features e^(y_q + y_k) reach e^{yq_max + yk_max:.4g}")


def check_options(*, variant: Any, form: Any, causal: Any, eps: Any, chunk_size: Any) -> tuple[bool, float]:
    """Validate the evaluation options; returns ``(causal, eps)``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    causal = check_bool("causal", causal)
    if (
        isinstance(eps, (bool, np.bool_))
        or not isinstance(eps, (int, float, np.number))
        or not (np.isfinite(eps) and eps >= 0)
    ):
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    check_chunked_is_causal(form, causal)
    check_positive_int("chunk_size", chunk_size)
    return causal, float(eps)


def hedgehog_fast_path_options(
    path: str, *, initial_state: Any, return_state: Any, **options: Any
) -> tuple[bool, float]:
    """Validate a stateless fast path's options (``path`` names it in the message); returns ``(causal, eps)``."""
    causal, eps = check_options(**options)
    if initial_state is not None or check_bool("return_state", return_state):
        name = "initial_state" if initial_state is not None else "return_state"
        raise ValueError(f"{name}: the {path} path carries no recurrent state; use the reference's 'recurrent' form")
    return causal, eps


def check_feature_sizes(query_features: int, key_features: int) -> None:
    if query_features != key_features:
        raise ValueError(
            f"key_weight: the key features have {key_features} entries, the query features {query_features}"
        )


def feature_attention(fq: np.ndarray, fk: np.ndarray, v: np.ndarray, *, causal: bool, eps: float) -> np.ndarray:
    """Normalised linear attention of given features, parallel form: ``A = Φ_q Φ_kᵀ`` (lower-triangular
    when causal), ``O = A V ⊘ (A 1 + ε)``."""
    kernel = fq @ np.swapaxes(fk, -1, -2)
    if causal:
        kernel = np.tril(kernel)
    return (kernel @ v) / (kernel.sum(axis=-1, keepdims=True) + eps)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@overflow_checked
def hedgehog_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    weight: Any = None,
    bias: Any = None,
    key_weight: Any = None,
    key_bias: Any = None,
    variant: str = "paper",
    causal: bool = False,
    eps: float = DEFAULT_EPS,
    form: str = "quadratic",
    chunk_size: int = 64,
    initial_state: Any = None,
    return_state: bool = False,
) -> Any:
    """Hedgehog linear attention ``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)`` (query head ``h``
            reads KV head ``h // (H / H_kv)``; the projections apply after that map).
        weight, bias: the feature projection ``W`` ``(..., d_k, d')`` and ``b`` ``(..., d')``, broadcast
            over the leading (batch, head) dims; None: identity / zero.
        key_weight, key_bias: the keys' own projection (None: the queries').
        variant: ``paper``, ``softmax_dim``, ``exp_dim`` or ``fla`` (see the module docstring).
        causal: sum over ``j <= i`` only (needs ``n == m``).
        eps: the normaliser's ε (1e-12).
        form: ``quadratic`` (parallel), ``recurrent`` (prefix state) or ``chunked`` (causal only).
        chunk_size: tokens per chunk of the chunked form.
        initial_state, return_state: the recurrent form's state ``(S, z)`` (shapes ``(..., 2d', d_v)``
            and ``(..., 2d')``) to resume from / to return.

    Returns:
        ``(..., H, n, d_v)`` float64 (and the state for ``return_state``).
    """
    causal, eps = check_options(variant=variant, form=form, causal=causal, eps=eps, chunk_size=chunk_size)
    return_state = check_bool("return_state", return_state)
    qa, ka, va = (as_float_array(name, x) for name, x in (("q", q), ("k", k), ("v", v)))
    check_last_dim("k", ka, qa.shape[-1], "d_k, the last axis of q")
    qa, ka, va = expand_kv_heads(qa, ka, va)
    if causal and qa.shape[-2] != ka.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={qa.shape[-2]}, m={ka.shape[-2]}"
        )
    if (initial_state is not None or return_state) and form != "recurrent":
        name = "initial_state" if initial_state is not None else "return_state"
        raise ValueError(f"{name}: state is carried by the 'recurrent' form only")
    yq = hedgehog_project("", qa, weight, bias)
    tied = key_weight is None and key_bias is None
    yk = hedgehog_project("", ka, weight, bias) if tied else hedgehog_project("key_", ka, key_weight, key_bias)
    if variant == "paper":
        check_paper_exponents(max_abs(yq), max_abs(yk))
    fq = hedgehog_features(yq, variant=variant)
    fk = hedgehog_features(yk, variant=variant)
    check_feature_sizes(fq.shape[-1], fk.shape[-1])
    lead = np.broadcast_shapes(fq.shape[:-2], fk.shape[:-2], va.shape[:-2])
    fq, fk, va = (np.broadcast_to(x, (*lead, *x.shape[-2:])) for x in (fq, fk, va))
    if form == "recurrent":
        return linear_attention_recurrent(
            fq,
            fk,
            va,
            feature_map=_identity,
            causal=causal,
            eps=eps,
            initial_state=initial_state,
            return_state=return_state,
        )
    if form == "chunked":
        return linear_attention_chunked(
            fq, fk, va, feature_map=_identity, chunk_size=check_positive_int("chunk_size", chunk_size), eps=eps
        )
    return feature_attention(fq, fk, va, causal=causal, eps=eps)
