"""Configuration of one Laundry List setting, and the designs the experiment compares.

One frozen :class:`LaundryConfig` fixes the data, the model, the optimiser and the analysis of a
setting. The three designs of the experiment are built by :func:`positional`, :func:`item_coded` and
:func:`value_readout`; :func:`attnlab.synthetic.laundry.experiment.configs` is the experiment the
runner sweeps over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from attnlab.synthetic.laundry.data import Prompts

ItemSource = Literal["vocabulary", "gaussian"]
Readout = Literal["unembed", "pointer", "items"]

_ITEM_SOURCES = ("vocabulary", "gaussian")
_READOUTS = ("unembed", "pointer", "items")
_DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class LaundryConfig:
    """One Laundry List setting: data, model, optimiser and analysis.

    Attributes:
        name: the design's label (the runner's key and the summary's group).
        items: ``"vocabulary"`` (``n_items`` learned item embeddings, a prompt draws ``n`` distinct ones)
            or ``"gaussian"`` (every prompt draws fresh items ``a_i ~ N(0, I/d_model)``, so no item
            identity can be memorised; ``SEP`` and ``QRY`` stay learned embeddings).
        n_items: size of the item vocabulary (``"vocabulary"`` items only).
        min_length, max_length: list lengths ``n``, drawn uniformly per training batch.
        heads: heads per layer; the last layer (the mover) has one head.
        d_model: residual width.
        d_heads: value/output width per layer; ``0`` for the mover means it has no value path (the
            pointer readout never uses one).
        qk_widths: query/key width per layer; a narrow mover query/key bounds the rank of the channel
            the mover can read.
        matching_layer0: layer 0 is a matching head by construction: query and key read the token
            embedding only, with ``W_K`` tied to ``W_Q`` (symmetric scores), the value reads the position
            embedding only, and attention is strictly causal (token 0 attends to itself).
        matching_init_scale: factor on the ``N(0, 1/d_model)`` initialisation of the tied ``W_Q = W_K``.
        mover_reads_first_list: the mover's keys are masked to the first list.
        mover_positional_keys: the mover's keys read the position embeddings only.
        readout: ``"unembed"`` (mover output at ``QRY`` times an unembedding over the vocabulary items),
            ``"pointer"`` (the mover's pre-softmax scores at ``QRY`` over the first list are the logits
            of the missing index) or ``"items"`` (the mover output at ``QRY`` dotted with each first-list
            item vector; ``"gaussian"`` items only).
        mover_identity_init: start the mover's ``W_V`` and ``W_O`` at the identity (a copying head;
            needs value width ``d_model``).
        steps, batch_size, learning_rate, weight_decay: AdamW with a one-cycle schedule (10% warm-up).
        eval_size: held-out prompts per length.
        calibration_size: training-distribution prompts at the largest length whose channel means the
            position patch uses.
        test_buckets: prompts whose hash falls in one of ``test_buckets`` buckets are held out
            (vocabulary items; gaussian items never repeat).
        checkpoint_every: steps between atomic checkpoints.
        channel_rank: dimension of the channel subspace the interventions edit.
        threads: torch threads of the run.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    name: str = "positional"
    items: ItemSource = "gaussian"
    n_items: int = 0
    min_length: int = 2
    max_length: int = 8
    heads: tuple[int, ...] = (1, 1, 1)
    d_model: int = 64
    d_heads: tuple[int, ...] = (16, 16, 0)
    qk_widths: tuple[int, ...] = (16, 16, 2)
    matching_layer0: bool = True
    matching_init_scale: float = 8.0
    mover_reads_first_list: bool = True
    mover_positional_keys: bool = False
    readout: Readout = "pointer"
    mover_identity_init: bool = False
    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    eval_size: int = 1024
    calibration_size: int = 8192
    test_buckets: int = 8
    checkpoint_every: int = 500
    channel_rank: int = 3
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.items not in _ITEM_SOURCES:
            raise ValueError(f"items: expected one of {_ITEM_SOURCES}, got {self.items!r}")
        if self.readout not in _READOUTS:
            raise ValueError(f"readout: expected one of {_READOUTS}, got {self.readout!r}")
        if self.device not in _DEVICES:
            raise ValueError(f"device: expected one of {_DEVICES}, got {self.device!r}")
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError(
                f"min_length, max_length: expected 2 <= min_length <= max_length, got "
                f"{self.min_length}, {self.max_length}"
            )
        if self.items == "vocabulary" and self.n_items < self.max_length + 1:
            raise ValueError(
                f"n_items: expected more than max_length={self.max_length} vocabulary items, got {self.n_items}"
            )
        if self.items == "gaussian" and self.readout == "unembed":
            raise ValueError("readout: gaussian items have no vocabulary to unembed; use 'pointer' or 'items'")
        if self.items == "vocabulary" and self.readout == "items":
            raise ValueError("readout: 'items' needs gaussian items")
        layers = len(self.heads)
        if layers < 2 or self.heads[-1] != 1 or min(self.heads) < 1:
            raise ValueError(f"heads: expected >= 2 layers with one head in the last, got {self.heads}")
        if len(self.d_heads) != layers or min(self.d_heads[:-1]) < 1 or self.d_heads[-1] < 0:
            raise ValueError(
                f"d_heads: expected one width per layer ({layers}), positive before the mover, got {self.d_heads}"
            )
        if self.readout != "pointer" and self.d_heads[-1] < 1:
            raise ValueError(f"d_heads: readout {self.readout!r} needs a mover value width >= 1")
        if len(self.qk_widths) != layers or min(self.qk_widths) < 1:
            raise ValueError(f"qk_widths: expected one positive width per layer ({layers}), got {self.qk_widths}")
        if self.mover_identity_init and self.d_heads[-1] != self.d_model:
            raise ValueError(
                f"mover_identity_init: needs the mover value width d_heads[-1] = d_model = {self.d_model}, "
                f"got {self.d_heads[-1]}"
            )
        if self.matching_layer0 and self.matching_init_scale <= 0:
            raise ValueError(f"matching_init_scale: expected > 0, got {self.matching_init_scale}")
        for label, value in (
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("checkpoint_every", self.checkpoint_every),
            ("eval_size", self.eval_size),
            ("calibration_size", self.calibration_size),
            ("threads", self.threads),
        ):
            if value < 1:
                raise ValueError(f"{label}: expected a positive integer, got {value}")
        if self.test_buckets < 2:
            raise ValueError(f"test_buckets: expected >= 2, got {self.test_buckets}")
        if not 1 <= self.channel_rank <= self.d_heads[-2]:
            raise ValueError(
                f"channel_rank: expected 1..{self.d_heads[-2]} (the inhibition head's width), got {self.channel_rank}"
            )

    @property
    def n_layers(self) -> int:
        return len(self.heads)

    @property
    def sep_token(self) -> int:
        """Token id of ``SEP`` (after the item ids: ``n_items``, or ``max_length`` for gaussian slots)."""
        return self.n_items if self.items == "vocabulary" else self.max_length

    @property
    def query_token(self) -> int:
        return self.sep_token + 1

    @property
    def vocab_size(self) -> int:
        """Rows of the token table: item ids (or gaussian slots), ``SEP``, ``QRY``."""
        return self.sep_token + 2

    @property
    def max_sequence(self) -> int:
        return 2 * self.max_length + 1

    def lengths(self) -> list[int]:
        return list(range(self.min_length, self.max_length + 1))

    def build(self, seed: int) -> dict[int, Prompts]:
        """The held-out prompts of ``seed`` by length (:func:`attnlab.synthetic.laundry.data.build_test_set`)."""
        from attnlab.synthetic.laundry.data import build_test_set  # data imports this module

        return build_test_set(self, seed)


def positional(**overrides: Any) -> LaundryConfig:
    """The main design: fresh gaussian items, a matching layer 0, a rank-2 pointer mover (4000 steps)."""
    return replace(LaundryConfig(), **overrides)


def item_coded(**overrides: Any) -> LaundryConfig:
    """The contrasting design: 128 learned items, free layers, a rank-3 mover read through an unembedding."""
    settings: dict[str, Any] = {
        "name": "item-coded",
        "items": "vocabulary",
        "n_items": 128,
        "d_heads": (16, 16, 64),
        "qk_widths": (16, 16, 3),
        "matching_layer0": False,
        "readout": "unembed",
        "steps": 6000,
    }
    settings.update(overrides)
    return LaundryConfig(**settings)


def value_readout(**overrides: Any) -> LaundryConfig:
    """Secondary design: the positional model with a copying mover (``W_V = W_O = I`` at start, rank-3
    query/key) whose output is dotted with the first-list items (10 000 steps)."""
    settings: dict[str, Any] = {
        "name": "value-readout",
        "d_heads": (16, 16, 64),
        "qk_widths": (16, 16, 3),
        "readout": "items",
        "mover_identity_init": True,
        "steps": 10_000,
    }
    settings.update(overrides)
    return LaundryConfig(**settings)
