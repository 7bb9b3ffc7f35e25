"""EcoFormer's linear-time claim (family ``ecoformer``).

Liu et al. 2022, "EcoFormer: Energy-Saving Attention with Linear Complexity" (arXiv 2209.09004, NeurIPS
2022), abstract, close paraphrase: the inner product of ±1 binary codes is equivalent to their code
distance, and with the associativity of the matrix product the attention, expressed as a dot product of
binary codes, is computed in linear complexity. The check runs the lab's float64 reference
(:mod:`attnlab.reference.ecoformer`) on random draws: codes are exactly ±1 with ``h·h' = b − 2·dist``
(integers), and the linear-time evaluation equals the quadratic one. Only the abstract was read.

The paper's other statement, that the learned hash functions preserve the attention's pairwise similarity
ordering, concerns the trained hash (a separate SGD step on self-supervised top-k targets) and is not
checked: the lab's operator takes the hash weights as inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from attnlab.papers import Source, paper
from attnlab.reference.ecoformer import (
    binary_codes,
    ecoformer_attention,
    ecoformer_attention_linear,
    kernel_features,
    unit_rows,
)
from attnlab.theory.registry import CheckResult, Claim, Mutant, register

FAMILY = "ecoformer"
SOURCE = Source(
    paper("liu2022ecoformer"),
    "abstract",
    quote=(
        "(close paraphrase) the inner product of binary codes is equivalent to their code distance; with the "
        "associative property of matrix multiplication the attention is approximated in linear complexity as a "
        "dot product of binary codes"
    ),
    abstract_level=True,
)


def _draw(rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    heads, n, d, d_v = (
        int(rng.integers(1, 4)),
        int(rng.integers(1, 200)),
        int(rng.integers(2, 17)),
        int(rng.integers(1, 9)),
    )
    bits, count = int(rng.integers(1, 33)), int(rng.integers(1, 21))
    qk = rng.standard_normal((1, heads, n, d))
    v = rng.standard_normal((1, heads, n, d_v))
    anchors = rng.standard_normal((heads, count, d))
    anchors *= rng.uniform(0.5, 1.5, (heads, count, 1)) / np.linalg.norm(anchors, axis=-1, keepdims=True)
    hash_weights = rng.standard_normal((heads, bits, count))
    hash_weights[:, 0, :] = 0.0  # one bit decided by sign(0) = +1
    kernel_mean = rng.uniform(0.0, 0.5, (heads, count))
    causal = bool(rng.integers(0, 2))
    kwargs: dict[str, Any] = {"causal": causal, "bandwidth": float(rng.uniform(0.2, 2.0))} if causal else {}
    return (qk, v, anchors, hash_weights, kernel_mean), kwargs


def linear_time_binary_codes(
    *,
    quadratic: Callable[..., np.ndarray] = ecoformer_attention,
    linear: Callable[..., np.ndarray] = ecoformer_attention_linear,
    codes: Callable[..., np.ndarray] = binary_codes,
    draws: int = 12,
    seed: int = 0,
) -> CheckResult:
    """Codes ±1 with ``h·h' = b − 2·dist`` exactly, and linear-time = quadratic attention (≤ 1e-12)."""
    rng = np.random.default_rng(seed)
    worst, identity_ok, longest = 0.0, True, 0
    for _ in range(draws):
        args, kwargs = _draw(rng)
        h = codes(args[0], *args[2:], bandwidth=kwargs.get("bandwidth"))
        bits = h.shape[-1]
        distance = np.sum(h[..., :, None, :] != h[..., None, :, :], axis=-1)
        identity_ok &= bool(np.all(np.abs(h) == 1.0)) and bool(
            np.array_equal(h @ np.swapaxes(h, -1, -2), bits - 2 * distance)
        )
        want = quadratic(*args, **kwargs)
        worst = max(
            worst, float(np.max(np.abs(linear(*args, **kwargs) - want))) / max(1.0, float(np.max(np.abs(want))))
        )
        longest = max(longest, args[0].shape[-2])
    ok = identity_ok and worst <= 1e-12
    evidence = (
        f"h·h' = b − 2·dist exactly: {identity_ok}; max |linear − quadratic| = {worst:.1e} <= 1e-12 "
        f"over {draws} draws (n <= {longest}, causal and not)"
    )
    return CheckResult("holds" if ok else "falsified", evidence, {"max_relative_error": worst, "identity": identity_ok})


def _offset_dropped_from_values(
    qk: Any, v: Any, anchors: Any, hash_weights: Any, kernel_mean: Any, **kwargs: Any
) -> np.ndarray:
    """The linear form with the offset kept in the denominator only (a plausible transcription slip)."""
    h = binary_codes(qk, anchors, hash_weights, kernel_mean, bandwidth=kwargs.get("bandwidth"))
    n = h.shape[-2]
    inner = h @ np.swapaxes(h, -1, -2)
    visible = np.tril(np.ones((n, n))) if kwargs.get("causal") else np.ones((n, n))
    return ((visible * inner) @ v) / np.sum(visible * (inner + h.shape[-1] + 1.0), axis=-1, keepdims=True)


def _sign_with_zero_bits(
    qk: Any, anchors: Any, hash_weights: Any, kernel_mean: Any, *, bandwidth: float | None = None
) -> np.ndarray:
    features = kernel_features(
        unit_rows(np.asarray(qk, dtype=float)), np.asarray(anchors), np.asarray(kernel_mean), bandwidth
    )
    return np.sign(features @ np.swapaxes(np.asarray(hash_weights), -1, -2))


register(
    Claim(
        id="ecoformer.linear_time.binary_code_product",
        family=FAMILY,
        statement=(
            r"h_i^\top h_j = b - 2\,\mathrm{dist}(h_i, h_j)\ \text{and}\ "
            r"o_i = \frac{h_i^\top(H^\top V) + c\sum_j v_j}{h_i^\top\sum_j h_j + c\,n} = "
            r"\frac{\sum_j (h_i^\top h_j + c) v_j}{\sum_j (h_i^\top h_j + c)}"
        ),
        kind="paper",
        source=SOURCE,
        verdict="holds",
        quick=linear_time_binary_codes,
        mutants=(
            Mutant(
                "linear_offset_dropped",
                "the linear form keeps the offset c only in the denominator",
                {"linear": _offset_dropped_from_values},
            ),
            Mutant(
                "torch_sign_codes",
                "codes by np.sign (torch.sign): a projection of exactly 0 gives a 0 bit",
                {"codes": _sign_with_zero_bits},
            ),
        ),
        assumptions=("the released code's operator (offset c = b + 1, sign(0) = +1)", "causal runs use prefix sums"),
    )
)
