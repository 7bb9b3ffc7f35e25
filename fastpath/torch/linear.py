"""Normalised linear attention, chunked causal form in torch.

Source: Katharopoulos et al. 2020 (arXiv 2006.16236); chunked evaluation as fla's
``naive_chunk_linear_attn``. For chunk ``c`` of size ``C``:
``O_c = (Q_c S_{<c} + tril(Q_c K_cᵀ) V_c) ⊘ (Q_c z_{<c} + tril(Q_c K_cᵀ) 1 + ε)`` with the prefix
states ``S_{<c} = Σ_{c'<c} K_{c'}ᵀ V_{c'}`` and ``z_{<c} = Σ_{c'<c} K_{c'}ᵀ 1`` (``Q, K`` after the
feature map). All chunks run at once: per-chunk states are formed with one batched matmul and
prefix-summed with ``cumsum`` over the chunk axis, so there is no Python loop over tokens or chunks.
Half-precision inputs are accumulated in float32 (the states sum up to ``n`` terms) and cast back.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from attnlab.fastpath.torch._common import check_bool, check_positive_int, expand_kv_heads
from attnlab.fastpath.torch.softmax import check_qkv

DEFAULT_CHUNK = 64


def _feature_map(feature_map: Any) -> Any:
    if callable(feature_map):
        return feature_map
    if feature_map == "elu1":
        return lambda x: F.elu(x) + 1.0
    if feature_map == "relu":
        return torch.relu
    raise ValueError(f"feature_map: expected one of ['elu1', 'relu'] or a callable, got {feature_map!r}")


def _check_eps(eps: Any) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    return float(eps)


def _chunked_causal(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, chunk: int, eps: float) -> torch.Tensor:
    n = fq.shape[-2]
    chunk = min(chunk, n)
    pad = (-n) % chunk
    if pad:
        # zero rows appended after the sequence: causal, so they never reach a real query
        fq, fk, v = (F.pad(t, (0, 0, 0, pad)) for t in (fq, fk, v))
    blocks = (n + pad) // chunk
    qc, kc, vc = (t.reshape(*t.shape[:-2], blocks, chunk, t.shape[-1]) for t in (fq, fk, v))
    ones = torch.ones(*vc.shape[:-1], 1, dtype=vc.dtype, device=vc.device)
    values = torch.cat([vc, ones], dim=-1)  # the ones column carries the normaliser z
    chunk_states = kc.transpose(-1, -2) @ values  # (..., blocks, d_phi, d_v + 1)
    prefix = torch.cumsum(chunk_states, dim=-3) - chunk_states  # states of the chunks before c
    local = (qc @ kc.transpose(-1, -2)).tril()
    out = qc @ prefix + local @ values
    out = out[..., :-1] / (out[..., -1:] + eps)
    return out.reshape(*out.shape[:-3], blocks * chunk, out.shape[-1])[..., :n, :]


def linear_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = False,
    eps: float = 1e-6,
    form: str = "chunked",
    chunk_size: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """Normalised linear attention ``o_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε)``.

    Args:
        q: ``(..., H, n, d_k)``; k: ``(..., H_kv, m, d_k)``; v: ``(..., H_kv, m, d_v)``.
        feature_map: ``"elu1"`` (elu + 1), ``"relu"`` or a callable on tensors.
        causal: sum over ``j <= i`` (requires ``n == m``), evaluated chunk-wise.
        eps: added to the normaliser.
        form: accepted for signature parity with the reference (every form is the same operator).
        chunk_size: chunk length ``C`` of the causal evaluation.

    Returns:
        ``(..., H, n, d_v)`` in the input dtype. Differentiable.
    """
    if form not in ("quadratic", "recurrent", "chunked"):
        raise ValueError(f"form: expected one of ['chunked', 'quadratic', 'recurrent'], got {form!r}")
    q, k, v = check_qkv(q, k, v)
    causal = check_bool("causal", causal)
    eps = _check_eps(eps)
    chunk = check_positive_int("chunk_size", chunk_size)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    phi = _feature_map(feature_map)
    dtype = q.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    fq, fk = phi(q), phi(k)
    if causal:
        return _chunked_causal(fq, fk, v, chunk, eps).to(dtype)
    values = torch.cat([v, torch.ones(*v.shape[:-1], 1, dtype=work, device=v.device)], dim=-1)
    out = fq @ (fk.transpose(-1, -2) @ values)
    return (out[..., :-1] / (out[..., -1:] + eps)).to(dtype)
