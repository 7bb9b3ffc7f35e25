"""The reference math of the nine core forms written plainly in torch ("composed torch").

Each function mirrors its NumPy reference in :mod:`attnlab.reference` term by term (same call
signature, tensors instead of arrays): scores are materialised, softmax is the masked stable softmax,
nothing is fused. Two uses:

* run in float64, it is the autograd reference for gradient parity (``register_torch_reference``);
  run at a fast path's dtype, it is "the same math at that dtype" of the tolerance rule;
* it is the "composed torch" peer of the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from attnlab.fastpath.torch._common import (
    allowed_mask,
    check_bool,
    check_positive_int,
    check_scale,
    check_tensor,
    expand_kv_heads,
    masked_softmax,
)
from attnlab.fastpath.torch.mla import (
    TorchMLAWeights,
    as_torch_weights,
    rms_norm,
    rope_interleaved,
    split_heads,
)

__all__ = [
    "composed_differential",
    "composed_hamming",
    "composed_interaction",
    "composed_laser",
    "composed_laser_shifted",
    "composed_linear",
    "composed_mla",
    "composed_simplicial",
    "composed_softmax",
    "composed_tensor",
]


def _qkv(q: Any, k: Any, v: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v = check_tensor("q", q), check_tensor("k", k), check_tensor("v", v)
    qe, ke, ve = expand_kv_heads(q, k, v)
    return qe, ke, ve


def _scores(q: torch.Tensor, k: torch.Tensor, scale: Any) -> torch.Tensor:
    return check_scale(scale, q.shape[-1] ** -0.5) * (q @ k.transpose(-1, -2))


def _allowed(q: torch.Tensor, k: torch.Tensor, causal: Any, mask: Any) -> torch.Tensor | None:
    return allowed_mask(q.shape[-2], k.shape[-2], causal=causal, mask=mask, lead=tuple(q.shape[:-2]), device=q.device)


def composed_softmax(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """``softmax_row(σ Q Kᵀ + M) V`` with explicit scores (operators.md §1)."""
    q, k, v = _qkv(q, k, v)
    return masked_softmax(_scores(q, k, scale), _allowed(q, k, causal, mask)) @ v


def composed_laser(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """LASER in the log domain: ``O_ic = LSE_j(S_ij + V_jc) − LSE_j(S_ij)`` over visible ``j`` (§3)."""
    q, k, v = _qkv(q, k, v)
    scores = _scores(q, k, scale)
    allowed = _allowed(q, k, causal, mask)
    if allowed is not None:
        allowed = allowed.expand(scores.shape)
        scores = scores.masked_fill(~allowed, -math.inf)
    joint = scores[..., :, :, None] + v[..., None, :, :]  # (..., n, m, d_v)
    if allowed is None:
        return torch.logsumexp(joint, dim=-2) - torch.logsumexp(scores, dim=-1, keepdim=True)
    empty = ~allowed.any(dim=-1, keepdim=True)
    # give empty rows one harmless finite logit so neither LSE is -inf - -inf; they are zeroed below
    scores = scores.masked_fill(empty & (torch.arange(scores.shape[-1], device=q.device) == 0), 0.0)
    joint = scores[..., :, :, None] + v[..., None, :, :]
    out = torch.logsumexp(joint, dim=-2) - torch.logsumexp(scores, dim=-1, keepdim=True)
    return out.masked_fill(empty, 0.0)


def composed_laser_shifted(
    q: Any, k: Any, v: Any, *, scale: float | None = None, causal: bool = False, mask: Any = None
) -> torch.Tensor:
    """The paper's LWSE evaluation composed plainly: ``log(softmax(S) exp(V − m)) + m`` with the
    global column maximum ``m_c = max_j V_jc``.

    Exact in real arithmetic and memory-lean (only ``n × m`` weights), but ``exp(V − m)`` underflows
    on rows whose visible values sit far below ``m_c`` (the output is then ``−inf``); it is the
    composed-torch benchmark peer of LASER, not a reference.
    """
    q, k, v = _qkv(q, k, v)
    shift = v.detach().amax(dim=-2, keepdim=True)
    weights = masked_softmax(_scores(q, k, scale), _allowed(q, k, causal, mask))
    return torch.log(weights @ torch.exp(v - shift)) + shift


def _feature_map(feature_map: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(feature_map):
        return feature_map
    if feature_map == "elu1":
        return lambda x: torch.nn.functional.elu(x) + 1.0
    if feature_map == "relu":
        return torch.relu
    raise ValueError(f"feature_map: expected one of ['elu1', 'relu'] or a callable, got {feature_map!r}")


def _check_eps(eps: Any) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps: expected a non-negative finite float, got {eps!r}")
    return float(eps)


def composed_linear(
    q: Any,
    k: Any,
    v: Any,
    *,
    feature_map: Any = "elu1",
    causal: bool = False,
    eps: float = 1e-6,
    form: str = "quadratic",
) -> torch.Tensor:
    """Quadratic form ``A = φ(Q)φ(K)ᵀ`` (lower-triangular if causal), ``O = A V ⊘ (A 1 + ε)`` (§2).

    ``form`` is accepted for signature parity with the reference; every form is the same operator.
    """
    if form not in ("quadratic", "recurrent"):
        raise ValueError(f"form: expected one of ['quadratic', 'recurrent'], got {form!r}")
    q, k, v = _qkv(q, k, v)
    causal = check_bool("causal", causal)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"q/k: causal linear attention needs equal query and key lengths, got n={q.shape[-2]}, m={k.shape[-2]}"
        )
    phi = _feature_map(feature_map)
    a = phi(q) @ phi(k).transpose(-1, -2)
    if causal:
        a = a.tril()
    return (a @ v) / (a.sum(dim=-1, keepdim=True) + _check_eps(eps))


def _five(q: Any, k1: Any, k2: Any, v1: Any, v2: Any) -> list[torch.Tensor]:
    names = ("q", "k1", "k2", "v1", "v2")
    ts = [check_tensor(name, t) for name, t in zip(names, (q, k1, k2, v1, v2))]
    lead = torch.broadcast_shapes(*(t.shape[:-2] for t in ts))
    return [t.expand(*lead, *t.shape[-2:]) for t in ts]


def _pair_softmax_output(
    logits: torch.Tensor, allowed: torch.Tensor | None, v1: torch.Tensor, v2: torch.Tensor
) -> torch.Tensor:
    """Softmax over all pairs ``(j, k)`` of ``logits (..., n, m1, m2)``; ``o_i = Σ P_{i,jk} v1_j ∘ v2_k``."""
    shape = logits.shape
    flat = logits.reshape(*shape[:-2], shape[-2] * shape[-1])
    flat_allowed = None if allowed is None else allowed.reshape(*allowed.shape[:-2], shape[-2] * shape[-1])
    probs = masked_softmax(flat, flat_allowed).reshape(shape)
    return torch.einsum("...ijk,...jc,...kc->...ic", probs, v1, v2)


def composed_tensor(
    q: Any, k1: Any, k2: Any, v1: Any, v2: Any, *, scale: float | None = None, causal: bool = False
) -> torch.Tensor:
    """Tensor attention over all key pairs with the full ``(n, m1, m2)`` logit cube (§4)."""
    q, k1, k2, v1, v2 = _five(q, k1, k2, v1, v2)
    sigma = check_scale(scale, 1.0 / q.shape[-1])
    causal = check_bool("causal", causal)
    n, m1, m2 = q.shape[-2], k1.shape[-2], k2.shape[-2]
    if causal and not (n == m1 == m2):
        raise ValueError(f"q/k1/k2: causal tensor attention needs n == m1 == m2, got {n}, {m1}, {m2}")
    logits = sigma * torch.einsum("...il,...jl,...kl->...ijk", q, k1, k2)
    allowed = None
    if causal:
        i = torch.arange(n, device=q.device)
        allowed = (i[None, :, None] <= i[:, None, None]) & (i[None, None, :] <= i[:, None, None])
    return _pair_softmax_output(logits, allowed, v1, v2)


def composed_simplicial(
    q: Any,
    k1: Any,
    k2: Any,
    v1: Any,
    v2: Any,
    *,
    window1: int,
    window2: int,
    scale: float | None = None,
    kv_bias: bool = False,
) -> torch.Tensor:
    """Causal windowed 2-simplicial attention on the full logit cube with a window mask (§4)."""
    q, k1, k2, v1, v2 = _five(q, k1, k2, v1, v2)
    w1, w2 = check_positive_int("window1", window1), check_positive_int("window2", window2)
    d, n = q.shape[-1], q.shape[-2]
    sigma = check_scale(scale, d**-0.5)
    if check_bool("kv_bias", kv_bias):
        k2, v2 = k2 + 1.0 / d, v2 + 1.0
    i = torch.arange(n, device=q.device)
    r, j = i[:, None, None], i[None, :, None]
    kk = i[None, None, :]
    allowed = (j <= r) & (j > r - w1) & (kk <= r) & (kk > r - w2)
    logits = sigma * torch.einsum("...il,...jl,...kl->...ijk", q, k1, k2)
    return _pair_softmax_output(logits, allowed, v1, v2)


def composed_differential(
    q1: Any,
    k1: Any,
    q2: Any,
    k2: Any,
    v: Any,
    *,
    lam: Any,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
) -> torch.Tensor:
    """``softmax(σQ1K1ᵀ + M)V − λ softmax(σQ2K2ᵀ + M)V`` (§9)."""
    from attnlab.fastpath.torch.differential import as_lambda

    first = composed_softmax(q1, k1, v, scale=scale, causal=causal, mask=mask)
    second = composed_softmax(q2, k2, v, scale=scale, causal=causal, mask=mask)
    return first - as_lambda(lam, first) * second


def composed_hamming(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    top_n: int | None = None,
) -> torch.Tensor:
    """Softmax over ``σ sign(q)·sign(k)`` (``sign(0) = +1``), optional top-N keeping ties (§11)."""
    from attnlab.fastpath.torch.hamming import keep_top_n, sign_code

    q, k, v = _qkv(q, k, v)
    scores = _scores(sign_code(q), sign_code(k), scale)
    allowed = _allowed(q, k, causal, mask)
    if top_n is not None:
        allowed = keep_top_n(scores, allowed, check_positive_int("top_n", top_n))
    return masked_softmax(scores, allowed) @ v


def composed_mla(
    x: Any,
    weights: Any,
    *,
    impl: str = "naive",
    scale: float | None = None,
    causal: bool = False,
    mask: Any = None,
    rope_base: float = 10000.0,
) -> torch.Tensor:
    """Naive MLA: per-head keys ``[k^C_h; RoPE(k^R)]`` and values up-projected from the latent (§8).

    ``impl`` is accepted for signature parity; the composed version always runs the naive form.
    """
    if impl not in ("naive", "absorb"):
        raise ValueError(f"impl: expected 'naive' or 'absorb', got {impl!r}")
    x = check_tensor("x", x)
    w: TorchMLAWeights = as_torch_weights(weights, x)
    h, d_nope, d_rope, d_c = w.n_heads, w.d_nope, w.d_rope, w.d_latent
    sigma = check_scale(scale, (d_nope + d_rope) ** -0.5)
    n = x.shape[-2]
    positions = torch.arange(n, dtype=x.dtype, device=x.device)
    q_latent = x if w.w_dq is None else rms_norm(x @ w.w_dq, w.q_norm)
    q = split_heads(q_latent @ w.w_uq, h)
    q = torch.cat([q[..., :d_nope], rope_interleaved(q[..., d_nope:], positions, rope_base)], -1)
    kv = x @ w.w_dkv
    c_hat = rms_norm(kv[..., :d_c], w.kv_norm)
    k_rope = rope_interleaved(kv[..., d_c:], positions, rope_base)[..., None, :, :]
    kv_up = split_heads(c_hat @ w.w_ukv, h)
    k = torch.cat([kv_up[..., :d_nope], k_rope.expand(*kv_up.shape[:-1], d_rope)], -1)
    heads = composed_softmax(q, k, kv_up[..., d_nope:], scale=sigma, causal=causal, mask=mask)
    merged = heads.transpose(-2, -3).reshape(*heads.shape[:-3], n, h * w.d_v)
    return merged @ w.w_o


def composed_interaction(x: Any, alpha: Any, u: Any = None, *, w_v: Any = None, w_o: Any = None) -> torch.Tensor:
    """``Y = Σ_h (α_h X) U_hᵀ`` (or ``Σ_h α_h X W_V^h W_O^h``) as the reference writes it (§5)."""
    from attnlab.fastpath.torch.interaction import check_interaction

    x, coeffs, dense, low_rank = check_interaction(x, alpha, u, w_v, w_o)
    mixed = coeffs @ x[..., None, :, :]
    if dense is not None:
        per_head = torch.einsum("...hnd,hed->...hne", mixed, dense)
    else:
        assert low_rank is not None
        per_head = mixed @ low_rank[0] @ low_rank[1]
    return per_head.sum(dim=-3)
