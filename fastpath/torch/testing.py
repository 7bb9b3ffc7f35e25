"""Helpers for checking the torch fast paths against the float64 references.

* :func:`to_torch_sample` turns a NumPy sample (arrays, boolean masks, :class:`MLAWeights`) into
  tensors of a dtype and device (the registry's ``prepare`` hook);
* :func:`check_forward` asserts the tolerance rule ``err(fast, ref64) <= k·err(composed at dtype,
  ref64) + floor`` against the NumPy float64 reference;
* :func:`check_gradients` asserts the same rule on gradients, with the composed-torch float64
  autograd gradients as ``ref64``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch.mla import TorchMLAWeights
from attnlab.reference.mla import MLAWeights
from attnlab.testing import Error, assert_within_rule

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def torch_dtype(dtype: Any) -> torch.dtype:
    """A torch dtype from a name (``"float32"``), a torch dtype or a NumPy dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise TypeError(f"dtype: expected one of {sorted(TORCH_DTYPES)}, got {dtype!r}") from None


def _convert(value: Any, dtype: torch.dtype, device: torch.device | str, requires_grad: bool) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == np.bool_:
            return torch.from_numpy(np.ascontiguousarray(value)).to(device)
        tensor = torch.as_tensor(value, device=device).to(dtype)
        return tensor.requires_grad_(requires_grad) if value.dtype.kind == "f" else tensor
    if isinstance(value, MLAWeights):
        return TorchMLAWeights.from_numpy(value, dtype, device)
    return value


def to_torch_sample(
    args: Sequence[Any],
    kwargs: dict[str, Any],
    dtype: Any,
    device: Any = "cpu",
    *,
    requires_grad: Sequence[int] = (),
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Float arrays -> tensors of ``dtype`` on ``device`` (leaves with ``requires_grad`` for the listed
    positional indices), boolean arrays -> bool tensors, :class:`MLAWeights` -> :class:`TorchMLAWeights`."""
    dt = torch_dtype(dtype)
    new_args = tuple(_convert(a, dt, device, i in requires_grad) for i, a in enumerate(args))
    new_kwargs = {key: _convert(val, dt, device, False) for key, val in kwargs.items()}
    return new_args, new_kwargs


def check_forward(
    name: str,
    fast: Callable[..., Any],
    composed: Callable[..., Any],
    reference: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    dtype: str,
    *,
    device: str = "cpu",
    fudge: float = 5.0,
    floors: dict[str, float] | None = None,
) -> tuple[Error, float]:
    """Forward parity under the tolerance rule; returns the fast path's error and its bound."""
    ref64 = reference(*args, **kwargs)
    targs, tkwargs = to_torch_sample(args, kwargs, dtype, device)
    got = fast(*targs, **tkwargs)
    lowp = composed(*targs, **tkwargs)
    assert got.dtype == torch_dtype(dtype), f"{name}: output dtype {got.dtype}, expected {dtype}"
    assert got.device.type == torch.device(device).type, f"{name}: output on {got.device}, expected {device}"
    return assert_within_rule(name, ref64, got, lowp, dtype, fudge=fudge, floors=floors)


def _grads(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    dtype: str,
    device: str,
    grad_args: Sequence[int],
    upstream: np.ndarray,
) -> list[torch.Tensor]:
    targs, tkwargs = to_torch_sample(args, kwargs, dtype, device, requires_grad=grad_args)
    out = fn(*targs, **tkwargs)
    g = torch.as_tensor(upstream, device=device).to(out.dtype)
    inputs = [targs[i] for i in grad_args]
    return list(torch.autograd.grad(out, inputs, g, allow_unused=True))


def check_gradients(
    name: str,
    fast: Callable[..., Any],
    composed: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    dtype: str,
    grad_args: Sequence[int],
    *,
    device: str = "cpu",
    seed: int = 0,
    fudge: float = 5.0,
    floors: dict[str, float] | None = None,
) -> list[tuple[Error, float]]:
    """Gradient parity: autograd of ``fast`` at ``dtype`` vs composed-torch float64 gradients, under the
    rule with the composed gradients at ``dtype`` as "the same math at the fast dtype".

    The upstream gradient is a seeded standard normal of the output's shape.
    """
    targs64, tkwargs64 = to_torch_sample(args, kwargs, "float64", "cpu", requires_grad=grad_args)
    out64 = composed(*targs64, **tkwargs64)
    upstream = np.random.default_rng(seed).standard_normal(tuple(out64.shape))
    want = torch.autograd.grad(out64, [targs64[i] for i in grad_args], torch.as_tensor(upstream), allow_unused=True)
    got = _grads(fast, args, kwargs, dtype, device, grad_args, upstream)
    lowp = _grads(composed, args, kwargs, dtype, device, grad_args, upstream)
    results = []
    for idx, w, g, lp in zip(grad_args, want, got, lowp):
        zero = torch.zeros(args[idx].shape, dtype=torch.float64)
        results.append(
            assert_within_rule(
                f"{name} d/d(arg {idx})",
                zero if w is None else w,
                zero if g is None else g,
                zero if lp is None else lp,
                dtype,
                fudge=fudge,
                floors=floors,
            )
        )
    return results
