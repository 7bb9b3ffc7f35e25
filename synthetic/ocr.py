"""OCR recall: out-of-context reasoning in a one-layer linear-attention model.

Source: Huang, Zhu, Guo, Jiao, Sojoudi, Jordan, Russell, Mei, "Generalization or Hallucination?
Understanding Out-of-Context Reasoning in Transformers", NeurIPS 2025, arXiv:2506.10887; the setup
follows the official repository ``yixiao-huang/OCR-Theory`` (script ``train_attn1_1heads.sh``).

**Data.** Vocabulary, in index order: 2 relation tokens (r₁ = "fact" = 0, r₂ = "implication" = 1),
``num_facts`` fact answers ("cities"), ``num_implications`` implication answers ("animals"),
``num_subjects`` subjects ("names"), ``num_noise`` noise tokens, EOS; official sizes give
``2 + 20 + 20 + 80 + 5 + 1 = 128`` tokens. Subject ``i`` has fact ``b(i) = city[i mod num_facts]`` and
implication ``c(i) = animal[b-index mod num_implications]`` (both maps random bijections in the
"hallucination" variant). The first ``int(num_subjects · train_fraction)`` subjects are *train*
subjects, the rest *held-out* subjects. A sequence of length ``seq_len`` is ``seq_len − 3`` i.i.d.
noise tokens with the subject inserted at a uniform position, the relation at a uniform position
after it, then EOS; the label (read at EOS) is ``b(s)`` for r₁ and ``c(s)`` for r₂. Each training
batch is one third train facts, one third train implications, one third held-out *facts*; held-out
*implications* are never trained on — predicting them is the OCR test.

**Model.** One-hot embedding ``E = I`` (``d = vocab``, frozen, tied unembedding), one causal
linear-attention head, no residual, no MLP, no LayerNorm, prediction at the last position ``T``:

    a_t = (W_Q x_T) · (W_K x_t)            (W_K = I frozen; "linear": no softmax, no 1/√d)
    logits = E · W_O W_V Σ_{t≤T} a_t x_t,    p = softmax(logits),   loss = −log(p_y + 1e-8)

Only ``x_T`` is read out, so only the last attention row is computed; it equals the last row of the
full causal layer (tested). The OV map is either **combined** (``W_V = I`` frozen, ``W_OV = W_O``
trained) or **factorized** (``W_V ∈ R^{r×d}``, ``W_O ∈ R^{d×r}``, ``W_OV = W_O W_V``). Theory
(Huang et al. 2025): gradient descent on the factorization is biased toward minimum nuclear norm, which
completes the low-rank subject × answer matrix and so predicts held-out implications; the combined
matrix is biased toward minimum Frobenius norm and stays at chance on them.

Training is AdamW (lr 5e-3, weight decay 0.03, batch 252, constant rate), 2000 steps.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attnlab.io import atomic_write_bytes, load_or_quarantine, save_figure
from attnlab.synthetic.analysis.rank import rank_summary
from attnlab.synthetic.base import Progress, Task, config_to_dict, fingerprint

FACT_RELATION = 0
IMPLICATION_RELATION = 1
NUM_RELATIONS = 2
LOSS_EPS = 1e-8  # the official loss is −Σ y log(p + 1e-8); kept so saturation behaves the same

PARAMETERIZATIONS = ("factorized", "combined")
EXPERIMENTS = ("main", "rank_sweep", "hallucination", "softmax")
ATTENTIONS = ("linear", "softmax")
INITS = ("identity", "default")
EVAL_SETS = ("train_fact", "train_implication", "heldout_fact", "heldout_implication")
RANK_SWEEP = (3, 4, 8, 16, 32, 64, 128)
CHECKPOINT_NAME = "checkpoint.pt"


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class OCRConfig:
    """One OCR-recall setting; defaults are the official main script.

    Attributes:
        parameterization: ``"factorized"`` (``W_O W_V``, trainable) or ``"combined"`` (``W_OV``).
        experiment: label used by :func:`summarize`/:func:`plot` to group runs
            (``main``, ``rank_sweep``, ``hallucination``, ``softmax``).
        rank: inner dimension ``r`` of the factorized ``W_O W_V`` (``None`` means ``d``).
        num_subjects, num_facts, num_implications, num_noise: vocabulary blocks (80, 20, 20, 5).
        seq_len: tokens per sequence including EOS (16).
        train_fraction: fraction of subjects whose implications are trained on (0.25).
        random_maps: random subject→fact and fact→implication bijections (the "hallucination" variant).
        attention: ``"linear"`` (raw scores) or ``"softmax"`` (softmax of scores / √d).
        init: ``"identity"`` (W_Q = W_O = 1e-4·𝟙, W_V = 1e-4·I if r = d else 1e-4·𝟙) or ``"default"``
            (N(0, 1/d) entries, the official rank sweep).
        steps, batch_size, lr, weight_decay: AdamW schedule (2000, 252, 5e-3, 0.03).
        eval_every: steps between evaluations recorded in the training history.
        eval_per_subject: evaluation sequences per subject and relation.
        checkpoint_every: steps between resumable checkpoints in the run's workdir.
        num_threads: ``torch.set_num_threads`` during the run (restored afterwards). One thread: the
            per-step tensors are ~252×128, too small for intra-op threads to pay for their
            synchronisation, which stalls badly when the other core is busy.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
    """

    parameterization: str = "factorized"
    experiment: str = "main"
    rank: int | None = None
    num_subjects: int = 80
    num_facts: int = 20
    num_implications: int = 20
    num_noise: int = 5
    seq_len: int = 16
    train_fraction: float = 0.25
    random_maps: bool = False
    attention: str = "linear"
    init: str = "identity"
    steps: int = 2000
    batch_size: int = 252
    lr: float = 5e-3
    weight_decay: float = 0.03
    eval_every: int = 50
    eval_per_subject: int = 20
    checkpoint_every: int = 500
    num_threads: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        _check_choice("experiment", self.experiment, EXPERIMENTS)
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("init", self.init, INITS)
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        for name in ("num_subjects", "num_facts", "num_implications", "num_noise", "steps", "batch_size",
                     "eval_every", "eval_per_subject", "checkpoint_every", "num_threads"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seq_len", self.seq_len, 3)
        if self.batch_size < 3:
            raise ValueError(f"batch_size: expected >= 3 (three equal thirds), got {self.batch_size}")
        if not isinstance(self.train_fraction, (int, float)) or not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction: expected a float in (0, 1), got {self.train_fraction!r}")
        if not 1 <= self.num_train_subjects < self.num_subjects:
            raise ValueError(
                f"train_fraction: int(num_subjects * train_fraction) = {self.num_train_subjects} must leave at "
                f"least one train and one held-out subject (num_subjects = {self.num_subjects})"
            )
        if self.rank is not None:
            _check_int("rank", self.rank, 1)
            if self.parameterization == "combined":
                raise ValueError("rank: only the factorized parameterization has an inner rank; use None")
            if self.rank > self.vocab_size:
                raise ValueError(f"rank: expected <= d = {self.vocab_size}, got {self.rank}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite non-negative float, got {value!r}")

    @property
    def vocab_size(self) -> int:
        """``2 + num_facts + num_implications + num_subjects + num_noise + 1`` (= d, one-hot)."""
        return NUM_RELATIONS + self.num_facts + self.num_implications + self.num_subjects + self.num_noise + 1

    @property
    def inner_rank(self) -> int:
        """``r`` of ``W_O W_V`` (``d`` for the combined model and for ``rank=None``)."""
        return self.vocab_size if self.rank is None else self.rank

    @property
    def num_train_subjects(self) -> int:
        return int(self.num_subjects * self.train_fraction)

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``main/factorized`` or ``rank_sweep/factorized-r8``."""
        rank = f"-r{self.rank}" if self.rank is not None else ""
        return f"{self.experiment}/{self.parameterization}{rank}"

    def build(self, seed: int) -> OCRData:
        """The maps, splits and fixed evaluation sets for ``seed`` (see :class:`OCRData`)."""
        return OCRData.create(self, seed)


@dataclass(frozen=True)
class DerivedSeeds:
    """Independent streams derived from one run seed, so each part is reproducible on its own."""

    maps: int
    evaluation: int
    init: int
    batches: int

    @classmethod
    def from_seed(cls, seed: int) -> DerivedSeeds:
        _check_int("seed", seed, 0)
        maps, evaluation, init, batches = np.random.SeedSequence(seed).generate_state(4, dtype=np.uint32)
        return cls(int(maps), int(evaluation), int(init), int(batches))


@dataclass(frozen=True)
class OCRData:
    """Token layout, fact/implication maps, train/held-out split and fixed evaluation sets.

    Token arrays are int64 token ids. ``subject_fact[i]`` / ``subject_implication[i]`` are the answer
    tokens of subject ``i`` (index into ``subject_tokens``); ``fact_implication[j]`` is the implication
    token of fact ``j`` (index into ``fact_tokens``), so ``subject_implication = fact_implication ∘ fact
    index``. ``eval_sets[name] = (tokens (n, seq_len), labels (n,))`` for each name in
    :data:`EVAL_SETS`, with exactly ``eval_per_subject`` sequences per subject of the split.
    """

    config: OCRConfig
    seed: int
    fact_tokens: np.ndarray
    implication_tokens: np.ndarray
    subject_tokens: np.ndarray
    noise_tokens: np.ndarray
    eos_token: int
    subject_fact_index: np.ndarray
    subject_fact: np.ndarray
    subject_implication: np.ndarray
    fact_implication: np.ndarray
    train_subjects: np.ndarray
    heldout_subjects: np.ndarray
    eval_sets: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def create(cls, config: OCRConfig, seed: int) -> OCRData:
        seeds = DerivedSeeds.from_seed(seed)
        c = config
        fact_tokens = np.arange(NUM_RELATIONS, NUM_RELATIONS + c.num_facts, dtype=np.int64)
        implication_tokens = np.arange(fact_tokens[-1] + 1, fact_tokens[-1] + 1 + c.num_implications, dtype=np.int64)
        subject_tokens = np.arange(implication_tokens[-1] + 1, implication_tokens[-1] + 1 + c.num_subjects,
                                   dtype=np.int64)
        noise_tokens = np.arange(subject_tokens[-1] + 1, subject_tokens[-1] + 1 + c.num_noise, dtype=np.int64)
        eos_token = int(noise_tokens[-1] + 1)
        # Official maps: subject i -> city[i mod C], city[j] -> animal[j mod A]; random_draw shuffles
        # both lists first, which makes both maps random (bijections when the counts are equal).
        fact_order = np.arange(c.num_facts)
        implication_order = np.arange(c.num_implications)
        if c.random_maps:
            rng = np.random.default_rng(seeds.maps)
            fact_order = rng.permutation(c.num_facts)
            implication_order = rng.permutation(c.num_implications)
        subject_fact_index = fact_order[np.arange(c.num_subjects) % c.num_facts]
        fact_implication = np.empty(c.num_facts, dtype=np.int64)
        implication_of_rank = implication_order[np.arange(c.num_facts) % c.num_implications]
        fact_implication[fact_order] = implication_tokens[implication_of_rank]
        data = cls(
            config=c,
            seed=seed,
            fact_tokens=fact_tokens,
            implication_tokens=implication_tokens,
            subject_tokens=subject_tokens,
            noise_tokens=noise_tokens,
            eos_token=eos_token,
            subject_fact_index=subject_fact_index.astype(np.int64),
            subject_fact=fact_tokens[subject_fact_index],
            subject_implication=fact_implication[subject_fact_index],
            fact_implication=fact_implication,
            train_subjects=np.arange(c.num_train_subjects, dtype=np.int64),
            heldout_subjects=np.arange(c.num_train_subjects, c.num_subjects, dtype=np.int64),
            eval_sets={},
        )
        generator = torch.Generator().manual_seed(seeds.evaluation)
        for name in EVAL_SETS:
            split, relation = name.split("_")
            subjects = data.train_subjects if split == "train" else data.heldout_subjects
            repeated = torch.from_numpy(np.repeat(subjects, c.eval_per_subject))
            tokens, labels = data.sequences(repeated, FACT_RELATION if relation == "fact" else IMPLICATION_RELATION,
                                            generator)
            data.eval_sets[name] = (tokens.numpy(), labels.numpy())
        return data

    @property
    def answer_tokens(self) -> np.ndarray:
        """Fact tokens followed by implication tokens (the rows of the analysed W_OV block)."""
        return np.concatenate([self.fact_tokens, self.implication_tokens])

    def sequences(self, subjects: torch.Tensor, relation: int, generator: torch.Generator) -> tuple[
            torch.Tensor, torch.Tensor]:
        """Vectorised sequences for subject indices ``subjects`` (shape ``(n,)``) and one relation.

        Returns ``tokens`` (n, seq_len) int64 and ``labels`` (n,) int64 (the answer token at EOS).
        Positions: subject at ``p ~ U{0, …, T−3}``, relation at ``q ~ U{p+1, …, T−2}``, EOS at ``T−1``.
        """
        if relation not in (FACT_RELATION, IMPLICATION_RELATION):
            raise ValueError(f"relation: expected {FACT_RELATION} (fact) or {IMPLICATION_RELATION}, got {relation}")
        n, length = int(subjects.shape[0]), self.config.seq_len
        noise = torch.from_numpy(self.noise_tokens)
        tokens = noise[torch.randint(0, noise.numel(), (n, length), generator=generator)]
        subject_pos = torch.randint(0, length - 2, (n,), generator=generator)
        span = (length - 2 - subject_pos).to(torch.float64)
        offset = torch.floor(torch.rand(n, generator=generator, dtype=torch.float64) * span).long()
        relation_pos = subject_pos + 1 + offset
        rows = torch.arange(n)
        tokens[rows, subject_pos] = torch.from_numpy(self.subject_tokens)[subjects]
        tokens[rows, relation_pos] = relation
        tokens[:, -1] = self.eos_token
        answers = self.subject_fact if relation == FACT_RELATION else self.subject_implication
        return tokens, torch.from_numpy(answers)[subjects]

    def training_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``mixed_finetune`` batch: thirds of train facts, train implications and held-out facts.

        Subjects are drawn uniformly with replacement within each third. The official code shuffles
        the batch; the mean loss does not depend on the order, so the rows stay grouped.
        """
        third = batch_size // 3
        parts = [
            (self.train_subjects, FACT_RELATION, third),
            (self.train_subjects, IMPLICATION_RELATION, third),
            (self.heldout_subjects, FACT_RELATION, batch_size - 2 * third),
        ]
        token_parts, label_parts = [], []
        for pool, relation, count in parts:
            chosen = torch.from_numpy(pool)[torch.randint(0, pool.size, (count,), generator=generator)]
            tokens, labels = self.sequences(chosen, relation, generator)
            token_parts.append(tokens)
            label_parts.append(labels)
        return torch.cat(token_parts), torch.cat(label_parts)


class OCRTransformer(nn.Module):
    """One causal attention head on one-hot tokens, read out at the last position (see module doc).

    Parameters follow ``nn.Linear`` layout (``(out, in)``): ``w_q`` (d, d), ``w_v`` (r, d), ``w_o``
    (d, r); ``w_k = I`` is a frozen buffer, and the embedding/unembedding is the frozen identity
    (one-hot tokens), so ``W x_t`` is the column ``W[:, token_t]``. ``forward(tokens (B, T))``
    returns logits ``(B, d)``.
    """

    w_k: torch.Tensor
    w_v: torch.Tensor

    def __init__(self, config: OCRConfig, generator: torch.Generator) -> None:
        super().__init__()
        d, r = config.vocab_size, config.inner_rank
        self.vocab_size = d
        self.attention = config.attention
        self.parameterization = config.parameterization
        self.register_buffer("w_k", torch.eye(d))
        if config.init == "identity":
            w_q = torch.full((d, d), 1e-4)
            w_o = torch.full((d, r), 1e-4)
            w_v = 1e-4 * torch.eye(d) if r == d else torch.full((r, d), 1e-4)
        else:
            w_q = torch.randn(d, d, generator=generator) / math.sqrt(d)
            w_o = torch.randn(d, r, generator=generator) / math.sqrt(d)
            w_v = torch.randn(r, d, generator=generator) / math.sqrt(d)
        self.w_q = nn.Parameter(w_q)
        self.w_o = nn.Parameter(w_o)
        if config.parameterization == "combined":
            self.register_buffer("w_v", torch.eye(d))
        else:
            self.w_v = nn.Parameter(w_v)

    def attention_weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """Last-row attention weights ``a_t`` (B, T) for token ids ``tokens`` (B, T)."""
        query = self.w_q[:, tokens[:, -1]].T  # q = W_Q e_{x_T}, (B, d)
        scores = (query @ self.w_k).gather(1, tokens)  # q · W_K e_{x_t} = (W_Kᵀ q)[x_t]
        if self.attention == "softmax":
            return torch.softmax(scores / math.sqrt(self.vocab_size), dim=-1)
        return scores

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = self.attention_weights(tokens)
        # Σ_t a_t e_{x_t} as a scatter: one-hot inputs make the (B, T, d) embedding tensor unnecessary.
        mixed = torch.zeros(tokens.shape[0], self.vocab_size, dtype=weights.dtype, device=weights.device)
        mixed = mixed.scatter_add(1, tokens, weights)
        # W_V is applied after mixing (Σ a_t W_V x_t = W_V Σ a_t x_t); the unembedding is the identity.
        return mixed @ self.w_v.T @ self.w_o.T

    def w_ov(self) -> torch.Tensor:
        """The effective OV map ``W_O W_V`` (d, d): output token rows × input token columns."""
        return (self.w_o @ self.w_v).detach()


def ocr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of ``−log(softmax(logits)_y + 1e-8)`` (the official criterion)."""
    probs = torch.softmax(logits, dim=-1)
    return -torch.log(probs.gather(1, labels[:, None]).squeeze(1) + LOSS_EPS).mean()


def _answer_block(data: OCRData, name: str) -> np.ndarray:
    return data.fact_tokens if name.endswith("fact") else data.implication_tokens


@torch.no_grad()
def evaluate(model: OCRTransformer, data: OCRData, device: torch.device) -> dict[str, float]:
    """Accuracy (argmax over the vocabulary and within the answer block), loss, and training margin.

    ``training_margin`` is the smallest ``logit_y − max_{v≠y} logit_v`` over the three trained sets
    (positive when every training sequence is classified correctly).
    """
    model.eval()
    out: dict[str, float] = {}
    margins = []
    for name in EVAL_SETS:
        tokens, labels = (torch.from_numpy(a).to(device) for a in data.eval_sets[name])
        logits = model(tokens)
        block = torch.from_numpy(_answer_block(data, name)).to(device)
        out[f"{name}_acc"] = float((logits.argmax(-1) == labels).double().mean())
        within = block[logits[:, block].argmax(-1)]
        out[f"{name}_acc_within_block"] = float((within == labels).double().mean())
        out[f"{name}_loss"] = float(ocr_loss(logits, labels))
        if name != "heldout_implication":
            correct = logits.gather(1, labels[:, None]).squeeze(1)
            others = logits.scatter(1, labels[:, None], float("-inf")).amax(-1)
            margins.append(float((correct - others).min()))
    out["training_margin"] = min(margins)
    model.train()
    return out


def _resolve_device(config: OCRConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(config.device)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


_CHECKPOINT_KEYS = ("config", "seed", "step", "model", "optimizer", "batch_rng", "history")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or any(key not in state for key in _CHECKPOINT_KEYS):
        raise ValueError(f"not a training checkpoint: expected a dict with keys {list(_CHECKPOINT_KEYS)}")
    return state


def _load_checkpoint(path: Path, config: OCRConfig, seed: int) -> dict[str, Any] | None:
    """The checkpoint in ``path``, ``None`` when there is none or it cannot be read (truncated, empty,
    garbage: moved aside with a one-line warning, so the run restarts from step 0); a readable
    checkpoint of another run is an error."""
    state = load_or_quarantine(path, _read_checkpoint)
    if state is None:
        return None
    if state.get("config") != config_to_dict(config) or state.get("seed") != seed:
        raise ValueError(
            f"workdir: {path} holds a checkpoint of a different run "
            f"(config/seed mismatch with {config.label}, seed {seed}); use a fresh workdir"
        )
    return state


def _weight_analysis(model: OCRTransformer, data: OCRData, margin: float) -> dict[str, Any]:
    """Spectral measures of ``W_OV`` restricted to [answers × subjects].

    ``nuclear_norm_at_unit_margin`` divides the block's nuclear norm by the training margin. For
    linear attention the logit of answer ``v`` contains ``a(s) · W_OV[v, s]`` with the learned
    subject score ``a(s) = (W_Kᵀ W_Q e_EOS)[s]``, so W_Q's scale also moves the margin;
    ``attention_weighted_block`` therefore reports the block with column ``s`` scaled by ``a(s)``
    (``None`` for softmax attention, whose weights depend on the whole sequence).
    """
    w_ov = model.w_ov().double().cpu().numpy()
    subjects = data.subject_tokens
    block = w_ov[np.ix_(data.answer_tokens, subjects)]
    summary = rank_summary(block)
    weighted: dict[str, Any] | None = None
    if model.attention == "linear":
        w_q = model.w_q.detach().double().cpu().numpy()
        scores = w_q[:, data.eos_token] @ model.w_k.double().cpu().numpy()
        effective = rank_summary(block * scores[subjects][None, :])
        weighted = {
            "energy_rank": effective["energy_rank"],
            "nuclear_norm_at_unit_margin": effective["nuclear_norm_raw"] / margin if margin > 0 else None,
            "mean_subject_score": float(scores[subjects].mean()),
        }
    return {
        "answer_subject_block": summary,
        "attention_weighted_block": weighted,
        "w_ov_singular_values": rank_summary(w_ov, energies=(0.99,))["singular_values"],
        "nuclear_norm_at_unit_margin": summary["nuclear_norm_raw"] / margin if margin > 0 else None,
        "norms": {
            "w_ov_frobenius": float(np.linalg.norm(w_ov)),
            "subject_fact_block_frobenius": float(np.linalg.norm(w_ov[np.ix_(data.fact_tokens, subjects)])),
            "subject_implication_block_frobenius": float(
                np.linalg.norm(w_ov[np.ix_(data.implication_tokens, subjects)])
            ),
        },
    }


def run(config: OCRConfig, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    """Train one (config, seed) and return JSON-ready metrics; resumes from ``workdir`` if possible.

    A checkpoint (model, optimizer, step, batch-RNG state, history) is written atomically to
    ``workdir/checkpoint.pt`` every ``checkpoint_every`` steps and at the end, so an interrupted run
    continues and produces exactly the numbers of an uninterrupted one.
    """
    if not isinstance(config, OCRConfig):
        raise TypeError(f"config: expected an OCRConfig, got {type(config).__name__}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _train(config, seed, progress, Path(workdir))
    finally:
        torch.set_num_threads(previous_threads)


def _provenance(
    model: OCRTransformer, data: OCRData, config: OCRConfig, batch_generator: torch.Generator
) -> dict[str, str]:
    """Fingerprints of what a seed drew: the initial weights, the first training batch (from a copy of
    the batch stream, which is left where it was), the evaluation sets and the subject → answer maps."""
    copy = torch.Generator()
    copy.set_state(batch_generator.get_state())
    tokens, labels = data.training_batch(config.batch_size, copy)
    return {
        "init": fingerprint(*model.state_dict().values()),
        "train_data": fingerprint(tokens, labels),
        "eval_data": fingerprint(*(array for name in EVAL_SETS for array in data.eval_sets[name])),
        "maps": fingerprint(data.subject_fact, data.subject_implication),
    }


def _train(config: OCRConfig, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    device = _resolve_device(config)
    data = config.build(seed)
    seeds = DerivedSeeds.from_seed(seed)
    model = OCRTransformer(config, torch.Generator().manual_seed(seeds.init)).to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    # Batches are drawn on the CPU so a CUDA run sees exactly the data of a CPU run.
    batch_generator = torch.Generator().manual_seed(seeds.batches)
    provenance = _provenance(model, data, config, batch_generator)
    path = workdir / CHECKPOINT_NAME
    state = _load_checkpoint(path, config, seed)
    history: list[dict[str, float | None]]
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batch_generator.set_state(state["batch_rng"])
        step, history = int(state["step"]), list(state["history"])
    else:
        step, history = 0, [{"step": 0, "train_loss": None, **evaluate(model, data, device)}]

    def checkpoint() -> None:
        _save_checkpoint(path, {
            "config": config_to_dict(config), "seed": seed, "step": step, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "batch_rng": batch_generator.get_state(), "history": history,
        })

    while step < config.steps:
        tokens, labels = data.training_batch(config.batch_size, batch_generator)
        loss = ocr_loss(model(tokens.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % config.eval_every == 0 or step == config.steps:
            history.append({"step": step, "train_loss": float(loss.detach()), **evaluate(model, data, device)})
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
        if step % config.eval_every == 0 or step == config.steps:
            progress(step / config.steps, f"{config.label} step {step}/{config.steps} loss {float(loss.detach()):.3g} "
                                          f"held-out impl acc {history[-1]['heldout_implication_acc']:.3f}")

    final = evaluate(model, data, device)
    metrics: dict[str, Any] = {
        "label": config.label,
        "experiment": config.experiment,
        "parameterization": config.parameterization,
        "rank": config.inner_rank,
        "random_maps": config.random_maps,
        "attention": config.attention,
        "init": config.init,
        "seed": seed,
        "steps": config.steps,
        "device": device.type,
        "num_facts": config.num_facts,
        "chance_within_implications": 1.0 / config.num_implications,
        "heldout_implication_acc": final["heldout_implication_acc"],
        "heldout_implication_acc_within_implications": final["heldout_implication_acc_within_block"],
        "heldout_implication_loss": final["heldout_implication_loss"],
        "heldout_fact_acc": final["heldout_fact_acc"],
        "train_fact_acc": final["train_fact_acc"],
        "train_implication_acc": final["train_implication_acc"],
        "training_margin": final["training_margin"],
        **_weight_analysis(model, data, final["training_margin"]),
        "history": history,
        "provenance": provenance,
        "runtime_s": time.perf_counter() - started,
    }
    return metrics


# --------------------------------------------------------------------------------------- experiment


def configs(quick: bool = True) -> list[OCRConfig]:
    """The experiment: both OV parameterisations of the official setup; the full one adds the softmax
    pair, the random-map ("hallucination") pair and the rank sweep r ∈ {3, …, 128} (20k steps, default
    init, as the official sweep).

    With one-hot tokens and the permutation-invariant "identity" init, the random-map run is an exact
    relabelling of the structured one, so its numbers match the main run up to float summation order:
    a symmetry check that OCR cannot tell causal from arbitrary pairings, not independent evidence."""
    main = [OCRConfig(parameterization=p) for p in PARAMETERIZATIONS]
    if quick:
        return main
    softmax = [OCRConfig(parameterization=p, experiment="softmax", attention="softmax") for p in PARAMETERIZATIONS]
    hallucination = [OCRConfig(parameterization=p, experiment="hallucination", random_maps=True)
                     for p in PARAMETERIZATIONS]
    sweep = [OCRConfig(experiment="rank_sweep", rank=r, init="default", steps=20_000, eval_every=500,
                       checkpoint_every=2000) for r in RANK_SWEEP]
    return main + softmax + hallucination + sweep


Results = list[tuple[Any, int, dict[str, Any]]]


def _group(results: Results, experiment: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for config, _seed, metrics in results:
        if metrics.get("experiment") == experiment or getattr(config, "experiment", None) == experiment:
            key = metrics["parameterization"] if experiment != "rank_sweep" else str(metrics["rank"])
            groups.setdefault(key, []).append(metrics)
    return groups


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _criterion(values: list[float], comparison: str, threshold: float, worst: str,
               band: float | None = None) -> dict[str, Any]:
    if not values:
        return {"value": None, "threshold": f"{comparison} {threshold}", "passed": False, "per_seed": []}
    if comparison == "within":
        assert band is not None
        value = max(values, key=lambda v: abs(v - threshold))
        passed = all(abs(v - threshold) <= band + 1e-12 for v in values)
        text = f"within {threshold:.3f} ± {band:.3f}"
    else:
        value = min(values) if worst == "min" else max(values)
        passed = all((v >= threshold) if comparison == ">=" else (v <= threshold) if comparison == "<=" else
                     (v > threshold) for v in values)
        text = f"{comparison} {threshold}"
    return {"value": value, "threshold": text, "passed": bool(passed), "per_seed": values}


def summarize(results: Results) -> dict[str, Any]:
    """The ``--json`` summary: means over seeds plus each reproduction criterion with its measured
    (worst-seed) value beside its threshold."""
    main = _group(results, "main")
    summary: dict[str, Any] = {"task": "ocr", "seeds": sorted({seed for _c, seed, _m in results})}
    keys = {
        "heldout_implication_acc": "heldout_implication_acc",
        "heldout_implication_acc_within_implications": "heldout_implication_acc_within_implications",
        "heldout_fact_acc": "heldout_fact_acc",
    }
    for out_key, metric in keys.items():
        summary[out_key] = {p: _mean([m[metric] for m in runs]) for p, runs in main.items()}
    summary["energy_rank"] = {
        p: {level: _mean([m["answer_subject_block"]["energy_rank"][level] for m in runs])
            for level in runs[0]["answer_subject_block"]["energy_rank"]}
        for p, runs in main.items()
    }
    summary["effective_rank"] = {p: _mean([m["answer_subject_block"]["effective_rank"] for m in runs])
                                 for p, runs in main.items()}
    # Raw-block and attention-weighted nuclear norms at unit training margin, per seed (see the
    # measurement caveat in attnlab.synthetic.analysis.rank).
    summary["nuclear_norm_at_unit_margin"] = {
        p: [m["nuclear_norm_at_unit_margin"] for m in runs] for p, runs in main.items()
    }
    summary["attention_weighted_nuclear_norm_at_unit_margin"] = {
        p: [(m.get("attention_weighted_block") or {}).get("nuclear_norm_at_unit_margin") for m in runs]
        for p, runs in main.items()
    }
    factorized, combined = main.get("factorized", []), main.get("combined", [])
    num_facts = (factorized or combined or [{"num_facts": 20}])[0]["num_facts"]
    chance = (combined or [{"chance_within_implications": 0.05}])[0]["chance_within_implications"]
    criteria = {
        "heldout_fact_acc_factorized": _criterion([m["heldout_fact_acc"] for m in factorized], ">=", 0.99, "min"),
        "heldout_fact_acc_combined": _criterion([m["heldout_fact_acc"] for m in combined], ">=", 0.99, "min"),
        "heldout_implication_acc_factorized": _criterion(
            [m["heldout_implication_acc"] for m in factorized], ">=", 0.95, "min"),
        "heldout_implication_acc_within_implications_combined_at_chance": _criterion(
            [m["heldout_implication_acc_within_implications"] for m in combined], "within", chance, "max", band=0.03),
        "energy_rank_0.99_factorized_low": _criterion(
            [float(m["answer_subject_block"]["energy_rank"]["0.99"]) for m in factorized], "<=", num_facts + 2, "max"),
        "energy_rank_0.99_combined_higher": _criterion(
            [float(m["answer_subject_block"]["energy_rank"]["0.99"]) for m in combined], ">", num_facts + 2, "min"),
    }
    summary["criteria"] = criteria
    summary["reproduced"] = all(c["passed"] for c in criteria.values())
    sweep = _group(results, "rank_sweep")
    if sweep:
        summary["rank_sweep"] = {
            r: {"heldout_implication_acc": _mean([m["heldout_implication_acc"] for m in runs]),
                "heldout_fact_acc": _mean([m["heldout_fact_acc"] for m in runs]),
                "energy_rank_0.99": _mean([m["answer_subject_block"]["energy_rank"]["0.99"] for m in runs])}
            for r, runs in sorted(sweep.items(), key=lambda item: int(item[0]))
        }
    for experiment in ("hallucination", "softmax"):
        group = _group(results, experiment)
        if group:
            summary[experiment] = {
                p: {"heldout_implication_acc": _mean([m["heldout_implication_acc"] for m in runs]),
                    "heldout_implication_acc_within_implications": _mean(
                        [m["heldout_implication_acc_within_implications"] for m in runs]),
                    "heldout_fact_acc": _mean([m["heldout_fact_acc"] for m in runs]),
                    "energy_rank_0.99": _mean([m["answer_subject_block"]["energy_rank"]["0.99"] for m in runs])}
                for p, runs in group.items()
            }
    return summary


# --------------------------------------------------------------------------------------------- plots

_COLORS = {"factorized": "tab:blue", "combined": "tab:red"}


def plot(results: Results, summary: dict[str, Any], outdir: Path) -> list[Path]:
    """Held-out implication accuracy over training, W_OV block spectra, and (full runs) the rank sweep
    and the hallucination comparison. PNG + SVG + JSON data per figure."""
    from matplotlib.figure import Figure

    written: list[Path] = []
    main = _group(results, "main")
    if main:
        fig = Figure(figsize=(10, 4))
        acc_ax, loss_ax = fig.subplots(1, 2)
        data: dict[str, Any] = {}
        for p, runs in main.items():
            for index, m in enumerate(runs):
                steps = [h["step"] for h in m["history"]]
                acc = [h["heldout_implication_acc"] for h in m["history"]]
                within = [h["heldout_implication_acc_within_block"] for h in m["history"]]
                loss = [h["heldout_implication_loss"] for h in m["history"]]
                tag = f"{p} (seed {m['seed']})"
                acc_ax.plot(steps, acc, color=_COLORS[p], label=f"{tag}: argmax over vocab" if index == 0 else None)
                acc_ax.plot(steps, within, color=_COLORS[p], linestyle="--",
                            label=f"{p}: argmax over implications" if index == 0 else None)
                loss_ax.plot(steps, loss, color=_COLORS[p], label=tag)
                data[tag] = {"step": steps, "acc": acc, "acc_within_implications": within, "loss": loss}
        chance = next(iter(main.values()))[0]["chance_within_implications"]
        acc_ax.axhline(chance, color="gray", linewidth=0.8, linestyle=":", label="chance (1/#implications)")
        acc_ax.set(xlabel="training step", ylabel="held-out implication accuracy", ylim=(-0.02, 1.02),
                   title="OCR: held-out implications")
        acc_ax.legend(fontsize=7)
        loss_ax.set(xlabel="training step", ylabel="held-out implication loss", yscale="log",
                    title="loss on never-trained implications")
        loss_ax.legend(fontsize=7)
        fig.tight_layout()
        written += save_figure(fig, outdir, "ocr_heldout_implication_accuracy", data)

        fig = Figure(figsize=(5.5, 4))
        ax = fig.subplots()
        spectra: dict[str, Any] = {}
        for p, runs in main.items():
            for index, m in enumerate(runs):
                sigma = np.asarray(m["answer_subject_block"]["singular_values"])
                normalized = sigma / sigma[0] if sigma[0] > 0 else sigma
                k99 = m["answer_subject_block"]["energy_rank"]["0.99"]
                ax.semilogy(np.arange(1, sigma.size + 1), np.maximum(normalized, 1e-12), marker=".",
                            color=_COLORS[p], label=f"{p}: 99%-energy rank {k99}" if index == 0 else None)
                spectra[f"{p} (seed {m['seed']})"] = normalized.tolist()
        num_facts = next(iter(main.values()))[0]["num_facts"]
        ax.axvline(num_facts, color="gray", linestyle=":", label=f"#facts = {num_facts}")
        ax.set(xlabel="singular value index", ylabel="σ_i / σ_1", title="W_OV [answers × subjects] spectrum")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written += save_figure(fig, outdir, "ocr_spectra", spectra)

    sweep = summary.get("rank_sweep")
    if sweep:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        ranks = [int(r) for r in sweep]
        ax.semilogx(ranks, [sweep[str(r)]["heldout_implication_acc"] for r in ranks], marker="o", base=2,
                    label="held-out implications")
        ax.semilogx(ranks, [sweep[str(r)]["heldout_fact_acc"] for r in ranks], marker="s", base=2,
                    label="held-out facts")
        ax.set_xticks(ranks, [str(r) for r in ranks])
        ax.set(xlabel="inner rank r of W_O W_V", ylabel="accuracy", ylim=(-0.02, 1.05),
               title="factorized OV: rank sweep (default init)")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        written += save_figure(fig, outdir, "ocr_rank_sweep", sweep)

    hallucination = summary.get("hallucination")
    if hallucination and "heldout_implication_acc" in summary:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        names = [p for p in PARAMETERIZATIONS if p in hallucination and p in summary["heldout_implication_acc"]]
        x = np.arange(len(names))
        ax.bar(x - 0.2, [summary["heldout_implication_acc"][p] for p in names], 0.4, label="structured maps")
        ax.bar(x + 0.2, [hallucination[p]["heldout_implication_acc"] for p in names], 0.4, label="random maps")
        ax.set_xticks(x, names)
        ax.set(ylabel="held-out implication accuracy", ylim=(0, 1.05), title="OCR is blind to causality")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written += save_figure(fig, outdir, "ocr_hallucination",
                               {"structured": summary["heldout_implication_acc"], "random": hallucination})
    return written


TASK = Task(name="ocr", configs=configs, run=run, summarize=summarize, plot=plot)

__all__ = [
    "TASK",
    "DerivedSeeds",
    "OCRConfig",
    "OCRData",
    "OCRTransformer",
    "configs",
    "evaluate",
    "ocr_loss",
    "plot",
    "run",
    "summarize",
]
