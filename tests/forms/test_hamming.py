"""Hamming attention: sign(0) = +1, integer scores, top-N ties, and value-only gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.fastpath.numba.backward.hamming import hamming_vjp
from attnlab.fastpath.torch.hamming import hamming_attention as torch_hamming
from attnlab.fastpath.torch.hamming import hamming_scores as torch_scores
from attnlab.fastpath.torch.hamming import sign_code as torch_sign
from attnlab.forms import get_form
from attnlab.reference.hamming import hamming_attention, hamming_scores, sign_code
from attnlab.reference.softmax import softmax_attention
from attnlab.testing import check_path

torch.set_num_threads(1)
FORM = get_form("hamming")


def test_sign_of_zero_is_plus_one() -> None:
    assert (sign_code(np.array([0.0, -0.0, 1e-300, -1e-300])) == np.array([1, 1, 1, -1])).all()
    assert torch.equal(torch_sign(torch.tensor([[-2.0, 0.0, 3.0, -0.0]])), torch.tensor([[-1.0, 1.0, 1.0, 1.0]]))


def test_scores_take_only_d_plus_one_values() -> None:
    rng = np.random.default_rng(5)
    d = 7
    scores = hamming_scores(rng.standard_normal((30, d)), rng.standard_normal((40, d)), scale=1.0)
    assert set(np.unique(scores)).issubset(set(range(-d, d + 1, 2)))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_torch_scores_are_exact_integers(dtype: str) -> None:
    s = FORM.sample(4, Shape(batch=1, heads=4, kv_heads=2, n=50, d=300, d_v=2))
    q, k = (torch.tensor(a).to(getattr(torch, dtype)) for a in s.args[:2])
    scores = torch_scores(q, k, scale=1.0).double().numpy()
    want = hamming_scores(*s.args[:2], scale=1.0)
    if dtype == "bfloat16":  # bf16 holds integers exactly only up to 256 in magnitude
        want = torch.tensor(want).to(torch.bfloat16).double().numpy()
    assert np.array_equal(scores, want)


def test_top_n_keeps_every_tie_with_the_nth_value() -> None:
    q = np.array([[1.0, 1.0]])
    k = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # scores 2, 0, 0, -2
    out = hamming_attention(q, k, np.eye(4), scale=1.0, top_n=2)
    assert (out[0] > 0).tolist() == [True, True, True, False]
    qt, kt = torch.ones(1, 1, 3, 4), torch.ones(1, 1, 5, 4)  # every logit ties: top_n = 1 keeps all
    vt = torch.arange(10.0).reshape(1, 1, 5, 2)
    assert torch.allclose(torch_hamming(qt, kt, vt, top_n=1), vt.mean(dim=-2, keepdim=True).expand(1, 1, 3, 2))


@pytest.mark.parametrize("path", ["numba", "torch"])
@pytest.mark.parametrize("top_n", [1, 5, 40, 200])
def test_top_n_keeps_ties_across_tiles(path: str, top_n: int) -> None:
    """Few distinct distances (d = 6) make ties common: every key tied with the N-th must be kept."""
    s = FORM.sample(9, Shape(batch=1, heads=2, kv_heads=1, n=100, m=130, d=6, d_v=5, causal=True))
    check_path("hamming", path, s.with_args(*s.args, top_n=top_n), "float64")


def test_equals_softmax_on_sign_codes() -> None:
    rng = np.random.default_rng(6)
    q, k, v = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 7, 6)), rng.standard_normal((2, 7, 3))
    np.testing.assert_allclose(
        hamming_attention(q, k, v, causal=True),
        softmax_attention(sign_code(q), sign_code(k), v, causal=True),
        atol=1e-13,
    )


def test_causal_rows_with_no_visible_key_are_zero_in_reference_and_loop() -> None:
    """Regression for the first example hypothesis found: causal with m < n leaves the first n - m
    queries with no visible key (bottom-right alignment); both forms must return zeros there."""
    sample = FORM.sample(3, Shape(batch=1, heads=1, kv_heads=1, n=5, m=2, d=3, d_v=2, causal=True))
    out = sample.call(FORM.reference)
    np.testing.assert_array_equal(out[..., :3, :], 0.0)
    np.testing.assert_allclose(sample.call(FORM.brute_force), out, atol=1e-13)


def _vjp_sample(case: tuple, seed: int = 0) -> SampleInput:
    batch, heads, kv_heads, n, m, d, d_v, causal, masked, top_n = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, n, d))
    q[..., ::3, 0] = 0.0
    k = rng.standard_normal((batch, kv_heads, m, d))
    v = rng.standard_normal((batch, kv_heads, m, d_v))
    kwargs: dict = {"causal": causal}
    if masked:
        mask = rng.random((batch, 1, n, m)) > 0.3
        mask[..., n // 2, :] = False
        kwargs["mask"] = mask
    if top_n is not None:
        kwargs["top_n"] = top_n
    return SampleInput((q, k, v), kwargs, str(case))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "case",
    [
        pytest.param((1, 2, 1, 63, 63, 16, 8, True, False, None), id="n63-causal-gqa"),
        pytest.param((2, 4, 2, 100, 100, 8, 8, False, True, None), id="n100-mask-empty-row-gqa"),
        pytest.param((1, 2, 2, 64, 80, 32, 16, True, False, 7), id="n64-m80-causal-top7"),
        pytest.param((1, 2, 2, 40, 40, 6, 4, False, True, 3), id="n40-d6-mask-top3-ties"),
    ],
)
def test_numba_vjp_with_top_n_and_masks(case: tuple, dtype: str) -> None:
    check_path("hamming", "numba", _vjp_sample(case), dtype, grad=True)


def test_value_gradient_ignores_query_magnitude() -> None:
    """Positive rescaling of q leaves the codes, hence P and dV, unchanged."""
    q, k, v = _vjp_sample((1, 2, 2, 30, 30, 8, 4, True, False, None), seed=2).args
    grad = np.random.default_rng(3).standard_normal((1, 2, 30, 4))
    np.testing.assert_array_equal(
        hamming_vjp(grad, q, k, v, causal=True)[2], hamming_vjp(grad, q * 7.5, k, v, causal=True)[2]
    )


_Q, _K = np.ones((1, 3, 4, 4)), np.ones((1, 3, 5, 4))


@pytest.mark.parametrize(
    ("q", "k", "error", "message"),
    [
        ("codes", _K, TypeError, "q: expected a float {kind} of shape (..., n, d), got str"),
        (_Q, "codes", TypeError, "k: expected a float {kind} of shape (..., n, d), got str"),
        (
            _Q,
            _K[..., :3],
            ValueError,
            "k: expected last axis of size 4 (d_k, the last axis of q), got shape (1, 3, 5, 3)",
        ),
        (
            _Q,
            _K[:, :2],
            ValueError,
            "k: expected a KV head count that divides the 3 query heads of q on axis -3 (GQA/MQA), got 2 heads in "
            "shape (1, 2, 5, 4)",
        ),
    ],
)
@pytest.mark.parametrize("path", ["reference", "torch"])
def test_scores_helper_names_the_bad_argument_on_both_paths(q, k, error, message, path) -> None:
    # hamming_scores is public on both paths: the same call gets the same message
    scores, kind = (hamming_scores, "NumPy array") if path == "reference" else (torch_scores, "torch.Tensor")
    if path == "torch":
        q, k = (torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in (q, k))
    with pytest.raises(error) as caught:
        scores(q, k)
    assert str(caught.value) == message.format(kind=kind)
