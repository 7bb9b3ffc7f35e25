"""ComplexFormer's CMHA with torch: pointwise polar features, then SDPA.

Source: Shao et al. 2025 (arXiv 2505.10222v1); constants as in shaojintian/complexFormer@f91ac74. The CMHA
score separates, ``s_ij = σ ψ(q_i)·ψ(k_j)`` with ``ψ(x) = [r cos φ | r sin φ]``, ``φ^q = δθ^q + p_i g + β``,
``φ^k = δθ^k + p_j g`` (query positions ``i + m − n``, ``g_t = base^{−2t/d}``), so the ``n × m × d/2`` cosines
the released code materialises become one feature map and
:func:`attnlab.fastpath.torch.softmax.softmax_attention` (SDPA, bottom-right causal). The features are
computed in float64 (the absolute phases ``p·g`` grow with the position; in float32 a phase near ``n``
radians carries ``n·6e-8`` of rounding, 3e-5 at n = 512, where the pairwise form only rounds the relative
angle) and cast to the input dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnlab.fastpath.torch._common import check_device, check_scale, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv, softmax_attention
from attnlab.reference.cmha import MODULUS_EPS, check_cmha_angles, check_cmha_options


def _rows(name: str, value: Any, default: float, q: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """δ or β as ``(d/2,)`` or ``(H, 1, d/2)`` tensors (checked as the reference checks them)."""
    half = q.shape[-1] // 2
    if value is None:
        return torch.full((half,), default, dtype=work, device=q.device)
    t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
    t = t.to(device=q.device, dtype=work)
    return t[:, None, :] if t.ndim == 2 else t


def polar_features(
    x: torch.Tensor, positions: torch.Tensor, delta: torch.Tensor, beta: torch.Tensor, base: float, eps: float
) -> torch.Tensor:
    """``[r cos φ | r sin φ]`` with ``φ = δ·atan2(im, re) + p·g + β``."""
    d = x.shape[-1]
    half = d // 2
    re, im = x[..., :half], x[..., half:]
    steps = torch.arange(half, dtype=torch.float64, device=x.device)
    angle = (
        positions.to(torch.float64)[:, None]
        * torch.pow(torch.tensor(float(base), dtype=torch.float64), -2.0 * steps / d)
    ).to(x.dtype)
    phase = delta * torch.atan2(im, re) + angle + beta
    radius = torch.sqrt(re * re + im * im + eps)
    return torch.cat([radius * torch.cos(phase), radius * torch.sin(phase)], dim=-1)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as NumPy for the reference's checks; integer and boolean dtypes stay so and are rejected."""
    check_device("delta/beta", t)
    t = t.detach().cpu()
    return (t.double() if t.is_floating_point() else t).numpy()


def _check_options(q: torch.Tensor, delta: Any, beta: Any, base: Any, eps: Any, span: int) -> tuple[float, float]:
    """The reference's checks of δ, β, base and ε, run on a same-shaped stand-in for ``q``."""
    probe = np.zeros((*q.shape[-3:-2], 1, q.shape[-1])) if q.ndim >= 3 else np.zeros((1, q.shape[-1]))
    as_numpy = [_numpy(t) if isinstance(t, torch.Tensor) else t for t in (delta, beta)]
    delta_a, beta_a, base_value, eps_value = check_cmha_options(probe, as_numpy[0], as_numpy[1], base, eps)
    check_cmha_angles(delta_a, beta_a, base_value, q.shape[-1], span)
    return base_value, eps_value


@torch_checked
def cmha_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    delta: Any = None,
    beta: Any = None,
    base: float = 10000.0,
    scale: float | None = None,
    eps: float = MODULUS_EPS,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """CMHA ``O = softmax_row(s + M) V`` on tensors (same call as the reference).

    Shapes: ``q (..., H, n, d)`` (``d`` even), ``k (..., H_kv, m, d)``, ``v (..., H_kv, m, d_v)``; δ, β of shape
    ``(d/2,)`` or ``(H, d/2)`` (tensors or arrays). Returns ``(..., H, n, d_v)`` in the input dtype and device;
    differentiable in ``q``, ``k``, ``v``.
    """
    q, k, v = check_qkv(q, k, v)
    base_value, eps_value = _check_options(q, delta, beta, base, eps, q.shape[-2] + k.shape[-2])
    sigma = check_scale(scale, 1.0)
    # float64 features: the absolute phases p·g reach ~n radians, and a float32 phase would lose ~n·6e-8 rad
    work = torch.float64
    slopes, offsets = _rows("delta", delta, 1.0, q, work), _rows("beta", beta, 0.0, q, work)
    if slopes.ndim > 1 and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        # key features depend on the query head's δ: one key copy per query head
        q, k, v = expand_kv_heads(q, k, v)
    n, m = q.shape[-2], k.shape[-2]
    positions_q = torch.arange(n, device=q.device) + (m - n)
    psi_q = polar_features(q.to(work), positions_q, slopes, offsets, base_value, eps_value).to(q.dtype)
    psi_k = polar_features(
        k.to(work), torch.arange(m, device=q.device), slopes, torch.zeros_like(offsets), base_value, eps_value
    ).to(q.dtype)
    return softmax_attention(psi_q, psi_k, v, scale=sigma, causal=causal, mask=mask)
