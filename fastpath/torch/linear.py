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

from typing import Any

import torch
import torch.nn.functional as F

from attnlab.fastpath.torch._common import check_bool, check_positive_int, check_tensor, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.linear import check_eps
from attnlab.validation import InputOverflow, check_choice, checked_call

DEFAULT_CHUNK = 64


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1`` as ``x + 1`` or ``e^x``: ``F.elu(x) + 1`` cancels to 0 in float32 once ``x < -17``
    (``e^x`` below float32's ε), which turned such a query's output into 0."""
    return torch.where(x > 0, x + 1.0, torch.exp(torch.clamp(x, max=0.0)))


_BUILT_IN = (_elu_plus_one, torch.relu)


def _feature_map(feature_map: Any) -> Any:
    if callable(feature_map):
        return feature_map
    if isinstance(feature_map, str) and feature_map == "elu1":
        return _elu_plus_one
    if isinstance(feature_map, str) and feature_map == "relu":
        return torch.relu
    raise ValueError(f"feature_map: expected one of ['elu1', 'relu'] or a callable, got {feature_map!r}")


def _features(phi: Any, x: torch.Tensor, name: str, d_phi: int | None = None, positive: bool = False) -> torch.Tensor:
    """``φ(x)``; a user's callable is checked like an array argument (finite floats, the rows of ``x``, and
    strictly positive where ``positive``: ``eps = 0``)."""
    if phi in _BUILT_IN:
        return phi(x)
    label = f"feature_map({name})"
    features = check_tensor(label, checked_call(label, phi, x), layout=f"(..., {x.shape[-2]}, d_φ)")
    if features.shape[:-1] != x.shape[:-1] or features.dtype != x.dtype or features.device != x.device:
        raise ValueError(
            f"{label}: expected shape {(*x.shape[:-1], 'd_φ')} in {x.dtype} on {x.device} (like {name}), "
            f"got {tuple(features.shape)} in {features.dtype} on {features.device}"
        )
    if d_phi is not None and features.shape[-1] != d_phi:
        raise ValueError(
            f"{label}: expected last axis of size {d_phi} (d_φ of feature_map(q)), got {tuple(features.shape)}"
        )
    if positive and not bool((features > 0).all()):
        raise InputOverflow((label,), features.dtype, "a zero feature with eps = 0: a zero normaliser divides 0 by 0")
    return features


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


@torch_checked
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
    check_choice("form", form, ("chunked", "quadratic", "recurrent"))
    q, k, v = check_qkv(q, k, v)
    causal = check_bool("causal", causal)
    eps = check_eps(eps, feature_map)
    chunk = check_positive_int("chunk_size", chunk_size)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    phi = _feature_map(feature_map)
    dtype = q.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    fq = _features(phi, q, "q", positive=eps == 0.0)
    fk = _features(phi, k, "k", fq.shape[-1], positive=eps == 0.0)
    if causal:
        return _chunked_causal(fq, fk, v, chunk, eps).to(dtype)
    values = torch.cat([v, torch.ones(*v.shape[:-1], 1, dtype=work, device=v.device)], dim=-1)
    out = fq @ (fk.transpose(-1, -2) @ values)
    return (out[..., :-1] / (out[..., -1:] + eps)).to(dtype)
