"""Python-side plumbing shared by the Numba fast paths: dtype choice, validation, batch/head index maps.

Kernels see only C-contiguous 3-d arrays ``(N, rows, features)`` in float32 or float64 plus int64
*index maps*: entry ``b`` of a map says which slice of an input array feeds output slice ``b`` of the
broadcast batch. GQA (query head ``h`` reads KV head ``h // G``) and leading-dim broadcasting are
both expressed as index maps, so neither repeats nor broadcasts the arrays themselves, and every
kernel is compiled for just two signatures (float32 and float64).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from attnlab.validation import (
    allowed_positions,
    array_library,
    as_float_array,
    broadcast_batch,
    check_bool,
    check_kv_heads,
    gradients_checked,
    numba_checked,
    reference_precision,
)

__all__ = ["gradients_checked", "numba_checked"]

#: Empty stand-in passed to kernels when there is no boolean mask (keeps one compiled signature).
_NO_MASK = np.ones((1, 1, 1), dtype=np.uint8)


def fast_dtype(*arrays: Any) -> np.dtype:
    """float32 when every floating input is float32 or narrower, else float64.

    Non-float inputs are left to the validators, which reject them with a message naming the argument.
    """
    kinds = []
    for a in arrays:
        if isinstance(a, np.ndarray):
            kinds.append(a.dtype)
        elif isinstance(a, (list, tuple)) and array_library(a) is None:
            try:
                kinds.append(np.asarray(a).dtype)
            except (TypeError, ValueError):
                continue  # a ragged list: the validators reject it by name
    floats = [dt for dt in kinds if dt.kind == "f"]
    if floats and all(dt.itemsize <= 4 for dt in floats):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


@contextmanager
def precision(dtype: np.dtype) -> Iterator[None]:
    """Run the shared validators so they return arrays in ``dtype`` (no silent upcast to float64)."""
    with reference_precision(dtype):
        yield


def float_arrays(names: Sequence[str], arrays: Sequence[Any], dtype: np.dtype) -> list[np.ndarray]:
    """Validate each array with :func:`attnlab.validation.as_float_array` in ``dtype``."""
    with precision(dtype):
        return [as_float_array(name, arr) for name, arr in zip(names, arrays)]


def poisoned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Output buffer filled with NaN, so an element a kernel forgets to write fails every parity test."""
    return np.full(shape, np.nan, dtype=dtype)


def as_slices(x: np.ndarray) -> np.ndarray:
    """``(..., r, c)`` -> C-contiguous ``(prod(...), r, c)`` (a view when ``x`` is already contiguous)."""
    # Read-only inputs are copied: Numba types them apart, and a second signature means a recompile.
    return np.require(x.reshape(-1, *x.shape[-2:]), requirements=["C", "W"])


def _ids(lead: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(lead), dtype=np.int64).reshape(lead)


def attention_maps(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, names: tuple[str, str, str] = ("q", "k", "v")
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Broadcast batch shape and the query / KV index maps of an attention call.

    Same rules and messages as :func:`attnlab.validation.expand_kv_heads`: ``k``/``v`` share their
    leading dims and length; with fewer KV heads on axis -3, query head ``h`` reads KV head
    ``h // (H / H_kv)``; remaining leading dims broadcast.
    """
    _, kn, vn = names
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"{kn}/{vn}: expected the same leading dims and length (..., m, *), got {kn}{k.shape} and {vn}{v.shape}"
        )
    kv_ids = _ids(k.shape[:-2])
    group = check_kv_heads(q.shape, k.shape, names[:2])
    if group > 1:
        kv_ids = np.repeat(kv_ids, group, axis=-1)
    q_ids = _ids(q.shape[:-2])
    lead = broadcast_batch(names, (q_ids[..., None, None], kv_ids[..., None, None], kv_ids[..., None, None]))
    return lead, batch_map(q.shape[:-2], lead, q_ids), batch_map(k.shape[:-2], lead, kv_ids)


def batch_map(lead_of_input: tuple[int, ...], lead: tuple[int, ...], ids: np.ndarray | None = None) -> np.ndarray:
    """Index map (a fresh writable int64 array) of an input whose leading dims broadcast to ``lead``."""
    source = _ids(lead_of_input) if ids is None else ids
    return np.array(np.broadcast_to(source, lead).ravel(), dtype=np.int64)


def mask_slices(
    mask: Any, n: int, m: int, lead: tuple[int, ...], *, causal: Any, name: str = "mask"
) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Validate ``causal`` and ``mask`` and return ``(mask3 uint8, mask_map, has_mask, causal)``.

    The causal pattern stays implicit (the kernels test ``j <= i + m - n``), so nothing of size
    ``n·m`` is built for it; only a user mask is passed on, expanded to ``(n, m)`` per slice.
    """
    causal = check_bool("causal", causal)
    if mask is None:
        return _NO_MASK, np.zeros(math.prod(lead), dtype=np.int64), False, causal
    allowed = allowed_positions(n, m, causal=False, mask=mask, lead=lead, mask_name=name)
    mask_lead = allowed.shape[:-2]
    full = np.broadcast_to(allowed, (*mask_lead, n, m))
    mask3 = np.require(full.reshape(-1, n, m), requirements=["C", "W"]).view(np.uint8)
    return mask3, batch_map(mask_lead, lead), True, causal
