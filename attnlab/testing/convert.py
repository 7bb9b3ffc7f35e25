"""Casting a sample for an implementation: NumPy arrays or torch tensors of a dtype on a device.

Float arrays become arrays of ``dtype`` (NumPy kinds) or tensors of ``dtype`` on ``device`` (torch
kinds); complex arrays become the complex dtype of the same width; boolean arrays become boolean arrays
or tensors; everything else (scalars, strings, weight dataclasses) passes through unchanged, and an
implementation converts its own structured arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.core import SampleInput

TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")
NUMPY_DTYPES = ("float16", "float32", "float64")
_COMPLEX_OF = {"float32": "complex64", "float64": "complex128", "float16": "complex64", "bfloat16": "complex64"}


def torch_dtype(name: str) -> Any:
    import torch

    if name not in TORCH_DTYPES:
        raise ValueError(f"dtype: expected one of {TORCH_DTYPES}, got {name!r}")
    return getattr(torch, name)


def _numpy(value: Any, dtype: str) -> Any:
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype == np.bool_:
        return value
    if np.iscomplexobj(value):
        return np.ascontiguousarray(value, dtype=np.dtype(_COMPLEX_OF[dtype]))
    if value.dtype.kind == "f":
        if dtype not in NUMPY_DTYPES:
            raise ValueError(f"dtype: NumPy has no {dtype}; expected one of {NUMPY_DTYPES}")
        return np.ascontiguousarray(value, dtype=np.dtype(dtype))
    return value


def _torch(value: Any, dtype: str, device: str, grad: bool) -> Any:
    if not isinstance(value, np.ndarray):
        return value
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(value))
    if value.dtype == np.bool_ or value.dtype.kind in "iu":
        return tensor.to(device)
    target = getattr(torch, _COMPLEX_OF[dtype]) if np.iscomplexobj(value) else torch_dtype(dtype)
    tensor = tensor.to(device=device, dtype=target)
    return tensor.requires_grad_(True) if grad else tensor


def convert(
    sample: SampleInput,
    kind: str,
    dtype: str,
    device: str = "cpu",
    *,
    requires_grad: Sequence[int] = (),
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of ``sample`` for an implementation of ``kind`` (``numpy`` or ``torch``)."""
    if kind == "numpy":
        if device != "cpu":
            raise ValueError(f"device: NumPy implementations run on the CPU, got {device!r}")
        return tuple(_numpy(a, dtype) for a in sample.args), {k: _numpy(v, dtype) for k, v in sample.kwargs.items()}
    if kind == "torch":
        args = tuple(_torch(a, dtype, device, i in requires_grad) for i, a in enumerate(sample.args))
        return args, {k: _torch(v, dtype, device, False) for k, v in sample.kwargs.items()}
    raise ValueError(f"kind: expected 'numpy' or 'torch', got {kind!r}")
