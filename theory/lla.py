"""Claims about Local Linear Attention (Zuo et al. 2025, arXiv 2510.01450): the interpolation and the regression.

The paper's title calls LLA "an optimal interpolation of linear and softmax attention for test-time regression".
attnlab reads it as two checkable statements:

* ``lla.interpolation.endpoints``: with the ridge λ' → ∞ LLA becomes softmax attention (the local-constant fit),
  and with a flat kernel (scale → 0) it becomes global affine ridge regression of the values on the keys (the
  test-time-regression view of linear attention, with an intercept);
* ``lla.regression.beats_endpoints``: on test-time regression of a smooth non-linear target, LLA at its best
  bandwidth and ridge has a lower error than softmax attention and than global linear regression at theirs.

Each check takes the operators it runs as keyword parameters, so a deliberately wrong operator (a mutant) can be
passed in and must change the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.lla import lla_attention
from attnlab.reference.softmax import softmax_attention
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

SOURCE = Source(
    paper("zuo2025local"),
    "title; abstract ('theoretical advantages over Linear and Softmax Attention ... via a bias-variance trade-off')",
    abstract_level=True,
)

Operator = Callable[..., np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ridge_regression(q: np.ndarray, k: np.ndarray, v: np.ndarray, lam: float) -> np.ndarray:
    """Global affine ridge regression ``v ≈ b + W(k − q)`` with uniform weights, by least squares on the
    augmented design (the ridge on ``W`` only)."""
    m, d = k.shape[-2], k.shape[-1]
    out = np.empty((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-1]):
        design = np.concatenate([np.ones((m, 1)), k[idx[:-1]] - q[idx]], axis=-1) / np.sqrt(m)
        penalty = np.sqrt(lam) * np.concatenate([np.zeros((d, 1)), np.eye(d)], axis=-1)
        target = np.concatenate([v[idx[:-1]] / np.sqrt(m), np.zeros((d, v.shape[-1]))])
        theta = np.linalg.lstsq(np.concatenate([design, penalty]), target, rcond=None)[0]
        out[idx] = theta[0]
    return out


def check_endpoints(
    *,
    operator: Operator = lla_attention,
    softmax: Operator = softmax_attention,
    seed: int = 0,
    large_ridge: float = 1e8,
    flat_scale: float = 1e-12,
    flat_ridge: float = 0.5,
    queries: int = 9,
    keys: int = 40,
    tolerance: float = 1e-6,
) -> CheckResult:
    """λ' → ∞: ``operator`` approaches ``softmax`` at the rate ``1/λ'`` (ten times closer for ten times the ridge);
    scale → 0: it equals global affine ridge regression."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, queries, 3)), rng.standard_normal((2, keys, 3))
    v = rng.standard_normal((2, keys, 2))
    to_softmax = float(np.max(np.abs(operator(q, k, v, lam=large_ridge) - softmax(q, k, v))))
    half_way = float(np.max(np.abs(operator(q, k, v, lam=large_ridge / 10) - softmax(q, k, v))))
    lam = flat_ridge
    to_regression = float(
        np.max(np.abs(operator(q, k, v, lam=lam, scale=flat_scale) - _ridge_regression(q, k, v, lam)))
    )
    rate = half_way / to_softmax if to_softmax > 0 else float("inf")
    holds = to_softmax <= tolerance and to_regression <= tolerance and 8.0 <= rate <= 12.0
    evidence = (
        f"max |LLA(λ' = {large_ridge:.0e}) − softmax| = {to_softmax:.1e} ({rate:.3g}× that at λ'/10); "
        f"max |LLA(scale = {flat_scale:.0e}) − ridge regression| = {to_regression:.1e}; tolerance {tolerance:.0e}"
    )
    data = {"to_softmax": to_softmax, "rate": rate, "to_regression": to_regression}
    return CheckResult("holds" if holds else "falsified", evidence, data)


def _target(x: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(2.5 * x[..., 0]) + x[..., 1] ** 2, np.cos(2.0 * x[..., 2]) * x[..., 0]], axis=-1)


def check_beats_endpoints(
    *,
    operator: Operator = lla_attention,
    softmax: Operator = softmax_attention,
    seed: int = 0,
    trials: int = 4,
    keys: int = 256,
    queries: int = 64,
    noise: float = 0.05,
    scales: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0),
    ridges: tuple[float, ...] = (1e-3, 1e-2, 1e-1),
    margin: float = 0.8,
) -> CheckResult:
    """Test-time regression of ``f(k) = (sin 2.5k₁ + k₂², cos 2k₃ · k₁)`` from noisy pairs on the unit sphere in
    R³: mean squared error at the queries for LLA (best scale and ridge), softmax attention (best scale) and
    global linear regression (LLA with a flat kernel, best ridge). Holds if LLA's error is below ``margin`` times
    the better of the other two."""
    rng = np.random.default_rng(seed)
    errors: dict[tuple[Any, ...], list[float]] = {}
    for _ in range(trials):
        k = _unit(rng.standard_normal((1, keys, 3)))
        q = _unit(rng.standard_normal((1, queries, 3)))
        v = _target(k) + noise * rng.standard_normal((1, keys, 2))
        truth = _target(q)
        for scale in scales:
            errors.setdefault(("softmax", scale), []).append(
                float(np.mean((softmax(q, k, v, scale=scale) - truth) ** 2))
            )
            for lam in ridges:
                out = operator(q, k, v, scale=scale, lam=lam)
                errors.setdefault(("lla", scale, lam), []).append(float(np.mean((out - truth) ** 2)))
        for lam in (*ridges, 1.0):
            out = operator(q, k, v, scale=1e-12, lam=lam)
            errors.setdefault(("linear", lam), []).append(float(np.mean((out - truth) ** 2)))
    best: dict[str, tuple[float, tuple[Any, ...]]] = {}
    for key, values in errors.items():
        mean = float(np.mean(values))
        if key[0] not in best or mean < best[key[0]][0]:
            best[key[0]] = (mean, key)
    lla, soft, linear = best["lla"][0], best["softmax"][0], best["linear"][0]
    verdict = "holds" if lla < margin * min(soft, linear) else "falsified"
    evidence = (
        f"test MSE: LLA {lla:.2e} (scale {best['lla'][1][1]:g}, λ {best['lla'][1][2]:g}), softmax {soft:.2e} "
        f"(scale {best['softmax'][1][1]:g}), linear regression {linear:.2e} (λ {best['linear'][1][1]:g}); "
        f"holds if LLA < {margin} × min"
    )
    return CheckResult(verdict, evidence, {"lla": lla, "softmax": soft, "linear": linear})



def softmax_in_disguise(
    q: Any, k: Any, v: Any, *, scale: float | None = None, lam: float = 1.0, **kw: Any
) -> np.ndarray:
    """A wrong LLA: the local-linear correction dropped (softmax attention whatever the ridge)."""
    return softmax_attention(q, k, v, scale=scale)


def ridge_ignored(q: Any, k: Any, v: Any, *, lam: float = 1.0, **kw: Any) -> np.ndarray:
    """A wrong LLA: the ridge is ignored (always the unregularised fit)."""
    return lla_attention(q, k, v, lam=0.0, **kw)


register(
    Claim(
        id="lla.interpolation.endpoints",
        family="lla",
        statement=(
            r"$\lambda' \to \infty$: LLA $\to$ softmax attention at the rate $1/\lambda'$; "
            r"$\sigma \to 0$ (flat kernel): LLA $\to$ global affine ridge regression of $v$ on $k$"
        ),
        kind="reading",
        reads="the title's 'interpolation of linear and softmax attention'",
        source=SOURCE,
        verdict="holds",
        quick=check_endpoints,
        assumptions=(
            "two heads, 9 queries, 40 keys in R³, values in R², N(0, 1) entries",
            "ridge 0.5 for the flat kernel",
        ),
        mutants=(
            Mutant("softmax_in_disguise", "the local-linear correction is dropped", {"operator": softmax_in_disguise}),
            Mutant("ridge_ignored", "the ridge is ignored (always the unregularised fit)", {"operator": ridge_ignored}),
        ),
    )
)

register(
    Claim(
        id="lla.regression.beats_endpoints",
        family="lla",
        statement=(
            r"On test-time regression of a smooth non-linear target, each at its best scale and ridge: "
            r"$\mathrm{MSE}_{\mathrm{LLA}} < 0.8 \min(\mathrm{MSE}_{\mathrm{softmax}}, \mathrm{MSE}_{\mathrm{linear}})$"
        ),
        kind="reading",
        reads="the title's 'optimal interpolation ... for test-time regression' (the bias-variance advantage)",
        source=SOURCE,
        verdict="holds",
        quick=check_beats_endpoints,
        assumptions=(
            "f(k) = (sin 2.5k₁ + k₂², cos 2k₃ · k₁); 256 noisy (σ = 0.05) pairs, 64 queries, unit sphere in R³",
            "best over scales 2…256 and ridges 1e-3…1e-1 (linear regression: LLA with a flat kernel), 4 trials",
        ),
        mutants=(
            Mutant("softmax_in_disguise", "the local-linear correction is dropped", {"operator": softmax_in_disguise}),
        ),
    )
)
