"""Family ``differential``: sensitivity of differential attention under negative gradient alignment.

Source: Takahashi, Yamabe, Waseda & Sasaki, "Understanding Sensitivity of Differential Attention through
the Lens of Adversarial Robustness" (arXiv 2510.00517, ICLR 2026). Only the abstract has been read:
"negative gradient alignment — a configuration encouraged by DA's subtraction — [is] the key driver of
sensitivity amplification, leading to increased gradient norms and elevated local Lipschitz constants".

Setting. One differential attention head on tokens ``X (n × D)``: ``f(X) = f₁(X) − λ f₂(X)`` with the
branches ``f_b = softmax(σ (X W_Q^b)(X W_K^b)ᵀ)(X W_V)`` (DIFF V1; Ye et al., arXiv 2410.05258), ``λ > 0``.
Standard attention is the signal branch ``f₁`` alone. For a loss ``L = ⟨c, f⟩`` the input gradients obey
``g = g₁ − λ g₂``, hence ``‖g‖² = ‖g₁‖² + λ²‖g₂‖² − 2λ⟨g₁, g₂⟩``: negative alignment ``⟨g₁, g₂⟩ < 0``
makes ``‖g‖ > ‖g₁‖``. The Jacobians obey ``J = J₁ − λ J₂``; the local Lipschitz constant is ``‖J‖₂``.

Both checks draw random heads, build ``J₁``, ``J₂`` by central differences of the softmax branches and
``J`` by central differences of the differential-attention operator under test, so an operator that is
not the difference of its branches (a planted sign, a dropped λ) is caught before the statements are
judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.differential import differential_attention
from attnlab.reference.softmax import softmax_attention
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

SOURCE = Source(
    paper("takahashi2025sensitivity"),
    "abstract",
    quote=(
        "negative gradient alignment-a configuration encouraged by DA's subtraction-as the key driver of "
        "sensitivity amplification, leading to increased gradient norms and elevated local Lipschitz constants"
    ),
    abstract_level=True,
)
#: Sizes of one random head: tokens, model width, query/key dim, value dim.
N, WIDTH, D_QK, D_V = 4, 5, 3, 3
#: Central-difference step, and the agreement required of ``J`` with ``J₁ − λ J₂`` (difference noise ~1e-9).
STEP = 1e-6
IDENTITY_TOL = 1e-6
DRAWS = 100
LAMBDA = 0.6


@dataclass(frozen=True)
class Draw:
    """One random head: the operator's Jacobian ``J``, the branch Jacobians ``J₁``, ``J₂`` and a loss weight ``c``."""

    jac: np.ndarray
    jac1: np.ndarray
    jac2: np.ndarray
    weight: np.ndarray


def _jacobians(operator: Callable[..., Any], lam: float, rng: np.random.Generator) -> Draw:
    x = rng.standard_normal((N, WIDTH))
    w_q1, w_k1, w_q2, w_k2 = (rng.standard_normal((WIDTH, D_QK)) for _ in range(4))
    w_v = rng.standard_normal((WIDTH, D_V))

    def outputs(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q1, k1, q2, k2, v = (tokens @ w for w in (w_q1, w_k1, w_q2, w_k2, w_v))
        diff = np.asarray(operator(q1, k1, q2, k2, v, lam=lam))
        return diff.ravel(), softmax_attention(q1, k1, v).ravel(), softmax_attention(q2, k2, v).ravel()

    columns: list[list[np.ndarray]] = [[], [], []]
    for i in range(N * WIDTH):
        step = np.zeros(N * WIDTH)
        step[i] = STEP
        plus, minus = outputs(x + step.reshape(N, WIDTH)), outputs(x - step.reshape(N, WIDTH))
        for b in range(3):
            columns[b].append((plus[b] - minus[b]) / (2 * STEP))
    jac, jac1, jac2 = (np.stack(cols, axis=1) for cols in columns)
    return Draw(jac, jac1, jac2, rng.standard_normal(N * D_V))


@cache
def draws(operator: Callable[..., Any], lam: float, count: int, seed: int) -> tuple[Draw, ...]:
    """``count`` random heads (cached: both claims judge the same draws)."""
    rng = np.random.default_rng(seed)
    return tuple(_jacobians(operator, lam, rng) for _ in range(count))


def _decomposition_error(sample: tuple[Draw, ...], lam: float) -> float:
    return max(float(np.max(np.abs(d.jac - (d.jac1 - lam * d.jac2)))) for d in sample)


def checked_draws(operator: Callable[..., Any], lam: float, count: int, seed: int) -> tuple[Draw, ...] | CheckResult:
    """The draws, or the falsifying result when the operator is not ``f₁ − λ f₂`` (tried on one head first,
    so that a broken operator costs one draw)."""
    for sample in (draws(operator, lam, 1, seed), draws(operator, lam, count, seed)):
        error = _decomposition_error(sample, lam)
        if error > IDENTITY_TOL:
            evidence = f"the operator is not f₁ − λ f₂: max |J − (J₁ − λJ₂)| = {error:.2e}"
            return CheckResult("falsified", evidence, {"decomposition_error": error})
    return sample


def gradient_norm_check(
    *,
    operator: Callable[..., Any] = differential_attention,
    lam: float = LAMBDA,
    alignment: str = "negative",
    count: int = DRAWS,
    seed: int = 0,
) -> CheckResult:
    """Among draws whose branch gradients are ``alignment``-ly aligned, is ``‖g‖ > ‖g₁‖`` every time?"""
    sample = checked_draws(operator, lam, count, seed)
    if isinstance(sample, CheckResult):
        return sample
    error = _decomposition_error(sample, lam)
    ratios, cosines = [], []
    for d in sample:
        g, g1, g2 = d.weight @ d.jac, d.weight @ d.jac1, d.weight @ d.jac2
        cosines.append(float(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2))))
        ratios.append(float(np.linalg.norm(g) / np.linalg.norm(g1)))
    cos, ratio = np.array(cosines), np.array(ratios)
    chosen = cos < 0 if alignment == "negative" else cos >= 0
    amplified = float(np.mean(ratio[chosen] > 1.0)) if chosen.any() else 0.0
    data = {
        "draws": count,
        "lambda": lam,
        "selected": int(chosen.sum()),
        "amplified_fraction": amplified,
        "mean_ratio_selected": float(ratio[chosen].mean()) if chosen.any() else None,
        "mean_ratio_others": float(ratio[~chosen].mean()) if (~chosen).any() else None,
        "decomposition_error": error,
    }
    evidence = (
        f"‖g‖ > ‖g₁‖ in {amplified:.0%} of {int(chosen.sum())} {alignment}ly aligned draws (mean ratio "
        f"{data['mean_ratio_selected']:.3f} vs {data['mean_ratio_others']:.3f} otherwise); J = J₁ − λJ₂ to {error:.1e}"
    )
    return CheckResult("holds" if chosen.any() and amplified == 1.0 else "falsified", evidence, data)


def lipschitz_check(
    *,
    operator: Callable[..., Any] = differential_attention,
    lam: float = LAMBDA,
    direction: str = "signal",
    count: int = DRAWS,
    seed: int = 0,
) -> CheckResult:
    """Is ``‖J‖₂ > ‖J₁‖₂`` under negative alignment, measured (a) along ``direction``'s top singular vector
    (``signal``: standard attention's ``J₁``; ``noise``: ``J₂``) and (b) as Frobenius alignment ``⟨J₁, J₂⟩_F < 0``?

    ``holds``: both always; ``refined``: (a) always but (b) not; ``falsified``: (a) fails.
    """
    sample = checked_draws(operator, lam, count, seed)
    if isinstance(sample, CheckResult):
        return sample
    error = _decomposition_error(sample, lam)
    directional, frobenius, raised = [], [], []
    for d in sample:
        top = np.linalg.svd(d.jac1 if direction == "signal" else d.jac2)[2][0]
        directional.append(float((d.jac1 @ top) @ (d.jac2 @ top)))
        frobenius.append(float(np.sum(d.jac1 * d.jac2)))
        raised.append(bool(np.linalg.norm(d.jac, 2) > np.linalg.norm(d.jac1, 2)))
    raised_arr = np.array(raised)
    along = np.array(directional) < 0
    fro = np.array(frobenius) < 0
    along_fraction = float(raised_arr[along].mean()) if along.any() else 0.0
    fro_fraction = float(raised_arr[fro].mean()) if fro.any() else 0.0
    data = {
        "draws": count,
        "lambda": lam,
        "direction": direction,
        "directional_negative": int(along.sum()),
        "raised_given_directional": along_fraction,
        "frobenius_negative": int(fro.sum()),
        "raised_given_frobenius": fro_fraction,
        "raised_overall": float(raised_arr.mean()),
        "decomposition_error": error,
    }
    evidence = (
        f"‖J‖₂ > ‖J₁‖₂ in {along_fraction:.0%} of {int(along.sum())} draws negatively aligned along J"
        f"{'₁' if direction == 'signal' else '₂'}'s top direction, {fro_fraction:.0%} of {int(fro.sum())} with "
        f"⟨J₁, J₂⟩_F < 0, {raised_arr.mean():.0%} overall"
    )
    if not along.any() or along_fraction < 1.0:
        return CheckResult("falsified", evidence, data)
    return CheckResult("holds" if fro.any() and fro_fraction == 1.0 else "refined", evidence, data)


def _summed_branches(q1: Any, k1: Any, q2: Any, k2: Any, v: Any, *, lam: Any, **kwargs: Any) -> np.ndarray:
    """A planted error: ``f₁ + λ f₂`` (the subtraction's sign lost)."""
    return differential_attention(q1, k1, q2, k2, v, lam=-lam, **kwargs)


def _lambda_dropped(q1: Any, k1: Any, q2: Any, k2: Any, v: Any, *, lam: Any, **kwargs: Any) -> np.ndarray:
    """A planted error: ``f₁ − f₂`` whatever λ is."""
    return differential_attention(q1, k1, q2, k2, v, lam=1.0, **kwargs)


register(
    Claim(
        id="differential.sensitivity.gradient_norm",
        family="differential",
        statement=(
            r"For $f = f_1 - \lambda f_2$ with $\lambda > 0$ and $L = \langle c, f\rangle$: "
            r"$\langle \nabla L_1, \nabla L_2\rangle < 0 \Rightarrow \|\nabla L\| > \|\nabla L_1\|$, "
            r"i.e. negative gradient alignment raises the gradient norm above standard attention's"
        ),
        kind="paper",
        source=SOURCE,
        verdict="holds",
        quick=gradient_norm_check,
        assumptions=(
            "one DIFF V1 head on random tokens and projections (n = 4, D = 5, d = 3), λ = 0.6",
            "standard attention = the signal branch f₁; gradients and Jacobians by central differences",
        ),
        mutants=(
            Mutant(
                "summed_branches", "the operator adds λ f₂ instead of subtracting it", {"operator": _summed_branches}
            ),
            Mutant(
                "lambda_dropped", "the operator subtracts f₂ with weight 1, ignoring λ", {"operator": _lambda_dropped}
            ),
            Mutant("positive_alignment", "the statement judged on positively aligned draws", {"alignment": "positive"}),
        ),
    )
)

register(
    Claim(
        id="differential.sensitivity.lipschitz",
        family="differential",
        statement=(
            r"Negative alignment of the branch Jacobians raises the local Lipschitz constant: "
            r"$\|J_1 - \lambda J_2\|_2 > \|J_1\|_2$ (standard attention's), $\lambda > 0$"
        ),
        kind="paper",
        source=SOURCE,
        verdict="refined",
        reason=(
            "holds whenever J₁u and J₂u are negatively aligned along standard attention's most sensitive input "
            "direction u (then ‖Ju‖² = ‖J₁‖₂² + λ²‖J₂u‖² − 2λ⟨J₁u, J₂u⟩ > ‖J₁‖₂²); negative alignment as "
            "⟨J₁, J₂⟩_F < 0 is not enough (a minority of such draws lower ‖J‖₂)"
        ),
        condition=(
            "J₁u and J₂u negatively aligned along standard attention's most sensitive input direction u "
            "(⟨J₁u, J₂u⟩ < 0 for the top right singular vector u of J₁)"
        ),
        quick=lipschitz_check,
        assumptions=(
            "one DIFF V1 head on random tokens and projections (n = 4, D = 5, d = 3), λ = 0.6",
            "Lipschitz constant = spectral norm of the input Jacobian; Jacobians by central differences",
        ),
        mutants=(
            Mutant(
                "summed_branches", "the operator adds λ f₂ instead of subtracting it", {"operator": _summed_branches}
            ),
            Mutant(
                "noise_direction", "alignment measured along the noise branch's top direction", {"direction": "noise"}
            ),
        ),
    )
)
