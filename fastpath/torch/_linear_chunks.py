"""Normalised linear attention of precomputed features in torch, causal by chunks (shared by Hedgehog and BASED).

For features ``Φ_q, Φ_k`` ``(..., n, D)`` and values ``V`` ``(..., m, d_v)``,
``o_i = Φ_q(i)ᵀ Σ_j Φ_k(j) v_jᵀ / (Φ_q(i)ᵀ Σ_j Φ_k(j) + ε)`` over ``j <= i`` when causal. The causal
sum runs by chunks of ``C`` tokens (fla's ``chunk`` algorithm): the state of the chunks before is an
exclusive cumulative sum of per-chunk outer products, the chunk itself a masked ``C × C`` product, so
memory is ``O(n/C · D · d_v)`` and every product is a batched GEMM that autograd differentiates. The
normaliser rides along as an extra all-ones value column.
"""

from __future__ import annotations

import torch

CHUNK = 64


def normalised_linear(
    fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, *, causal: bool, eps: float, chunk: int = CHUNK
) -> torch.Tensor:
    """``(..., n, d_v)`` normalised linear attention of features ``fq``, ``fk`` (causal needs ``n == m``)."""
    values = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    if not causal:
        out = fq @ (fk.transpose(-1, -2) @ values)
    else:
        n = fq.shape[-2]
        pad = (-n) % chunk
        if pad:
            fq, fk, values = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (fq, fk, values))
        lead = fq.shape[:-2]
        chunks = fq.shape[-2] // chunk
        qc = fq.reshape(*lead, chunks, chunk, fq.shape[-1])
        kc = fk.reshape(*lead, chunks, chunk, fk.shape[-1])
        vc = values.reshape(*lead, chunks, chunk, values.shape[-1])
        per_chunk = kc.transpose(-1, -2) @ vc  # (..., chunks, D, d_v + 1)
        before = torch.cumsum(per_chunk, dim=-3) - per_chunk
        local = torch.tril(qc @ kc.transpose(-1, -2))
        out = (qc @ before + local @ vc).reshape(*lead, chunks * chunk, values.shape[-1])[..., :n, :]
    return out[..., :-1] / (out[..., -1:] + eps)
