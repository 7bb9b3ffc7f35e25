"""Generalized neighborhood attention in torch: the GNA window as a boolean mask, then SDPA.

Window semantics of :mod:`attnlab.reference.gna` (Hassani et al. 2025, arXiv 2504.16922, with
NATTEN's mask semantics): per axis, each position's window is a range ``[lo, hi]`` of same-residue
positions in dilated coordinates, computed here from the stride-group leader; the N-d mask is their AND
over the grid axes. The attention itself is PyTorch's SDPA (fused kernels where the mask allows), rows
without a visible key zeroed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import allowed_mask, check_scale, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv, sdpa
from attnlab.reference.gna import check_window


def axis_bounds(
    length: int, kernel: int, stride: int, dilation: int, causal: bool, device: Any
) -> tuple[torch.Tensor, ...]:
    """Per position ``i``: its residue and the inclusive window ``[lo, hi]`` in dilated coordinates."""
    i = torch.arange(length, device=device)
    residue = i % dilation
    ip = i // dilation
    group = torch.div(length - residue + dilation - 1, dilation, rounding_mode="floor")
    if causal:
        leader = torch.minimum((ip // stride) * stride + stride - 1, group - 1)
        return residue, torch.clamp(leader - kernel + 1, min=0), ip
    left, right = kernel // 2, kernel // 2 + kernel % 2 - 1
    leader = torch.minimum((ip // stride) * stride + stride // 2, group - 1)
    centre = torch.minimum(torch.clamp(leader, min=left), group - 1 - right)
    return residue, centre - left, centre + right


def window_mask(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    causal: tuple[bool, ...],
    device: Any,
) -> torch.Tensor:
    """``(n, n)`` booleans: the AND over grid axes of the per-axis windows."""
    n = math.prod(spatial)
    flat = torch.arange(n, device=device)
    allowed = torch.ones(n, n, dtype=torch.bool, device=device)
    step = n
    for a, length in enumerate(spatial):
        step //= length
        coord = (flat // step) % length
        residue, lo, hi = axis_bounds(length, kernel[a], stride[a], dilation[a], causal[a], device)
        jr, jp = coord % dilation[a], coord // dilation[a]
        ci = coord[:, None]
        allowed &= (residue[ci] == jr[None, :]) & (lo[ci] <= jp[None, :]) & (jp[None, :] <= hi[ci])
    return allowed


@torch_checked
def gna_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    kernel_size: Any,
    spatial_shape: Any = None,
    stride: Any = 1,
    dilation: Any = 1,
    causal: Any = False,
    scale: float | None = None,
    mask: Any = None,
) -> torch.Tensor:
    """GNA on SDPA (same call as :func:`attnlab.reference.gna.gna_attention`); differentiable."""
    q, k, v = check_qkv(q, k, v)
    n = q.shape[-2]
    if k.shape[-2] != n:
        raise ValueError(
            f"q/k: neighborhood attention needs one token grid, got n={n} queries and m={k.shape[-2]} keys"
        )
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    spatial, kernel, strides, dilations, causal_axes = check_window(
        spatial_shape, n, kernel_size, stride, dilation, causal
    )
    allowed = window_mask(spatial, kernel, strides, dilations, causal_axes, q.device)
    user = allowed_mask(n, n, causal=False, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
    if user is not None:
        allowed = allowed & user
    return sdpa(q, k, v, scale=sigma, allowed=allowed)
