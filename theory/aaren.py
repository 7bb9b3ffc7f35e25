"""Claims of Aaren (Feng et al. 2024, "Attention as an RNN", arXiv 2405.13956v2), as checks with overrides.

The checks are ``check(**overrides) -> CheckResult`` whose keyword parameters (all defaulted) are the
operators and constants they use, so each registered mutant is a set of overrides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.aaren import aaren_attention
from attnlab.reference.softmax import softmax_attention
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

#: Sequence lengths of the checks: 1, odd, a power of two and one past it (the scan's round boundaries).
LENGTHS = (1, 2, 7, 64, 65, 257)
#: Logit scales: ordinary, and large enough that an unshifted exp overflows.
LOGIT_SCALES = (1.0, 1000.0)
#: Two float64 evaluations of one quantity agree to this relative error.
AGREE = 1e-12


def _inputs(rng: np.random.Generator, m: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = rng.standard_normal((2, 1, 4))
    k = scale * rng.standard_normal((2, m, 4)) / np.linalg.norm(q, axis=-1, keepdims=True)
    v = rng.standard_normal((2, m, 3)) + 2.0
    return q, k, v


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def scan_equals_prefix_attention(
    *,
    operator: Callable[..., Any] = aaren_attention,
    reference: Callable[..., Any] = softmax_attention,
    lengths: tuple[int, ...] = LENGTHS,
    logit_scales: tuple[float, ...] = LOGIT_SCALES,
    tolerance: float = AGREE,
    seed: int = 0,
) -> CheckResult:
    """Paper §3: the prefix scan under ⊕ computes attention's many-to-many output
    ``o_t = Σ_{i<=t} softmax_i(s) v_i`` for every ``t`` (checked against causal softmax attention of the
    query repeated at every position, at ordinary and overflowing logit scales)."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    cases = 0
    for m in lengths:
        for scale in logit_scales:
            q, k, v = _inputs(rng, m, scale)
            with np.errstate(all="ignore"):
                got = np.asarray(operator(q, k, v, form="scan"), dtype=float)
            want = reference(np.repeat(q, m, axis=-2), k, v, causal=True)
            err = _relative(got, want) if got.shape == want.shape and np.all(np.isfinite(got)) else float("inf")
            worst = max(worst, err)
            cases += 1
    verdict = "holds" if worst <= tolerance else "falsified"
    return CheckResult(
        verdict,
        f"max relative |scan − prefix softmax| = {worst:.2e} (tolerance {tolerance:.0e}), "
        f"{cases} cases, m up to {max(lengths)}, logit scales {', '.join(f'{x:g}' for x in logit_scales)}",
        {"max_relative_error": worst, "cases": cases, "tolerance": tolerance},
    )


def constant_memory_update(
    *,
    operator: Callable[..., Any] = aaren_attention,
    length: int = 40,
    tolerance: float = AGREE,
    seed: int = 1,
) -> CheckResult:
    """Paper §3 (Aaren): it is updated with each new token from a state of constant size — stepping one
    token at a time from the returned ``(max, sum, acc)`` state gives the same outputs as one scan."""
    rng = np.random.default_rng(seed)
    q, k, v = _inputs(rng, length, 30.0)
    whole = operator(q, k, v, form="scan")
    state = None
    steps = []
    sizes = set()
    for t in range(length):
        out, state = operator(
            q, k[..., t : t + 1, :], v[..., t : t + 1, :], form="recurrent", initial_state=state, return_state=True
        )
        steps.append(out)
        sizes.add(sum(np.asarray(x).size for x in state))
    err = _relative(np.concatenate(steps, axis=-2), whole)
    constant = len(sizes) == 1
    verdict = "holds" if err <= tolerance and constant else "falsified"
    return CheckResult(
        verdict,
        f"token-by-token updates vs one scan: max relative error {err:.2e} (tolerance {tolerance:.0e}); "
        f"state size {'constant' if constant else 'varies'} ({sorted(sizes)} numbers)",
        {"max_relative_error": err, "state_sizes": sorted(sizes)},
    )


# ---------------------------------------------------------------------------------------------
# mutants (operators that are wrong in one known way)


def exclusive_scan(q: Any, k: Any, v: Any, **kwargs: Any) -> np.ndarray:
    """o_t from the keys before t (an exclusive scan), o_0 from key 0."""
    out = np.array(aaren_attention(q, k, v, **kwargs))
    out[..., 1:, :] = out[..., :-1, :].copy()
    return out


def unshifted_scan(q: Any, k: Any, v: Any, *, form: str = "scan", **kwargs: Any) -> np.ndarray:
    """The prefix sums of ``e^{s_i}`` without the running max (overflows at large logits)."""
    scores = np.einsum("...d,...md->...m", q[..., 0, :], k) / np.sqrt(q.shape[-1])
    w = np.exp(scores)
    return np.cumsum(w[..., None] * v, axis=-2) / np.cumsum(w, axis=-1)[..., None]


def forgets_state(
    q: Any, k: Any, v: Any, *, initial_state: Any = None, return_state: bool = False, **kwargs: Any
) -> Any:
    """A recurrent update that restarts from the empty state at every call."""
    return aaren_attention(q, k, v, return_state=return_state, **kwargs)


FAMILY = "aaren"
SOURCE_PAPER = paper("feng2024attention")

register(
    Claim(
        id="aaren.scan.prefix_attention",
        family=FAMILY,
        statement=(
            r"\bigoplus_{i\le t}(s_i, 1, v_i) \text{ by a parallel prefix scan gives } "
            r"o_t = \sum_{i\le t}\operatorname{softmax}_i(s)\, v_i \ \forall t"
        ),
        kind="paper",
        source=Source(
            SOURCE_PAPER,
            "§3 (Methodology: attention's many-to-many RNN output by the parallel prefix scan)",
            quote="a new efficient method of computing attention's many-to-many RNN output based on the parallel "
            "prefix scan algorithm",
            abstract_level=True,
        ),
        verdict="holds",
        quick=scan_equals_prefix_attention,
        mutants=(
            Mutant("exclusive_scan", "the scan is exclusive: o_t misses key t", {"operator": exclusive_scan}),
            Mutant(
                "unshifted_scan",
                "prefix sums of e^{s} without the running max (overflow)",
                {"operator": unshifted_scan},
            ),
        ),
        assumptions=(
            "one query token per head (Aaren's learned query); logit scale d_k^{-1/2}",
            "float64; lengths 1 to 257 across the scan's doubling rounds; logits of order 1 and 1e3",
        ),
    )
)

register(
    Claim(
        id="aaren.recurrent.constant_memory",
        family=FAMILY,
        statement=r"\text{Aaren is updated token by token from a state } (m_t, u_t, w_t) \text{ of constant size}",
        kind="paper",
        source=Source(
            SOURCE_PAPER,
            "§3 (Methodology: Aaren)",
            quote="be updated efficiently with new tokens, requiring only constant memory for inferences",
            abstract_level=True,
        ),
        verdict="holds",
        quick=constant_memory_update,
        mutants=(Mutant("forgets_state", "each update restarts from the empty state", {"operator": forgets_state}),),
        assumptions=("the state is (running max, sum, accumulator) per head; float64",),
    )
)
