"""BASED in torch (Arora et al. 2024, arXiv 2402.18668; see :mod:`attnlab.reference.based`).

Linear layer: the Taylor features (full layout: ``[1, x/d'^{1/4}, vec(x xᵀ)/(√2 √d')]``; compact:
fla's triangular packing) and chunked normalised linear attention. Window layer: the bottom-right
band ``i + m − n − w < j <= i + m − n`` as a boolean mask on SDPA. Half-precision inputs are computed
in float32 (the second-order features square the inputs). Differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_positive_int,
    check_scale,
    expand_kv_heads,
    torch_checked,
)
from attnlab.fastpath.torch._linear_chunks import normalised_linear
from attnlab.fastpath.torch.softmax import check_qkv, sdpa
from attnlab.reference.based import DEFAULT_EPS, DEFAULT_WINDOW, _check_eps, based_fast_path_options


def taylor_features(x: torch.Tensor, layout: str = "full") -> torch.Tensor:
    d = x.shape[-1]
    ones = torch.ones_like(x[..., :1])
    first = x / d**0.25
    outer = x[..., :, None] * x[..., None, :]
    if layout == "full":
        return torch.cat([ones, first, outer.reshape(*x.shape[:-1], d * d) / math.sqrt(2 * d)], dim=-1)
    rows, cols = torch.triu_indices(d, d, offset=1, device=x.device)
    diagonal = torch.diagonal(outer, dim1=-2, dim2=-1) / math.sqrt(2 * d)
    return torch.cat([ones, first, diagonal, outer[..., rows, cols] / math.sqrt(d)], dim=-1)


@torch_checked
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
) -> torch.Tensor:
    """BASED's linear or window layer (same call as the reference; ``form`` and ``chunk_size`` are
    validated, every form is evaluated by chunks; no recurrent state here)."""
    causal = based_fast_path_options(
        "torch",
        layer=layer,
        causal=causal,
        form=form,
        layout=layout,
        chunk_size=chunk_size,
        eps=eps,
        window=window,
        scale=scale,
        mask=mask,
        initial_state=initial_state,
        return_state=return_state,
    )
    q, k, v = check_qkv(q, k, v)
    dtype = q.dtype
    if layer == "window":
        if not causal:
            raise ValueError("causal: BASED's sliding-window layer is causal; expected causal=True")
        width = check_positive_int("window", DEFAULT_WINDOW if window is None else window)
        sigma = check_scale(scale, q.shape[-1] ** -0.5)
        n, m = q.shape[-2], k.shape[-2]
        i = torch.arange(n, device=q.device)[:, None] + (m - n)
        j = torch.arange(m, device=q.device)[None, :]
        allowed = (j <= i) & (j > i - width)
        user = allowed_mask(n, m, causal=False, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)
        return sdpa(q, k, v, scale=sigma, allowed=allowed if user is None else allowed & user)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    out = normalised_linear(
        taylor_features(q, layout), taylor_features(k, layout), v, causal=causal, eps=_check_eps(eps)
    )
    return out.to(dtype)
