"""Python-side helpers shared by the Numba backward (VJP) kernels.

Kernels write one gradient slice per *output* slice ``b`` of the broadcast batch (so parallel tasks
never write to the same memory); the helpers here fold those slices back onto the input arrays they
came from, through the same int64 index maps the forward kernels use (GQA: the query heads of a group
sum into their KV head; broadcast leading dims: the copies sum into the one input slice).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnlab.fastpath.numba._common import precision
from attnlab.validation import as_float_array


def upstream_gradient(grad_out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Validate ``grad_out`` (the gradient of the loss w.r.t. the output) against the output ``shape``.

    Returns a C-contiguous array in ``dtype``; a wrong shape raises ``ValueError`` naming ``grad_out``.
    """
    with precision(dtype):
        grad = as_float_array("grad_out", grad_out)
    if grad.shape != tuple(shape):
        raise ValueError(f"grad_out: expected the output shape {tuple(shape)}, got {grad.shape}")
    return np.ascontiguousarray(grad, dtype=dtype)


def fold_slices(per_output: np.ndarray, index_map: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum the per-output-slice gradients ``(N_out, r, c)`` into the input slices ``index_map`` points at.

    ``shape`` is the input's shape ``(..., r, c)``; returns an array of that shape in the same dtype.
    """
    sources = int(np.prod(shape[:-2], dtype=np.int64))
    if sources == len(index_map) and np.array_equal(index_map, np.arange(sources)):
        return per_output.reshape(shape)
    folded = np.zeros((sources, *per_output.shape[1:]), dtype=per_output.dtype)
    for b, source in enumerate(index_map):
        folded[source] += per_output[b]
    return folded.reshape(shape)


def sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reduce a gradient of a broadcast view back to the shape of the array that was broadcast."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.ascontiguousarray(grad)
