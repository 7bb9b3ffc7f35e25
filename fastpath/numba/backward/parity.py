"""Gradient parity of a Numba VJP against torch autograd of the composed reference math.

Ground truth is :mod:`attnlab.fastpath.torch.composed` run in float64 under autograd; "the same math
at the fast dtype" of the tolerance rule is the same composed function run in that dtype. Used by the
backward tests and by the speed/parity report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from attnlab.testing import Error, assert_within_rule


def autograd_gradients(
    composed: Callable[..., Any], arrays: Sequence[np.ndarray], kwargs: dict[str, Any], grad_out: np.ndarray, dtype: str
) -> list[np.ndarray | None]:
    """Gradients of ``sum(composed(*arrays, **kwargs) * grad_out)`` w.r.t. each array, in ``dtype``
    (``None`` where the math has no gradient path, e.g. sign codes)."""
    import torch

    tensors = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in arrays]
    options = {
        key: torch.from_numpy(np.ascontiguousarray(val)) if isinstance(val, np.ndarray) else val
        for key, val in kwargs.items()
    }
    out = composed(*tensors, **options)
    (out * torch.tensor(grad_out, dtype=out.dtype)).sum().backward()
    return [None if t.grad is None else t.grad.numpy().astype(np.float64) for t in tensors]


def check_vjp(
    name: str,
    vjp: Callable[..., tuple[np.ndarray, ...]],
    composed: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    kwargs: dict[str, Any],
    dtype: str,
    *,
    seed: int = 5,
) -> list[tuple[Error, float]]:
    """Run ``vjp`` at ``dtype`` on ``arrays`` and assert every gradient obeys the tolerance rule.

    ``kwargs`` are the operator's options, given to both sides (NumPy arrays become tensors for torch).
    Returns the ``(error, bound)`` of each gradient (bound ``0`` where the reference has no gradient and
    the VJP must return exact zeros).
    """
    golden_out = composed_output_shape(composed, arrays, kwargs)
    grad_out = np.random.default_rng(seed).standard_normal(golden_out)
    golden = autograd_gradients(composed, arrays, kwargs, grad_out, "float64")
    lowp = autograd_gradients(composed, arrays, kwargs, grad_out, dtype)
    cast = [np.ascontiguousarray(a, dtype=np.dtype(dtype)) for a in arrays]
    got = vjp(grad_out.astype(dtype), *cast, **kwargs)
    assert len(got) == len(arrays), f"{name}: {len(got)} gradients for {len(arrays)} arrays"
    results = []
    for index, (g64, glow, fast, arg) in enumerate(zip(golden, lowp, got, cast)):
        assert fast.shape == arg.shape, f"{name} grad[{index}]: shape {fast.shape} != {arg.shape}"
        assert fast.dtype == arg.dtype, f"{name} grad[{index}]: dtype {fast.dtype} != {arg.dtype}"
        if g64 is None:
            assert not np.any(fast), f"{name} grad[{index}]: the reference has no gradient, the VJP is non-zero"
            results.append((Error(0.0, 0.0), 0.0))
            continue
        results.append(assert_within_rule(f"{name} grad[{index}]", g64, fast, glow, dtype))
    return results


def composed_output_shape(composed: Callable[..., Any], arrays: Sequence[np.ndarray], kwargs: dict[str, Any]) -> tuple:
    """Shape of the composed operator's output (evaluated once in float64 without gradients)."""
    import torch

    with torch.no_grad():
        options = {
            key: torch.from_numpy(np.ascontiguousarray(val)) if isinstance(val, np.ndarray) else val
            for key, val in kwargs.items()
        }
        return tuple(composed(*(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays), **options).shape)


#: (batch, heads, kv_heads, n, m, d, d_v, causal, masked) cases shared by the (q, k, v) VJP tests:
#: length 1, odd lengths, GQA, m != n, masks with an empty row, causal rows before the first key.
QKV_CASES: tuple[tuple[str, tuple], ...] = (
    ("n1", (1, 2, 2, 1, 1, 8, 4, False, False)),
    ("n63-causal-gqa", (1, 2, 1, 63, 63, 16, 8, True, False)),
    ("n100-mask-empty-row-gqa", (2, 4, 2, 100, 100, 8, 8, False, True)),
    ("n64-m80-causal", (1, 2, 2, 64, 80, 32, 16, True, False)),
    ("n128", (1, 1, 1, 128, 128, 64, 8, False, False)),
    ("n100-m70-causal-mask-rows-before-first-key", (1, 2, 2, 100, 70, 8, 4, True, True)),
)


def qkv_sample(case: tuple, seed: int = 0) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Seeded ``[q, k, v]`` and options for a :data:`QKV_CASES` entry (a masked case empties row n // 2)."""
    batch, heads, kv_heads, n, m, d, d_v, causal, masked = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d))
    k = rng.standard_normal((batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    kwargs: dict[str, Any] = {"causal": causal}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False  # a fully masked row: zero gradients, no NaN
        kwargs["mask"] = mask
    return [q, k, v], kwargs
