"""Input validation shared by every public operator.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
non-finite value, bad option) with a message that names the offending argument and states what was
expected, e.g. ``"k: expected shape (..., m, d_k) with d_k == 8 (the last axis of q), got (2, 5, 7)"``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

FloatArray = np.ndarray

_FLOAT_KINDS = ("f",)

_FLOAT64 = np.dtype(np.float64)
_COMPUTE_DTYPE: contextvars.ContextVar[np.dtype] = contextvars.ContextVar("attnlab_compute_dtype", default=_FLOAT64)


def compute_dtype() -> np.dtype:
    """The dtype reference operators compute in (float64 unless inside :func:`reference_precision`)."""
    return _COMPUTE_DTYPE.get()


@contextlib.contextmanager
def reference_precision(dtype: Any) -> Iterator[None]:
    """Run reference operators in ``dtype`` instead of float64.

    This is "the same math at the fast path's dtype" of the tolerance rule
    ``err(fast, ref64) <= k * err(ref at fast dtype, ref64) + floor``.
    """
    token = _COMPUTE_DTYPE.set(np.dtype(dtype))
    try:
        yield
    finally:
        _COMPUTE_DTYPE.reset(token)


def as_float_array(name: str, x: Any, *, min_ndim: int = 2, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a float64 array after checking its type, dtype, rank and finiteness.

    Accepts NumPy arrays (and array-likes such as nested lists of floats) of a floating dtype.
    Integer, boolean and complex inputs are rejected rather than silently cast: a reference operator
    that quietly rounds is a source of false agreement.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name}: expected a float array of shape (..., n, d), got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a float array, got an object array")
    if arr.dtype.kind not in _FLOAT_KINDS:
        raise TypeError(f"{name}: expected a floating dtype (float16/float32/float64), got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dims laid out (..., n, d), got shape {arr.shape}")
    if any(s == 0 for s in arr.shape[-2:]) and arr.ndim >= 2:
        raise ValueError(f"{name}: expected non-empty token and feature axes, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf; every entry must be finite")
    return arr.astype(compute_dtype(), copy=False)


def check_last_dim(name: str, x: np.ndarray, expected: int, what: str) -> None:
    if x.shape[-1] != expected:
        raise ValueError(f"{name}: expected last axis of size {expected} ({what}), got shape {x.shape}")


def check_same_length(names: Sequence[str], arrays: Sequence[np.ndarray], axis: int = -2) -> None:
    """All arrays must have the same size on ``axis`` (the token axis by default)."""
    sizes = [a.shape[axis] for a in arrays]
    if len(set(sizes)) > 1:
        detail = ", ".join(f"{n}{a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"{'/'.join(names)}: expected the same length on axis {axis}, got {detail}")


def check_scale(scale: Any, default: float, name: str = "scale") -> float:
    """Return ``default`` if ``scale`` is None, else check it is a positive finite real number."""
    if scale is None:
        return float(default)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.number)):
        raise TypeError(f"{name}: expected a positive float or None, got {type(scale).__name__}")
    value = float(scale)
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name}: expected a positive finite float, got {scale!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    if int(value) <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def broadcast_batch(names: Sequence[str], arrays: Sequence[np.ndarray], core_ndim: int = 2) -> tuple:
    """Broadcast the leading (batch/head) dims of several arrays; the last ``core_ndim`` stay."""
    try:
        return np.broadcast_shapes(*(a.shape[:-core_ndim] for a in arrays))
    except ValueError:
        detail = ", ".join(f"{n}{a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"{'/'.join(names)}: leading (batch/head) dims must broadcast, got {detail}") from None


def expand_kv_heads(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, names: tuple[str, str, str] = ("q", "k", "v")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the GQA/MQA head map and broadcast leading dims.

    When ``k``/``v`` carry fewer heads than ``q`` on axis -3, query head ``h`` uses KV head
    ``h // G`` with ``G = H / H_kv`` (contiguous groups, as in FlashAttention and ``enable_gqa``).
    Returns ``q, k, v`` with identical leading dims.
    """
    _, kn, vn = names
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"{kn}/{vn}: expected the same leading dims and length (..., m, *), got {kn}{k.shape} and {vn}{v.shape}"
        )
    if q.ndim >= 3 and k.ndim >= 3 and k.shape[-3] != q.shape[-3] and k.shape[-3] != 1:
        h, h_kv = q.shape[-3], k.shape[-3]
        if h_kv > h or h % h_kv != 0:
            raise ValueError(
                f"{kn}: expected a KV head count that divides the {h} query heads on axis -3 "
                f"(GQA/MQA), got {h_kv} heads in shape {k.shape}"
            )
        group = h // h_kv
        k = np.repeat(k, group, axis=-3)
        v = np.repeat(v, group, axis=-3)
    lead = broadcast_batch(names, (q, k, v))
    q = np.broadcast_to(q, (*lead, *q.shape[-2:]))
    k = np.broadcast_to(k, (*lead, *k.shape[-2:]))
    v = np.broadcast_to(v, (*lead, *v.shape[-2:]))
    return q, k, v


def allowed_positions(
    n: int,
    m: int,
    *,
    causal: bool,
    mask: Any,
    lead: tuple[int, ...] = (),
    mask_name: str = "mask",
) -> np.ndarray:
    """Boolean ``(..., n, m)`` array of query/key pairs that may attend (True = attend).

    ``causal`` uses bottom-right alignment: key ``j`` is visible to query ``i`` iff
    ``j <= i + m - n`` (FlashAttention >= 2.1; the last query sees every key).  ``mask`` must be a
    boolean array broadcastable to ``(*lead, n, m)``.
    """
    causal = check_bool("causal", causal)
    allowed = np.ones((n, m), dtype=bool)
    if causal:
        allowed = np.tril(allowed, k=m - n)
    if mask is None:
        return allowed
    if isinstance(mask, (bool, np.bool_)) or not hasattr(mask, "dtype"):
        mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"{mask_name}: expected a boolean array (True = attend) broadcastable to (..., {n}, {m}), "
            f"got dtype {mask.dtype}"
        )
    target = (*lead, n, m)
    if mask.ndim < 2 or mask.ndim > len(target):
        raise ValueError(f"{mask_name}: expected a boolean array broadcastable to {target}, got shape {mask.shape}")
    try:
        np.broadcast_shapes(mask.shape, target)
        if np.broadcast_shapes(mask.shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{mask_name}: expected a boolean array broadcastable to {target}, got shape {mask.shape}"
        ) from None
    return allowed & mask
