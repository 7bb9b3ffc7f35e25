"""Laundry List prompts: a pure function of ``(config, seed)`` and a generator state.

A prompt lists ``n`` distinct items, a separator, the same items again *except one* in a fresh
random order, and a query token; the answer is the item that was not repeated::

    a_1 a_2 ... a_n  SEP  a_{pi(1)} ... a_{pi(n-1)}  QRY   ->   a_j   (j is the missing index)

Two item sources. *Vocabulary* items are ``n`` distinct ids drawn from ``n_items`` learned
embeddings, in random order; prompts whose hash falls in the held-out bucket never enter training.
*Gaussian* items are fresh vectors ``a_i ~ N(0, I/d_model)`` per prompt; the tokens then hold the
item's slot ``i`` in the first list (the first list reads ``0, 1, ..., n-1``), so equal token ids
still mark a repeated item, and a continuous draw never repeats, so test prompts are simply drawn
from their own random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnlab.synthetic.laundry.config import LaundryConfig
from attnlab.synthetic.models import stream_generator

_HASH_MODULUS = 2_147_483_647
_HASH_BASE = 1_000_003


class Stream:
    """The random streams of one seed; each gets its own generator (:func:`stream_generator`)."""

    INIT = 0
    TEST = 1
    TRAIN = 2
    COMPOSITION_BASELINE = 3
    CALIBRATION = 4
    RANDOM_SUBSPACE = 5


def numpy_stream(seed: int, stream: int) -> np.random.Generator:
    """A NumPy generator for one named stream of one seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


@dataclass(frozen=True)
class Prompts:
    """A batch of prompts of one list length ``n``.

    Attributes:
        tokens: ``(m, 2n+1)`` int64; item ids (vocabulary) or first-list slots (gaussian), ``SEP``, ``QRY``.
        items: ``(m, n, d_model)`` float32 item vectors in first-list order (gaussian items), else ``None``.
        answers: ``(m,)`` the missing item's token id (equal to ``positions`` for gaussian items).
        positions: ``(m,)`` the missing index ``j`` in the first list.
    """

    tokens: torch.Tensor
    items: torch.Tensor | None
    answers: torch.Tensor
    positions: torch.Tensor

    @property
    def length(self) -> int:
        return (self.tokens.shape[1] - 1) // 2

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def rows(self, keep: torch.Tensor) -> Prompts:
        """The prompts selected by a boolean or index tensor over the batch."""
        return Prompts(
            self.tokens[keep],
            None if self.items is None else self.items[keep],
            self.answers[keep],
            self.positions[keep],
        )

    def missing_items(self) -> torch.Tensor:
        """``(m, d_model)`` vector of the missing item (gaussian items only)."""
        if self.items is None:
            raise ValueError("missing_items: these prompts have vocabulary items, not item vectors")
        return self.items[torch.arange(len(self)), self.positions]


def targets(config: LaundryConfig, prompts: Prompts) -> torch.Tensor:
    """The class index the logits are scored against: the item id (unembed) or the missing index."""
    return prompts.answers if config.readout == "unembed" else prompts.positions


def prompt_hash(tokens: torch.Tensor) -> torch.Tensor:
    """Polynomial hash of each row of ``tokens`` ``(m, T)`` modulo the prime ``2^31 - 1``."""
    h = torch.zeros(tokens.shape[0], dtype=torch.int64)
    for column in tokens.T:
        h = (h * _HASH_BASE + column + 1) % _HASH_MODULUS
    return h


def in_test_partition(tokens: torch.Tensor, test_buckets: int) -> torch.Tensor:
    """Boolean ``(m,)``: which vocabulary prompts belong to the held-out partition."""
    return (prompt_hash(tokens) * 2_654_435_761 % _HASH_MODULUS) % test_buckets == 0


def _raw_prompts(config: LaundryConfig, n: int, count: int, generator: torch.Generator) -> Prompts:
    if config.items == "vocabulary":
        first = torch.argsort(torch.rand(count, config.n_items, generator=generator), dim=1)[:, :n]
        items = None
    else:
        first = torch.arange(n).expand(count, n)
        items = torch.randn(count, n, config.d_model, generator=generator) / config.d_model**0.5
    missing = torch.randint(0, n, (count,), generator=generator)
    keys = torch.rand(count, n, generator=generator)
    keys[torch.arange(count), missing] = 2.0  # the missing index sorts last and is dropped
    repeats = torch.gather(first, 1, torch.argsort(keys, dim=1)[:, : n - 1])
    sep = torch.full((count, 1), config.sep_token, dtype=torch.int64)
    qry = torch.full((count, 1), config.query_token, dtype=torch.int64)
    tokens = torch.cat([first, sep, repeats, qry], dim=1)
    return Prompts(tokens, items, first[torch.arange(count), missing], missing)


def _concat(parts: list[Prompts], count: int) -> Prompts:
    items = None if parts[0].items is None else torch.cat([p.items for p in parts if p.items is not None])[:count]
    return Prompts(
        torch.cat([p.tokens for p in parts])[:count],
        items,
        torch.cat([p.answers for p in parts])[:count],
        torch.cat([p.positions for p in parts])[:count],
    )


def sample_prompts(
    config: LaundryConfig, n: int, count: int, generator: torch.Generator, *, partition: str = "train"
) -> Prompts:
    """``count`` prompts of list length ``n``, deterministic given the generator state.

    ``partition`` (``"train"`` or ``"test"``) selects the hash partition of vocabulary prompts; gaussian
    prompts ignore it (a continuous draw never repeats).
    """
    if partition not in ("train", "test"):
        raise ValueError(f"partition: expected 'train' or 'test', got {partition!r}")
    if not config.min_length <= n <= config.max_length:
        raise ValueError(f"n: expected a length in [{config.min_length}, {config.max_length}], got {n}")
    if count < 1:
        raise ValueError(f"count: expected a positive integer, got {count}")
    if config.items == "gaussian":
        return _raw_prompts(config, n, count, generator)
    want_test = partition == "test"
    parts: list[Prompts] = []
    have = 0
    while have < count:
        draw = max(64, (count - have) * (config.test_buckets if want_test else 2))
        batch = _raw_prompts(config, n, draw, generator)
        keep = in_test_partition(batch.tokens, config.test_buckets) == want_test
        parts.append(batch.rows(keep))
        have += int(keep.sum())
    return _concat(parts, count)


def training_batch(config: LaundryConfig, generator: torch.Generator) -> Prompts:
    """One training batch: a length drawn uniformly from ``config.lengths()``, then its prompts."""
    lengths = config.lengths()
    n = lengths[int(torch.randint(0, len(lengths), (1,), generator=generator))]
    return sample_prompts(config, n, config.batch_size, generator)


def build_test_set(config: LaundryConfig, seed: int) -> dict[int, Prompts]:
    """Held-out prompts of ``seed``: ``eval_size`` per length, from the test stream and partition."""
    generator = stream_generator(seed, Stream.TEST)
    return {n: sample_prompts(config, n, config.eval_size, generator, partition="test") for n in config.lengths()}


def calibration_set(config: LaundryConfig, seed: int) -> Prompts:
    """``calibration_size`` training-partition prompts at the largest length (the patch's means)."""
    generator = stream_generator(seed, Stream.CALIBRATION)
    return sample_prompts(config, config.max_length, config.calibration_size, generator)
