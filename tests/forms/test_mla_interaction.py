"""MLA and the factorized interaction operator: what is specific to them and their fast paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput
from attnlab.fastpath.numba.backward.interaction import interaction_vjp
from attnlab.fastpath.numba.backward.mla import mla_vjp, rms_norm_vjp, rope_vjp
from attnlab.fastpath.numba.mla import mla_attention as numba_mla
from attnlab.fastpath.torch.interaction import factorized_interaction as torch_interaction
from attnlab.fastpath.torch.mla import TorchMLAWeights
from attnlab.fastpath.torch.mla import mla_attention as torch_mla
from attnlab.forms import get_form
from attnlab.forms.mla import random_weights
from attnlab.reference.interaction import factorized_interaction
from attnlab.reference.mla import MLAWeights, mla_attention, rms_norm, rope_interleaved
from attnlab.testing import check_path

torch.set_num_threads(1)


def test_mla_absorbed_equals_naive_with_query_lora_and_causal() -> None:
    weights = random_weights(3, d_model=24, n_heads=3, d_latent=10, d_q_latent=12, d_nope=6, d_rope=4, d_v=5)
    x = np.random.default_rng(10).standard_normal((2, 11, 24))
    np.testing.assert_allclose(
        mla_attention(x, weights, impl="absorb", causal=True), mla_attention(x, weights, causal=True), atol=1e-12
    )


def test_rope_scores_depend_only_on_the_offset() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((1, 8)), rng.standard_normal((1, 8))

    def score(i: int, j: int) -> float:
        return float((rope_interleaved(x, np.array([float(i)])) @ rope_interleaved(y, np.array([float(j)])).T)[0, 0])

    assert abs(score(3, 1) - score(10, 8)) < 1e-12
    assert abs(score(3, 1) - score(3, 2)) > 1e-6


def _mla(case: tuple, seed: int = 0) -> tuple[np.ndarray, MLAWeights]:
    batch, n, heads, d_q_latent = case
    weights = random_weights(
        seed, d_model=16, n_heads=heads, d_latent=6, d_q_latent=d_q_latent, d_nope=4, d_rope=4, d_v=5
    )
    return np.random.default_rng(seed + 1).standard_normal((batch, n, 16)), weights


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize(
    ("n", "causal", "masked"),
    [(63, True, False), (100, True, True), (128, False, False)],
    ids=["n63-causal", "n100-causal-mask", "n128"],
)
def test_mla_long_sequences(path: str, n: int, causal: bool, masked: bool) -> None:
    x, weights = _mla((1, n, 4, 12 if n % 2 else 0))
    kwargs: dict = {"causal": causal}
    if masked:
        kwargs["mask"] = np.random.default_rng(1).random((n, n)) < 0.7
    check_path("mla", path, SampleInput((x, weights), kwargs), "float32")


MLA_VJP_CASES = [
    pytest.param((1, 1, 2, 0, False), id="n1"),
    pytest.param((1, 1, 2, 8, True), id="n1-qlora-causal"),
    pytest.param((2, 9, 4, 0, True), id="n9-causal"),
    pytest.param((2, 16, 3, 8, False), id="n16-qlora"),
    pytest.param((1, 24, 4, 12, True), id="n24-qlora-causal"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", MLA_VJP_CASES)
def test_mla_vjp_cases(case: tuple, dtype: str) -> None:
    check_path("mla", "numba", SampleInput(_mla(case[:4]), {"causal": case[4]}), dtype, grad=True)


def test_mla_vjp_mask_scale_and_rope_base() -> None:
    x, weights = _mla((2, 10, 3, 8), seed=4)
    mask = np.random.default_rng(5).random((2, 1, 10, 10)) > 0.4
    mask[..., 3, :] = False  # a query that sees nothing: output 0, no NaN in the gradient
    check_path(
        "mla", "numba", SampleInput((x, weights), {"mask": mask, "scale": 0.6, "rope_base": 50.0}), "float64", grad=True
    )


def test_mla_both_impls_give_the_same_gradient() -> None:
    x, weights = _mla((2, 7, 2, 8), seed=2)
    grad = np.random.default_rng(3).standard_normal(x.shape)
    (naive,) = mla_vjp(grad, x, weights, impl="naive", causal=True)
    (absorb,) = mla_vjp(grad, x, weights, impl="absorb", causal=True)
    np.testing.assert_array_equal(naive, absorb)


def test_mla_vjp_is_a_directional_derivative_of_the_forward() -> None:
    x, weights = _mla((1, 8, 2, 8), seed=6)
    rng = np.random.default_rng(7)
    grad, direction = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    eps = 1e-5
    numeric = float(
        np.sum(
            grad
            * (
                numba_mla(x + eps * direction, weights, causal=True)
                - numba_mla(x - eps * direction, weights, causal=True)
            )
        )
        / (2 * eps)
    )
    (dx,) = mla_vjp(grad, x, weights, causal=True)
    assert abs(numeric - float(np.sum(dx * direction))) <= 1e-7 * max(1.0, abs(numeric))


def test_rms_norm_and_rope_transposes_match_finite_differences() -> None:
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
    x, weights = _mla((1, 4, 2, 0))
    with pytest.raises(TypeError, match="weights"):
        mla_vjp(np.ones((1, 4, 16)), x, "weights")
    with pytest.raises(ValueError, match="impl"):
        mla_vjp(np.ones((1, 4, 16)), x, weights, impl="flash")
    with pytest.raises(ValueError, match=r"\bx\b"):
        mla_vjp(np.ones((1, 4, 15)), x[..., :15], weights)


def test_torch_mla_weight_gradients_match_the_oracle() -> None:
    x, weights = _mla((1, 20, 4, 12), seed=2)
    tw = TorchMLAWeights.from_numpy(weights, torch.float64)
    w_ukv = tw.w_ukv.clone().requires_grad_(True)
    tw = TorchMLAWeights(**{**tw.__dict__, "w_ukv": w_ukv})
    xt = torch.tensor(x)
    upstream = torch.randn(1, 20, 16, dtype=torch.float64)
    (torch_mla(xt, tw, causal=True) * upstream).sum().backward()
    fast_grad = w_ukv.grad
    w_ukv.grad = None
    (get_form("mla").oracle(xt, tw, causal=True) * upstream).sum().backward()
    assert fast_grad is not None and w_ukv.grad is not None
    assert torch.allclose(fast_grad, w_ukv.grad, rtol=1e-10, atol=1e-12)


def test_torch_mla_rejects_weights_of_another_dtype() -> None:
    x, weights = _mla((1, 5, 4, 0))
    with pytest.raises(TypeError, match=r"\bweights\b.*float64"):
        torch_mla(torch.tensor(x, dtype=torch.float32), TorchMLAWeights.from_numpy(weights, torch.float64))


def test_interaction_with_identity_coefficients_is_a_per_token_map() -> None:
    rng = np.random.default_rng(12)
    x, u = rng.standard_normal((4, 3)), rng.standard_normal((2, 3, 3))
    alpha = np.stack([np.eye(4), 2 * np.eye(4)])
    np.testing.assert_allclose(factorized_interaction(x, alpha, u), x @ (u[0] + 2 * u[1]).T, atol=1e-13)


def _interaction(case: tuple, seed: int = 0) -> tuple[np.ndarray, ...]:
    x_batch, alpha_batch, heads, n, dim = case
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((x_batch, n, dim)),
        rng.standard_normal((alpha_batch, heads, n, n)) / np.sqrt(n),
        rng.standard_normal((heads, dim, dim)) / np.sqrt(dim),
    )


INTERACTION_CASES = [
    pytest.param((2, 2, 3, 63, 8), id="n63-H3"),
    pytest.param((2, 2, 4, 100, 6), id="n100-H4"),
    pytest.param((1, 1, 1, 128, 16), id="n128-H1"),
    pytest.param((1, 3, 2, 20, 5), id="x-broadcast-over-alpha-batch"),
    pytest.param((3, 1, 2, 20, 5), id="alpha-broadcast-over-x-batch"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", INTERACTION_CASES)
def test_interaction_paths_on_longer_and_broadcast_inputs(case: tuple, dtype: str) -> None:
    sample = SampleInput(_interaction(case), {})
    for path in ("numba", "torch"):
        check_path("interaction", path, sample, dtype)
        check_path("interaction", path, sample, dtype, grad=True)


def test_torch_interaction_low_rank_maps() -> None:
    x, alpha, _ = _interaction((2, 2, 3, 63, 8), seed=1)
    rng = np.random.default_rng(100)
    sample = SampleInput((x, alpha), {"w_v": rng.standard_normal((3, 8, 3)), "w_o": rng.standard_normal((3, 3, 8))})
    check_path("interaction", "torch", sample, "float32")


def test_torch_interaction_callable_coefficients() -> None:
    x, alpha, u = _interaction((1, 1, 2, 10, 4), seed=2)
    got = torch_interaction(torch.tensor(x), lambda t: torch.tensor(alpha), torch.tensor(u))
    assert np.max(np.abs(got.numpy() - factorized_interaction(x, alpha, u))) < 1e-12


def test_interaction_vjp_rejects_low_rank_maps() -> None:
    x, alpha, _ = _interaction((1, 1, 2, 4, 3))
    with pytest.raises(ValueError, match=r"\bu\b.*dense"):
        interaction_vjp(np.ones((1, 4, 3)), x, alpha, w_v=np.ones((2, 3, 2)), w_o=np.ones((2, 2, 3)))
