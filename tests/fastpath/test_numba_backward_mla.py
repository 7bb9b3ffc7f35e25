"""Numba MLA VJP (w.r.t. x) vs torch autograd of the composed naive MLA math (tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.fastpath.numba.backward import VJPS
from attnlab.fastpath.numba.backward.mla import mla_vjp, rms_norm_vjp, rope_vjp
from attnlab.fastpath.numba.backward.parity import check_vjp
from attnlab.fastpath.numba.mla import mla_attention
from attnlab.fastpath.torch.composed import composed_mla
from attnlab.reference import MLAWeights
from attnlab.reference.mla import rms_norm, rope_interleaved

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

# (batch, n, heads, d_q_latent, causal)
CASES = [
    pytest.param((1, 1, 2, 0, False), id="n1"),
    pytest.param((1, 1, 2, 8, True), id="n1-qlora-causal"),
    pytest.param((2, 9, 4, 0, True), id="n9-causal"),
    pytest.param((2, 16, 3, 8, False), id="n16-qlora"),
    pytest.param((1, 24, 4, 12, True), id="n24-qlora-causal"),
]


def _sample(case: tuple, seed: int = 0) -> tuple[np.ndarray, MLAWeights]:
    batch, n, heads, d_q_latent, _ = case
    weights = MLAWeights.random(
        seed, d_model=16, n_heads=heads, d_latent=6, d_q_latent=d_q_latent, d_nope=4, d_rope=4, d_v=5
    )
    return np.random.default_rng(seed + 1).standard_normal((batch, n, 16)), weights


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_mla_vjp_matches_autograd(case: tuple, dtype: str) -> None:
    x, weights = _sample(case)
    check_vjp("mla", mla_vjp, composed_mla, [x], {"weights": weights, "causal": case[-1]}, dtype)


def test_mla_vjp_mask_scale_and_rope_base() -> None:
    x, weights = _sample((2, 10, 3, 8, False), seed=4)
    mask = np.random.default_rng(5).random((2, 1, 10, 10)) > 0.4
    mask[..., 3, :] = False  # a query that sees nothing: output 0, no NaN in the gradient
    options = {"weights": weights, "mask": mask, "scale": 0.6, "rope_base": 50.0}
    check_vjp("mla", mla_vjp, composed_mla, [x], options, "float64")


def test_both_impls_give_the_same_gradient() -> None:
    x, weights = _sample((2, 7, 2, 8, True), seed=2)
    grad = np.random.default_rng(3).standard_normal(x.shape)
    (naive,) = mla_vjp(grad, x, weights, impl="naive", causal=True)
    (absorb,) = mla_vjp(grad, x, weights, impl="absorb", causal=True)
    np.testing.assert_array_equal(naive, absorb)


def test_mla_vjp_is_a_directional_derivative_of_the_forward() -> None:
    """⟨dY, J·δ⟩ from the VJP equals the central difference of the Numba forward along δ."""
    x, weights = _sample((1, 8, 2, 8, True), seed=6)
    rng = np.random.default_rng(7)
    grad, direction = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    eps = 1e-5
    plus = mla_attention(x + eps * direction, weights, causal=True)
    minus = mla_attention(x - eps * direction, weights, causal=True)
    numeric = float(np.sum(grad * (plus - minus)) / (2 * eps))
    (dx,) = mla_vjp(grad, x, weights, causal=True)
    assert abs(numeric - float(np.sum(dx * direction))) <= 1e-7 * max(1.0, abs(numeric))


def test_local_jacobians_match_finite_differences() -> None:
    """RMSNorm and RoPE transposes, each against a central difference of its forward."""
    rng = np.random.default_rng(8)
    x, weight, grad, direction = (rng.standard_normal((5, 6)) for _ in range(4))
    weight = weight[0]
    positions = np.arange(5, dtype=float)
    eps = 1e-6
    for forward, vjp in (
        (lambda a: rms_norm(a, weight), lambda g: rms_norm_vjp(x, weight, g)),
        (lambda a: rope_interleaved(a, positions, 100.0), lambda g: rope_vjp(g, positions, 100.0)),
    ):
        numeric = np.sum(grad * (forward(x + eps * direction) - forward(x - eps * direction))) / (2 * eps)
        assert abs(numeric - np.sum(vjp(grad) * direction)) <= 1e-8 * max(1.0, abs(numeric))


def test_mla_vjp_rejects_bad_inputs() -> None:
    x, weights = _sample((1, 4, 2, 0, False))
    with pytest.raises(ValueError, match=r"grad_out.*\(1, 4, 16\)"):
        mla_vjp(np.ones((1, 4, 15)), x, weights)
    with pytest.raises(TypeError, match="weights"):
        mla_vjp(np.ones((1, 4, 16)), x, "weights")
    with pytest.raises(ValueError, match="impl"):
        mla_vjp(np.ones((1, 4, 16)), x, weights, impl="flash")
    with pytest.raises(ValueError, match=r"\bx\b"):
        mla_vjp(np.ones((1, 4, 15)), x[..., :15], weights)


def test_registry_mapping_names_mla() -> None:
    assert VJPS["mla"] is mla_vjp
