"""Aaren (Feng et al. 2024, arXiv 2405.13956v2, §3) in torch: the many-to-many prefix scan.

The scan is Hillis-Steele recursive doubling over ``(μ, ℓ, acc)`` triples under the online-softmax
combine: ``⌈log2 m⌉`` rounds, each one element-wise combine of the whole sequence with itself shifted,
so the work is ``O(m log m · d_v)`` in a handful of large tensor ops and autograd differentiates it.
Half-precision inputs are scanned in float32 (the running sums would otherwise round at every round)
and the output is returned in the input dtype.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.fastpath.torch._common import check_bool, check_scale, expand_kv_heads, torch_checked
from attnlab.fastpath.torch.softmax import check_qkv
from attnlab.reference.aaren import check_state

FORMS = ("scan", "recurrent", "parallel")

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _combine(a: State, b: State) -> State:
    mu = torch.maximum(a[0], b[0])
    # not detached: the carried max must be differentiated wherever it appears, or the gradient of the
    # represented sums ℓ·e^μ picks up a spurious ∂/∂μ term
    safe = torch.where(torch.isfinite(mu), mu, torch.zeros_like(mu))
    wa = torch.where(torch.isfinite(a[0]), torch.exp(a[0] - safe), torch.zeros_like(mu))
    wb = torch.where(torch.isfinite(b[0]), torch.exp(b[0] - safe), torch.zeros_like(mu))
    return mu, wa * a[1] + wb * b[1], wa[..., None] * a[2] + wb[..., None] * b[2]


def _scan(mu: torch.Tensor, ell: torch.Tensor, acc: torch.Tensor) -> State:
    m = mu.shape[-1]
    offset = 1
    while offset < m:
        left = (mu[..., :-offset], ell[..., :-offset], acc[..., :-offset, :])
        right = (mu[..., offset:], ell[..., offset:], acc[..., offset:, :])
        new_mu, new_ell, new_acc = _combine(left, right)
        mu = torch.cat([mu[..., :offset], new_mu], dim=-1)
        ell = torch.cat([ell[..., :offset], new_ell], dim=-1)
        acc = torch.cat([acc[..., :offset, :], new_acc], dim=-2)
        offset *= 2
    return mu, ell, acc


def _on_host(state: Any) -> Any:
    """A state's tensors as NumPy arrays (bfloat16 widened to float32), anything else unchanged."""
    if not isinstance(state, (tuple, list)):
        return state

    def host(x: Any) -> Any:
        if not torch.is_tensor(x):
            return x
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()

    return tuple(host(x) for x in state)


@torch_checked
def aaren_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    scale: float | None = None,
    form: str = "scan",
    initial_state: State | None = None,
    return_state: bool = False,
) -> Any:
    """Every prefix output ``o_t = Σ_{i<=t} softmax_i(σ q·k_i) v_i`` of one query token per head.

    Same call as :func:`attnlab.reference.aaren.aaren_attention`: ``q (..., H, 1, d_k)``,
    ``k (..., H_kv, m, d_k)``, ``v (..., H_kv, m, d_v)``; ``form`` is validated (every form is
    evaluated by the scan, the same operator); ``initial_state``/``return_state`` carry
    ``(μ, ℓ, acc)`` between calls. Returns ``(..., H, m, d_v)`` in the input dtype. Differentiable.
    """
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    return_state = check_bool("return_state", return_state)
    q, k, v = check_qkv(q, k, v)
    if q.shape[-2] != 1:
        raise ValueError(f"q: expected one query token, shape (..., H, 1, d_k), got shape {tuple(q.shape)}")
    sigma = check_scale(scale, q.shape[-1] ** -0.5)
    dtype = q.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = expand_kv_heads(q.to(work), k.to(work), v.to(work))
    scores = sigma * (k @ q.transpose(-1, -2))[..., 0]
    mu, ell, acc = scores, torch.ones_like(scores), v
    if initial_state is not None:
        # checked on host copies by the reference's check, so both paths describe a bad state alike; the
        # given tensors are used (a gradient reaches them)
        check_state(_on_host(initial_state), tuple(mu.shape[:-1]), acc.shape[-1])
        mu0, ell0, acc0 = (torch.as_tensor(x, device=q.device).to(work) for x in initial_state)
        mu = torch.cat([mu0[..., None], mu], dim=-1)
        ell = torch.cat([ell0[..., None], ell], dim=-1)
        acc = torch.cat([acc0[..., None, :], acc], dim=-2)
    mu, ell, acc = _scan(mu, ell, acc)
    if initial_state is not None:
        mu, ell, acc = mu[..., 1:], ell[..., 1:], acc[..., 1:, :]
    out = (acc / ell[..., None]).to(dtype)
    if return_state:
        return out, (mu[..., -1], ell[..., -1], acc[..., -1, :])
    return out
