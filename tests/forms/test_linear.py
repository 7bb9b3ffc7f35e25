"""Linear attention: the three evaluations, feature maps across chunks, chunk sizes and the normaliser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.fastpath.numba.backward.linear import linear_vjp
from attnlab.fastpath.torch.linear import linear_attention as torch_linear
from attnlab.forms import get_form
from attnlab.reference.linear import (
    elu_plus_one,
    linear_attention,
    linear_attention_chunked,
    linear_attention_recurrent,
)
from attnlab.testing import check_path
from attnlab.testing.samples import qkv_sample
from attnlab.validation import reference_precision

torch.set_num_threads(1)
rng = np.random.default_rng(4)


@pytest.mark.parametrize("n", [1, 63, 100, 128])
def test_chunked_equals_recurrent_equals_quadratic(n: int) -> None:
    q, k, v = rng.standard_normal((2, n, 8)), rng.standard_normal((2, n, 8)), rng.standard_normal((2, n, 4))
    quadratic = linear_attention(q, k, v, causal=True)
    np.testing.assert_allclose(linear_attention_recurrent(q, k, v, causal=True), quadratic, atol=1e-12)
    np.testing.assert_allclose(linear_attention_chunked(q, k, v, chunk_size=16), quadratic, atol=1e-12)


def test_global_feature_scale_cancels_without_eps() -> None:
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    base = linear_attention(q, k, v, eps=0.0, causal=True)
    np.testing.assert_allclose(
        linear_attention(q, k, v, feature_map=lambda x: 7.5 * elu_plus_one(x), eps=0.0, causal=True), base, atol=1e-13
    )


def test_reweighting_one_key_changes_the_output() -> None:
    q, k, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    k2 = k.copy()
    k2[2] += 3.0  # phi(k_2) grows: key 2 gains weight in every row
    assert not np.allclose(linear_attention(q, k2, v), linear_attention(q, k, v))


def test_feature_map_elu1_is_strictly_positive() -> None:
    assert np.all(elu_plus_one(np.linspace(-50, 50, 1001)) > 0)


@pytest.mark.parametrize("feature_map", ["relu", "elu1", "callable"])
def test_numba_feature_maps_across_chunks(feature_map: str) -> None:
    sample = get_form("linear").sample(3, Shape(batch=1, heads=2, kv_heads=2, n=200, d=8, d_v=4, causal=True))
    fmap = (lambda x: x * x + 0.5) if feature_map == "callable" else feature_map
    sample = sample.with_args(*sample.args, feature_map=fmap)
    for dtype in ("float32", "float64"):
        check_path("linear", "numba", sample, dtype)


@pytest.mark.parametrize("chunk", [pytest.param(c, id=f"C{c}") for c in (1, 7, 64, 200)])
def test_torch_chunk_size_does_not_change_the_operator(chunk: int) -> None:
    q, k, v = qkv_sample((1, 2, 2, 100, 100, 8, 4, True, False), seed=3).args
    got = torch_linear(*(torch.tensor(a) for a in (q, k, v)), causal=True, chunk_size=chunk)
    assert np.max(np.abs(got.numpy() - linear_attention_recurrent(q, k, v, causal=True))) < 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "case",
    [
        pytest.param((1, 2, 1, 63, 63, 16, 8, True), id="n63-causal-gqa"),
        pytest.param((2, 4, 2, 100, 100, 8, 8, False), id="n100-gqa"),
        pytest.param((1, 2, 2, 64, 80, 32, 16, False), id="n64-m80"),
        pytest.param((1, 1, 1, 128, 128, 64, 8, True), id="n128-causal"),
    ],
)
def test_numba_vjp_across_chunks(case: tuple, dtype: str) -> None:
    check_path("linear", "numba", qkv_sample((*case, False)), dtype, grad=True)


def test_numba_vjp_relu_feature_map() -> None:
    s = qkv_sample((1, 2, 2, 100, 100, 8, 4, True, False))
    q, k, v = s.args
    k = k.copy()
    k[..., 0, :] = np.abs(k[..., 0, :]) + 0.5  # keep every denominator well above eps
    check_path(
        "linear",
        "numba",
        SampleInput((np.abs(q) + 0.1, k, v), {"causal": True, "feature_map": "relu"}),
        "float32",
        grad=True,
    )


def test_numba_vjp_rejects_callable_feature_map_and_causal_cross() -> None:
    q, k, v = qkv_sample((1, 2, 2, 5, 5, 4, 3, False, False)).args
    with pytest.raises(ValueError, match=r"feature_map"):
        linear_vjp(np.ones((1, 2, 5, 3)), q, k, v, feature_map=np.tanh)
    with pytest.raises(ValueError, match=r"causal.*n=5, m=6"):
        linear_vjp(np.ones((1, 2, 5, 3)), q, np.ones((1, 2, 6, 4)), np.ones((1, 2, 6, 3)), causal=True)


def test_torch_bad_chunk_size() -> None:
    q, k, v = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 3)
    with pytest.raises(ValueError, match=r"\bchunk_size\b"):
        torch_linear(q, k, v, causal=True, chunk_size=0)


def test_torch_elu1_feature_map_keeps_tiny_features() -> None:
    """Regression: elu(x) + 1 computed as (e^x − 1) + 1 cancels to 0 in float32 for x below about −17,
    which turns a = φ(q)·φ(k) = e^-30 into 0 and the output a v / (a + ε) into 0."""
    q, k, v = (torch.full((1, 1, 1, 1), value, dtype=torch.float32) for value in (-15.0, -15.0, 2.0))
    got = torch_linear(q, k, v, eps=1e-20)
    want = linear_attention(q.double().numpy(), k.double().numpy(), v.double().numpy(), eps=1e-20)
    assert abs(got.item() - want.item()) < 1e-5, (got.item(), want.item())


_STATE_Q = rng.standard_normal((2, 3, 5, 4))
_STATE_V = rng.standard_normal((2, 3, 5, 2))


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        (np.zeros((4, 2)), TypeError, "initial_state: expected a pair (S, z), got ndarray"),
        ((np.zeros((4, 2)), np.zeros(4), np.zeros(4)), TypeError, "initial_state: expected a pair (S, z), got tuple"),
        ((np.zeros(4), np.zeros(4)), ValueError, "initial_state[0]: expected at least 2 dims laid out (..., d_φ, d_v)"),
        (
            (np.zeros((4, 2)), np.float64(0.0)),
            ValueError,
            "initial_state[1]: expected at least 1 dims laid out (..., d_φ)",
        ),
        ((np.zeros((4, 2)), np.zeros((3, 0))), ValueError, "initial_state[1]: expected non-empty last axis"),
        (
            (np.zeros((2, 4)), np.zeros(4)),
            ValueError,
            "initial_state: expected S (..., 4, 2) and z (..., 4), got (2, 4)",
        ),
        (
            (np.zeros((4, 2)), np.zeros(3)),
            ValueError,
            "initial_state: expected S (..., 4, 2) and z (..., 4), got (4, 2) and (3,)",
        ),
        (
            (np.zeros((4, 3, 4, 2)), np.zeros(4)),
            ValueError,
            "initial_state: leading dims must broadcast to (2, 3), got",
        ),
        (("S", np.zeros(4)), TypeError, "initial_state[0]: expected a float NumPy array of shape (..., d_φ, d_v)"),
    ],
    ids=["not-a-pair", "triple", "S-1d", "z-0d", "z-empty", "S-transposed", "z-length", "lead", "S-string"],
)
def test_a_bad_initial_state_is_named_part_by_part(state, error, message) -> None:
    with pytest.raises(error) as caught:
        linear_attention_recurrent(_STATE_Q, _STATE_Q, _STATE_V, initial_state=state)
    assert str(caught.value).startswith(message)


def test_an_initial_state_broadcasts_over_the_leading_dims() -> None:
    """A per-head state ``(H, d_φ, d_v)`` with ``(H, d_φ)`` for ``(B, H, n, d)`` inputs equals the same
    state repeated over the batch."""
    state = (np.abs(rng.standard_normal((3, 4, 2))), np.abs(rng.standard_normal((3, 4))))
    full = tuple(np.broadcast_to(part, (2, *part.shape)) for part in state)
    args = (_STATE_Q, _STATE_Q, _STATE_V)
    np.testing.assert_allclose(
        linear_attention_recurrent(*args, initial_state=state),
        linear_attention_recurrent(*args, initial_state=full),
        rtol=0,
        atol=1e-14,
    )


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _user_map_inputs(seed: int = 21) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(0.5, 1.5, (1, 2, 6, 4)) for _ in range(3))


@pytest.mark.parametrize("zero_in", ["q", "k"])
def test_a_user_map_with_a_zero_feature_is_refused_at_eps_zero(zero_in) -> None:
    # with eps = 0 a zero feature can make a normaliser 0 (0/0): refused whether it is a query's or a key's,
    # and reported in the precision of the call; with eps > 0 the same call is fine
    q, k, v = _user_map_inputs()
    if zero_in == "q":
        q = q.copy()
        q[..., 2, :] = -1.0
    else:
        k = k.copy()
        k[..., 3, :] = -1.0
    linear_attention(q, k, v, feature_map=_relu, eps=1e-6)
    for dtype in (np.float64, np.float32):
        with reference_precision(dtype), pytest.raises(ValueError) as caught:
            linear_attention(q, k, v, feature_map=_relu, eps=0.0)
        assert str(caught.value).startswith(f"q/k/v/feature_map/eps: the result is not finite in {np.dtype(dtype)}")
        assert "(a zero feature with eps = 0: a zero normaliser divides 0 by 0)" in str(caught.value)


def test_a_user_map_must_keep_the_rows_and_one_width() -> None:
    q, k, v = _user_map_inputs()
    with pytest.raises(ValueError) as caught:
        linear_attention(q, k, v, feature_map=lambda x: x[..., :-1, :])
    assert str(caught.value) == ("feature_map(q): expected shape (1, 2, 6, 'd_φ') (the rows of q), got (1, 2, 5, 4)")
    widths = iter([4, 5])

    def growing(x: np.ndarray) -> np.ndarray:  # d_φ = 4 for the queries, 5 for the keys
        return np.concatenate([x, x], -1)[..., : next(widths)]

    with pytest.raises(ValueError) as caught:
        linear_attention(q, k, v, feature_map=growing)
    assert str(caught.value) == "feature_map(k): expected last axis of size 4 (d_φ of feature_map(q)), got (1, 2, 6, 5)"
    with pytest.raises(TypeError, match=r"^feature_map\(q\): expected a float NumPy array of shape \(\.\.\., 6, d_φ\)"):
        linear_attention(q, k, v, feature_map=lambda x: "features")


def test_causal_length_mismatch_names_both_lengths_without_batch_axes() -> None:
    rng = np.random.default_rng(22)
    q, k, v = rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    with pytest.raises(ValueError) as caught:
        linear_attention(q, k, v, causal=True)
    assert str(caught.value) == "q/k: causal linear attention needs equal query and key lengths, got n=6, m=5"
