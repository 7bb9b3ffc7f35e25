"""What each task's paper reports, beside the quantity the lab measures for it.

A :class:`Reported` row names the quantity, the paper's own figure or statement (a quote where the
paper gives words rather than numbers), where the paper says it, and how to read the lab's number from
the cached summary of ``attnlab reproduce``. Rows are grouped by task name; a task without rows gets a
table of its reproduction criteria only.

Sources read: the three papers' abstracts and, where the paper's code is public, the official scripts
(He et al.'s notebook and Huang et al.'s training script); the experiment sections were not read, so
numbers the abstracts do not give are left to the criteria tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Summary = Mapping[str, Any]
Configs = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Reported:
    """One line of the paper-versus-lab table.

    Attributes:
        quantity: what is compared.
        paper: the paper's figure or statement, as it gives it.
        key: BibTeX key of the paper (in :func:`attnlab.bibliography.papers`); ``cite`` when it is absent.
        locator: where in the paper (or its code) it says so.
        lab: ``lab(summary, configs) -> text``: the lab's measurement from the cached summary and the
            experiment's configs (dicts as in ``config.json``).
        cite: how to cite a paper that is not (yet) in the bibliography.
    """

    quantity: str
    paper: str
    key: str
    locator: str
    lab: Callable[[Summary, Configs], str]
    cite: str = ""


def _loss(summary: Summary, model: str, length: int) -> float:
    return float(summary["loss"][model][str(length)])


def _steps(configs: Configs, **match: Any) -> str:
    steps = sorted({c["steps"] for c in configs if all(c.get(k) == v for k, v in match.items()) and "steps" in c})
    return " / ".join(str(s) for s in steps) if steps else "-"


def _icl_two_heads(s: Summary, c: Configs) -> str:
    return (
        f"MSE at L = 40: two heads {_loss(s, 'softmax_h2', 40):.3f}, one GD step {_loss(s, 'gd', 40):.3f}, "
        f"debiased GD {_loss(s, 'debiased_gd', 40):.3f}, ridge (Bayes) {_loss(s, 'ridge', 40):.3f}"
    )


def _icl_one_head(s: Summary, c: Configs) -> str:
    return f"MSE at L = 40: one head {_loss(s, 'softmax_h1', 40):.3f}, two heads {_loss(s, 'softmax_h2', 40):.3f}"


def _icl_length(s: Summary, c: Configs) -> str:
    longest = max(int(k) for k in s["loss"]["softmax_h2"])
    return (
        f"two softmax heads: {_loss(s, 'softmax_h2', 40):.3f} at L = 40, {_loss(s, 'softmax_h2', longest):.3f} at "
        f"L = {longest}; linear attention: {_loss(s, 'linear_h1', 40):.3f} at L = 40, "
        f"{_loss(s, 'linear_h1', longest):.3f} at L = {longest}"
    )


def _icl_bottleneck(s: Summary, c: Configs) -> str:
    loss, flops = s["bottleneck"]["loss"], s["bottleneck"]["flops_per_prompt"]
    low = next(n for n in loss if n.startswith("lowrank"))
    full = next(n for n in loss if n.startswith("bilinear"))
    return (
        f"MSE {next(iter(loss[low].values())):.3f} for rank-limited heads ({flops[low]} FLOPs per prompt), "
        f"{next(iter(loss[full].values())):.3f} for the full-rank bilinear score ({flops[full]} FLOPs)"
    )


def _ocr_accuracy(parameterization: str) -> Callable[[Summary, Configs], str]:
    def read(s: Summary, c: Configs) -> str:
        within = s["heldout_implication_acc_within_implications"][parameterization]
        overall = s["heldout_implication_acc"][parameterization]
        return f"held-out implication accuracy {overall:.2f} (among the answers of that relation: {within:.2f})"

    return read


def _ocr_rank(s: Summary, c: Configs) -> str:
    ranks = s["energy_rank"]
    return (
        f"rank holding 99% of the subject-to-answer block's energy: factorized {ranks['factorized']['0.99']:g}, "
        f"combined {ranks['combined']['0.99']:g}"
    )


def _laundry_length(s: Summary, c: Configs) -> str:
    by_length = s["accuracy_by_length"]
    lengths = sorted(by_length, key=int)
    return (
        f"accuracy {by_length[lengths[0]]:.2f} with {lengths[0]} items, {by_length[lengths[-1]]:.2f} with "
        f"{lengths[-1]} items"
    )


def _laundry_gain(s: Summary, c: Configs) -> str:
    gain = 100 * float(s["intervention_gain"])
    direction = "raised" if gain > 0 else "lowered" if gain < 0 else "left unchanged"
    return f"the channel intervention {direction} accuracy at the longest lists by {abs(gain):.1f} points"


ICL_SOURCE = "he2025incontext"
OCR_SOURCE = "huang2025generalization"
LAUNDRY_SOURCE = "merullo2024talking"

REPORTED: dict[str, tuple[Reported, ...]] = {
    "icl": (
        Reported(
            "trained multi-head attention against one step of gradient descent, at the training length",
            "multi-head attention implements a debiased gradient-descent predictor that "
            '"nearly achieves Bayesian optimality up to proportional factor" (no number in the abstract)',
            ICL_SOURCE,
            "abstract",
            _icl_two_heads,
        ),
        Reported(
            "one head against two",
            'the multi-head predictor "outperforms single-head attention"',
            ICL_SOURCE,
            "abstract",
            _icl_one_head,
        ),
        Reported(
            "prompts longer than in training (trained at L = 40)",
            '"compared to linear transformers, the softmax attention readily generalizes to sequences longer '
            'than those seen during training"',
            ICL_SOURCE,
            "abstract",
            _icl_length,
        ),
        Reported(
            "training steps",
            "500,001 steps of Adam (lr 1e-3, batch 256)",
            ICL_SOURCE,
            "the authors' notebook (icl_linear.ipynb)",
            lambda s, c: f"{_steps(c, experiment='length')} steps of Adam",
        ),
        Reported(
            "rank-limited query/key heads against a full-rank score (d = 16)",
            '"our proposed scoring functions outperform standard attention for any fixed compute budget"',
            "kuang2025customizing",
            "abstract",
            _icl_bottleneck,
            cite="Kuang et al. 2025 (arXiv 2509.07963, ICML 2025)",
        ),
    ),
    "ocr": (
        Reported(
            "held-out implications, factorized output-value weights",
            'a one-layer single-head model with factorized output and value matrices "can learn to solve this task"',
            OCR_SOURCE,
            "abstract",
            _ocr_accuracy("factorized"),
        ),
        Reported(
            "held-out implications, combined output-value matrix",
            '"a model with combined weights cannot" (chance is 1/20 among the 20 implication answers)',
            OCR_SOURCE,
            "abstract",
            _ocr_accuracy("combined"),
        ),
        Reported(
            "why: the implicit bias of gradient descent",
            'gradient descent "favors solutions that minimize the nuclear norm of the combined output-value matrix"',
            OCR_SOURCE,
            "abstract",
            _ocr_rank,
        ),
        Reported(
            "training",
            "2000 steps of AdamW (lr 5e-3, weight decay 0.03, batch 252)",
            OCR_SOURCE,
            "official training script (train_attn1_1heads.sh)",
            lambda s, c: f"{_steps(c, experiment='main')} steps of AdamW",
        ),
    ),
    "laundry": (
        Reported(
            "accuracy against list length",
            "the model \"has trouble copying the correct information from context when many items 'crowd' "
            'this limited space"',
            LAUNDRY_SOURCE,
            "abstract (v4)",
            _laundry_length,
        ),
        Reported(
            "editing the low-rank channel",
            'representation and weight edits "significantly improve performance on our synthetic Laundry List '
            'task [...] often improving task accuracy by over 20%"',
            LAUNDRY_SOURCE,
            "abstract (v4)",
            _laundry_gain,
        ),
        Reported(
            "the model",
            "pretrained GPT-2 small (and Pythia-160m); a 3-dimensional positional subspace in GPT-2",
            LAUNDRY_SOURCE,
            "abstract (v4)",
            lambda s, c: "a small attention-only model trained from scratch on the toy task (configuration below)",
        ),
    ),
}


def reported(task: str) -> tuple[Reported, ...]:
    """The rows for ``task`` (empty for a task with none)."""
    return REPORTED.get(task, ())
