"""Hedgehog in torch (Zhang et al. 2024, arXiv 2402.04347; variants and conventions of
:mod:`attnlab.reference.hedgehog`): projected features, then chunked normalised linear attention.

The paper's features ``[e^y, e^{−y}]`` overflow float32 once ``|y| > 88``; they are evaluated shifted,
``e^{±y − μ_q}`` per query token and ``e^{±y − μ_k}`` with one ``μ_k`` per (batch, head) slice. Both
factors cancel between numerator and denominator, and ε is rescaled by ``e^{−μ_q − μ_k}`` per row, so
the operator is unchanged. Half-precision inputs are computed in float32. Differentiable.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import as_option_tensor, expand_kv_heads, torch_checked
from attnlab.fastpath.torch._linear_chunks import normalised_linear
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.fastpath.torch.tensor import tensor_max_abs
from attnlab.reference.hedgehog import (
    DEFAULT_EPS,
    check_feature_sizes,
    check_paper_exponents,
    hedgehog_fast_path_options,
)


def _project(name: str, x: torch.Tensor, weight: Any, bias: Any) -> torch.Tensor:
    """``x W + b`` with the reference's checks (messages name ``weight``/``bias`` or their ``key_`` forms)."""
    y = x
    if weight is not None:
        w = as_option_tensor(f"{name}weight", weight, x, min_ndim=2)
        if w.shape[-2] != x.shape[-1]:
            raise ValueError(
                f"{name}weight: expected shape (..., {x.shape[-1]}, d') matching d_k, got {tuple(w.shape)}"
            )
        try:
            y = x @ w
        except RuntimeError:
            raise ValueError(
                f"{name}weight: leading dims {tuple(w.shape[:-2])} do not broadcast against {tuple(x.shape[:-2])}"
            ) from None
    if bias is not None:
        b = as_option_tensor(f"{name}bias", bias, x, min_ndim=1)
        if b.shape[-1] != y.shape[-1]:
            raise ValueError(f"{name}bias: expected last axis d' = {y.shape[-1]}, got shape {tuple(b.shape)}")
        try:
            y = y + b[..., None, :]
        except RuntimeError:
            raise ValueError(
                f"{name}bias: leading dims {tuple(b.shape[:-1])} do not broadcast against {tuple(y.shape[:-2])}"
            ) from None
    return y


def _features(y: torch.Tensor, variant: str, shift: torch.Tensor | None) -> torch.Tensor:
    if variant == "paper":
        assert shift is not None
        return torch.cat([torch.exp(y - shift), torch.exp(-y - shift)], dim=-1)
    if variant == "softmax_dim":
        return torch.cat([torch.softmax(y, -1), torch.softmax(-y, -1)], dim=-1)
    if variant == "exp_dim":
        return torch.cat([torch.exp(y - y.amax(-1, keepdim=True)), torch.exp(y.amin(-1, keepdim=True) - y)], dim=-1)
    return torch.softmax(torch.cat([2 * y, -2 * y], dim=-1), -1)


@torch_checked
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
) -> torch.Tensor:
    """Hedgehog linear attention (same call as the reference; every form is evaluated by chunks, no state)."""
    causal, eps = hedgehog_fast_path_options(
        "torch",
        variant=variant,
        form=form,
        causal=causal,
        eps=eps,
        chunk_size=chunk_size,
        initial_state=initial_state,
        return_state=return_state,
    )
    q, k, v = check_qkv(q, k, v)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    yq = _project("", q, weight, bias)
    tied = key_weight is None and key_bias is None
    yk = _project("", k, weight, bias) if tied else _project("key_", k, key_weight, key_bias)
    lead = torch.broadcast_shapes(yq.shape[:-2], yk.shape[:-2], v.shape[:-2])
    yq, yk, v = (x.expand(*lead, *x.shape[-2:]) for x in (yq, yk, v))
    eps_rows: Any = eps
    shift_q = shift_k = None
    if variant == "paper":
        check_paper_exponents(tensor_max_abs(yq), tensor_max_abs(yk))
        shift_q = yq.abs().amax(-1, keepdim=True).detach()
        shift_k = yk.abs().amax(dim=(-1, -2), keepdim=True).detach()
        eps_rows = eps * torch.exp(-shift_q - shift_k)
    check_feature_sizes(yq.shape[-1], yk.shape[-1])
    return normalised_linear(
        _features(yq, variant, shift_q), _features(yk, variant, shift_k), v, causal=causal, eps=eps_rows
    ).to(dtype)
