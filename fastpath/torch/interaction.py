"""Multi-head factorized interaction operator with batched matmuls.

Source: Ghodsi, unified factorized framework (arXiv 2512.15115): ``y_i = Σ_j Σ_h α^h_ij U_h x_j``,
i.e. ``Y = Σ_h (α_h X) U_hᵀ`` in row layout. The head sum is folded into one GEMM by concatenating
heads on the contraction axis: ``Y = [α_1X | … | α_HX] · [U_1ᵀ; …; U_Hᵀ]``; with low-rank maps the
cheaper order ``α_h (X W_V^h)`` is used before the ``W_O`` GEMM.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import as_option_tensor, broadcast_lead, check_tensor, torch_checked
from attnlab.fastpath.torch.tensor import tensor_max_abs
from attnlab.reference.interaction import check_interaction_magnitudes, check_value_maps_given
from attnlab.validation import checked_call


def _as_tensor(
    name: str, value: Any, like: torch.Tensor, ndim: int | None = None, layout: str = "(..., n, d)"
) -> torch.Tensor:
    """A positional array argument: a tensor of ``like``'s dtype and device."""
    tensor = check_tensor(name, value, min_ndim=ndim or 2, ndim=ndim, layout=layout)
    if tensor.dtype != like.dtype or tensor.device != like.device:
        raise TypeError(f"{name}: expected {like.dtype} on {like.device} like x, got {tensor.dtype} on {tensor.device}")
    return tensor


def _as_map(name: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    """A keyword value map (tensor or NumPy array), moved to ``like``'s dtype and device."""
    tensor = as_option_tensor(name, value, like, min_ndim=3)
    if tensor.ndim != 3:
        raise ValueError(f"{name}: expected a 3-d array (H, rows, cols), got shape {tuple(tensor.shape)}")
    return tensor


def check_interaction(
    x: Any, alpha: Any, u: Any, w_v: Any, w_o: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """Validate the operator's inputs; returns ``x, α, U or None, (W_V, W_O) or ()``.

    ``x``, ``alpha`` and ``u`` are tensors of one dtype and device (``alpha`` may be a callable of ``x``);
    the keyword maps ``w_v``, ``w_o`` may also be NumPy arrays, converted to ``x``'s dtype and device."""
    x = check_tensor("x", x)
    n, d_model = x.shape[-2:]
    coeffs = checked_call("alpha", alpha, x) if callable(alpha) else alpha
    coeffs = _as_tensor("alpha", coeffs, x, layout=f"(..., H, {n}, {n})")
    if coeffs.ndim < 3 or coeffs.shape[-2:] != (n, n):
        raise ValueError(f"alpha: expected shape (..., H, {n}, {n}), got {tuple(coeffs.shape)}")
    broadcast_lead(("x", "alpha"), (x, coeffs[..., 0, :, :]))
    check_value_maps_given(u, w_v, w_o)
    dense: torch.Tensor | None = None
    low_rank: tuple[torch.Tensor, ...] = ()
    if u is not None:
        dense = _as_tensor("u", u, x, ndim=3, layout="(H, D, D)")
        if dense.shape[1:] != (d_model, d_model):
            raise ValueError(f"u: expected shape (H, {d_model}, {d_model}), got {tuple(dense.shape)}")
        heads = dense.shape[0]
    else:
        wv, wo = _as_map("w_v", w_v, x), _as_map("w_o", w_o, x)
        if wv.shape[1] != d_model:
            raise ValueError(f"w_v: expected shape (H, {d_model}, d_v), got {tuple(wv.shape)}")
        if wo.shape != (wv.shape[0], wv.shape[2], d_model):
            raise ValueError(f"w_o: expected shape ({wv.shape[0]}, {wv.shape[2]}, {d_model}), got {tuple(wo.shape)}")
        low_rank, heads = (wv, wo), wv.shape[0]
    if coeffs.shape[-3] != heads:
        raise ValueError(f"alpha: expected {heads} heads on axis -3 (one per value map), got {tuple(coeffs.shape)}")
    check_interaction_magnitudes(x, coeffs, dense, low_rank, tensor_max_abs)
    return x, coeffs, dense, low_rank


@torch_checked
def factorized_interaction(x: Any, alpha: Any, u: Any = None, *, w_v: Any = None, w_o: Any = None) -> torch.Tensor:
    """Factorized interaction ``Y = Σ_h (α_h X) U_hᵀ`` (or ``Σ_h α_h X W_V^h W_O^h``).

    Args:
        x: ``(..., n, D)``; alpha: ``(..., H, n, n)`` tensor or a callable ``x -> alpha``;
        u: ``(H, D, D)`` tensor; or ``w_v (H, D, d_v)`` with ``w_o (H, d_v, D)`` (tensors or NumPy arrays).

    Returns:
        ``(..., n, D)``. Differentiable in every tensor argument.
    """
    x, coeffs, dense, low_rank = check_interaction(x, alpha, u, w_v, w_o)
    n, d_model = x.shape[-2:]
    lead = torch.broadcast_shapes(coeffs.shape[:-3], x.shape[:-2])
    if dense is not None:
        heads = dense.shape[0]
        mixed = coeffs @ x[..., None, :, :]  # (..., H, n, D)
        stacked = mixed.movedim(-3, -2).reshape(*lead, n, heads * d_model)  # [α_1X | … | α_HX]
        return stacked @ dense.transpose(-1, -2).reshape(heads * d_model, d_model)
    wv, wo = low_rank
    heads, d_v = wv.shape[0], wv.shape[2]
    projected = x[..., None, :, :] @ wv  # (..., H, n, d_v)
    mixed = coeffs @ projected
    stacked = mixed.movedim(-3, -2).reshape(*lead, n, heads * d_v)
    return stacked @ wo.reshape(heads * d_v, d_model)
