"""Torch building blocks shared by the synthetic tasks.

The central module is :class:`QueryAttention`, one layer of multi-head attention read out at a single
query token, as in the in-context regression toy of He et al. 2025 ("In-Context Linear Regression
Demystified", arXiv:2503.12734)::

    TF(Z, z_q) = Σ_h O_h V_h Z · link(Zᵀ W_h z_q / √D),    W_h = K_hᵀ Q_h  (or a free D×D matrix)

with ``Z`` the ``(L, D)`` context tokens, ``z_q`` the query token, ``link`` softmax (normalised
attention) or the identity (unnormalised linear attention, no ``1/L``). The score matrix ``W_h`` is
either factored through ``Q_h, K_h ∈ ℝ^{r×D}`` (standard attention; ``r < D`` is the low-rank
bottleneck of Kuang et al. 2025) or a free full-rank bilinear form.

Also here: deterministic seeding helpers, a thread-count context manager and a resumable Adam
training loop with checkpoints, used by every task that trains a model.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.io import load_or_quarantine
from attnlab.synthetic.base import Progress

Link = Literal["softmax", "linear"]
ScoreForm = Literal["factored", "bilinear"]


def stream_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for one named random stream of one seed.

    Streams (training data, evaluation data, initialisation, ...) are derived with NumPy's
    ``SeedSequence`` so that two streams of the same seed never share a state.
    """
    if seed < 0 or stream < 0:
        raise ValueError(f"seed and stream must be non-negative, got seed={seed}, stream={stream}")
    state = np.random.SeedSequence([seed, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(count)`` and restore the previous count afterwards.

    Tiny models train fastest on one thread, and a fixed count makes CPU reductions bitwise
    reproducible whichever process (main, pool worker, Dask worker) runs them.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def default_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class QueryAttention(nn.Module):
    """One multi-head attention layer evaluated only at the query token (He et al. 2025).

    ``forward(context (B, L, D), query (B, D)) -> (B,)`` computes
    ``Σ_h O_h V_h Zᵀ link(Z W_h z_q / √D)`` where every head is full width ``D`` on the value side.

    Args:
        width: token width ``D`` (``d + 1`` for regression tokens ``[x; y]``).
        heads: number of heads ``H``.
        link: ``"softmax"`` (normalised over the context) or ``"linear"`` (raw scores, no ``1/L``).
        score_form: ``"factored"`` (``W_h = K_hᵀQ_h`` with ``Q_h, K_h ∈ ℝ^{r×D}``) or ``"bilinear"``
            (a free ``D×D`` matrix per head, Kuang et al. 2025).
        qk_rank: ``r`` for the factored form; ``None`` means ``D`` (full width, the paper's toy).
        generator: initialisation randomness. Every projection is ``U(-1/√D, 1/√D)``, the default
            ``nn.Linear(D, ·)`` initialisation; a bilinear ``W_h`` starts as the product ``K_hᵀQ_h`` of two
            such projections.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        *,
        link: Link = "softmax",
        score_form: ScoreForm = "factored",
        qk_rank: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if width < 1 or heads < 1:
            raise ValueError(f"width and heads must be positive, got width={width}, heads={heads}")
        if link not in ("softmax", "linear"):
            raise ValueError(f"link must be 'softmax' or 'linear', got {link!r}")
        if score_form not in ("factored", "bilinear"):
            raise ValueError(f"score_form must be 'factored' or 'bilinear', got {score_form!r}")
        rank = width if qk_rank is None else qk_rank
        if score_form == "factored" and not 1 <= rank <= width:
            raise ValueError(f"qk_rank must lie in [1, width={width}], got {qk_rank}")
        if score_form == "bilinear" and qk_rank is not None:
            raise ValueError("qk_rank applies to the factored score form only")
        self.width, self.heads, self.link, self.score_form, self.rank = width, heads, link, score_form, rank
        bound = 1.0 / math.sqrt(width)

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound, generator=generator))

        if score_form == "factored":
            self.query_proj = uniform(heads, rank, width)
            self.key_proj = uniform(heads, rank, width)
        else:
            # Start from the score distribution of a full-width factored layer (a product of two
            # default-initialised projections), so both forms begin from equally flat attention.
            self.bilinear = nn.Parameter(torch.einsum("hri,hrj->hij", uniform(heads, width, width),
                                                      uniform(heads, width, width)).detach())
        self.value_proj = uniform(heads, width, width)
        self.output_proj = uniform(heads, width)

    def score_matrices(self) -> Tensor:
        """``W_h`` of shape ``(H, D, D)``: ``score = context_tokenᵀ W_h query_token / √D``."""
        if self.score_form == "factored":
            return torch.einsum("hri,hrj->hij", self.key_proj, self.query_proj)
        return self.bilinear

    def output_value_vectors(self) -> Tensor:
        """``OV_h = O_h V_h`` of shape ``(H, D)``: what each head reads from a context token."""
        return torch.einsum("hd,hde->he", self.output_proj, self.value_proj)

    def _scores(self, context: Tensor, query: Tensor) -> Tensor:
        # Query-only attention lets every score form be contracted as context · (W_h z_q): one
        # (B, L, D) × (B, D, H) product instead of projecting all L keys. Same function, far fewer
        # autograd nodes for these tiny models; forward_flops still counts the standard key projection.
        mapped = torch.einsum("hij,bj->bih", self.score_matrices(), query)
        return torch.bmm(context, mapped) / math.sqrt(self.width)

    def attention(self, context: Tensor, query: Tensor) -> Tensor:
        """Per-head attention weights ``(B, H, L)`` over the context tokens."""
        scores = self._scores(context, query)
        weights = torch.softmax(scores, dim=1) if self.link == "softmax" else scores
        return weights.transpose(1, 2)

    def forward(self, context: Tensor, query: Tensor) -> Tensor:
        if context.ndim != 3 or context.shape[-1] != self.width:
            raise ValueError(f"context must have shape (B, L, {self.width}), got {tuple(context.shape)}")
        if query.shape != (context.shape[0], self.width):
            expected = (context.shape[0], self.width)
            raise ValueError(f"query must have shape {expected}, got {tuple(query.shape)}")
        scores = self._scores(context, query)
        weights = torch.softmax(scores, dim=1) if self.link == "softmax" else scores
        values = context @ self.output_value_vectors().T
        return (weights * values).sum(dim=(1, 2))

    def forward_flops(self, length: int) -> int:
        """Multiply-add FLOPs (×2) of one forward pass on one prompt of ``length`` context tokens.

        Counts the score path (projections, dot products) and the value path (``OV_h`` applied to each
        token and the weighted sum); parameter-only products and the softmax are not counted.
        """
        h, d, r, n = self.heads, self.width, self.rank, length
        if self.score_form == "factored":
            scores = 2 * h * (n * r * d + r * d + n * r)
        else:
            scores = 2 * h * (d * d + n * d)
        values = 2 * h * (n * d + n)
        return scores + values


def save_checkpoint(path: Path, state: dict[str, object]) -> None:
    """Write a training checkpoint atomically (temp file then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read_training_checkpoint(path: Path) -> dict[str, Any]:
    state = torch.load(path, weights_only=False)
    keys = ("model", "optimizer", "data_generator", "step", "history")
    if not isinstance(state, dict) or any(key not in state for key in keys):
        raise ValueError(f"not a training checkpoint: expected a dict with keys {list(keys)}")
    return state


def train_resumable(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Generator], Tensor],
    *,
    steps: int,
    lr: float,
    data_generator: torch.Generator,
    workdir: Path,
    progress: Progress,
    checkpoint_every: int,
    label: str,
) -> list[float]:
    """Adam training with checkpoints in ``workdir`` so an interrupted run resumes where it stopped.

    ``loss_fn(model, data_generator)`` draws a fresh batch from ``data_generator`` and returns the
    loss. A checkpoint holds the model, the optimiser and the data generator state, so a resumed run
    is bitwise identical to an uninterrupted one. Returns the loss recorded every
    ``checkpoint_every`` steps (the whole history, across resumptions).
    """
    if steps < 0 or checkpoint_every < 1:
        raise ValueError(f"steps must be >= 0 and checkpoint_every >= 1, got {steps}, {checkpoint_every}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    checkpoint = workdir / f"{label}.pt"
    start, history = 0, []
    # An unreadable checkpoint (a killed write, a full disk) is moved aside and training restarts.
    state = load_or_quarantine(checkpoint, _read_training_checkpoint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        data_generator.set_state(state["data_generator"])
        start, history = int(state["step"]), list(state["history"])
    for step in range(start, steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, data_generator)
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % checkpoint_every == 0 or done == steps:
            history.append(float(loss.detach()))
            save_checkpoint(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "data_generator": data_generator.get_state(),
                    "step": done,
                    "history": history,
                },
            )
            progress(done / steps, f"{label}: step {done}/{steps}, loss {history[-1]:.4f}")
    return history
