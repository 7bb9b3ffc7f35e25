"""EcoFormer-specific checks beyond the generic declaration-driven suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import Shape
from attnlab.fastpath.torch.ecoformer import ecoformer_attention as torch_ecoformer
from attnlab.forms.ecoformer import sample
from attnlab.reference.ecoformer import (
    binary_codes,
    ecoformer_attention,
    ecoformer_attention_linear,
    kernel_features,
    running_sums,
    unit_rows,
)
from attnlab.validation import reference_precision


def _long(causal: bool, n: int = 300):
    options = (("anchors", 12), ("bits", 16)) + ((("bandwidth", 0.6),) if causal else ())
    return sample(3, Shape(batch=1, heads=2, kv_heads=2, n=n, d=16, d_v=8, causal=causal, options=options))


@pytest.mark.parametrize("causal", [False, True])
def test_linear_form_equals_quadratic_form_at_length_300(causal: bool) -> None:
    s = _long(causal)
    np.testing.assert_allclose(
        ecoformer_attention_linear(*s.args, **s.kwargs), s.call(ecoformer_attention), rtol=0, atol=1e-12
    )


def test_torch_chunked_causal_form_across_many_chunks_in_float64() -> None:
    s = _long(True, n=333)  # five chunks of 64 and a partial one
    out = torch_ecoformer(*(torch.from_numpy(a) for a in s.args), **s.kwargs)
    np.testing.assert_allclose(out.numpy(), s.call(ecoformer_attention), rtol=0, atol=1e-12)


def test_a_zero_hash_row_gives_a_plus_one_bit_for_every_token() -> None:
    s = sample(
        0, Shape(batch=1, heads=2, kv_heads=2, n=7, d=5, d_v=3, values="tied", options=(("anchors", 4), ("bits", 5)))
    )
    qk, _, anchors, hash_weights, kernel_mean = s.args
    assert np.all(hash_weights[:, -1, :] == 0.0)
    codes = binary_codes(qk, anchors, hash_weights, kernel_mean)
    assert np.all(codes[..., -1] == 1.0), "sign(0) must be +1 (torch.sign would give a 0 bit)"


def test_fixed_bandwidth_codes_are_token_local_and_the_default_is_not() -> None:
    s = sample(1, Shape(batch=1, heads=1, kv_heads=1, n=12, d=6, d_v=2, options=(("anchors", 5), ("bits", 24))))
    qk, _, anchors, hash_weights, kernel_mean = s.args
    far = qk.copy()
    far[..., -1, :] = -qk[..., 0, :]  # move the last token to the antipode of the first
    fixed = [binary_codes(x, anchors, hash_weights, kernel_mean, bandwidth=0.5)[..., :-1, :] for x in (qk, far)]
    np.testing.assert_array_equal(fixed[0], fixed[1])
    # the default bandwidth is a mean over every token: moving one token moves every other token's features
    features = [kernel_features(unit_rows(x), anchors, kernel_mean, None)[..., 0, :] for x in (qk, far)]
    assert float(np.abs(features[0] - features[1]).max()) > 1e-6  # ~1e-4 here, far above rounding


def test_running_totals_are_the_last_prefix_sum_for_every_token() -> None:
    # (batch, head, n, b, d_v + 1): distinct sizes, so a sum or a broadcast on the wrong axis cannot pass
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 6))
    totals = running_sums(x, causal=False)
    assert totals.shape == x.shape
    np.testing.assert_allclose(
        totals, np.broadcast_to(running_sums(x, causal=True)[..., -1:, :, :], x.shape), atol=1e-12
    )


def test_a_kernel_mean_of_shape_r_is_shared_by_every_head() -> None:
    s = sample(2, Shape(batch=2, heads=3, kv_heads=3, n=6, d=4, d_v=2, options=(("anchors", 5), ("bits", 7))))
    qk, v, anchors, hash_weights, kernel_mean = s.args
    shared = kernel_mean[1]  # (R,) with R = 5, neither 1 nor the 3 heads
    per_head = np.broadcast_to(shared, kernel_mean.shape)
    for form in (ecoformer_attention, ecoformer_attention_linear):
        np.testing.assert_array_equal(
            form(qk, v, anchors, hash_weights, shared), form(qk, v, anchors, hash_weights, per_head)
        )


@pytest.mark.parametrize("causal", [False, True])
def test_both_forms_compute_in_the_reference_precision(causal: bool) -> None:
    options = (("anchors", 4), ("bits", 5)) + ((("bandwidth", 0.7),) if causal else ())
    s = sample(4, Shape(batch=1, heads=2, kv_heads=2, n=6, d=3, d_v=2, causal=causal, options=options))
    single = [a.astype(np.float32) for a in s.args]
    with reference_precision(np.float32):
        outs = [form(*single, **s.kwargs) for form in (ecoformer_attention, ecoformer_attention_linear)]
    for out in outs:
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, s.call(ecoformer_attention), atol=1e-5)


def test_opposite_codes_weigh_one_and_a_query_seeing_nothing_returns_zeros_without_a_float_error() -> None:
    # one anchor at e_0; tokens at e_0, -e_0, e_1: D = 0, 4, 2, bandwidth 2, kernel 1, e^-1, e^-1/2; centred by
    # 0.5 and hashed by A = [[1]] the codes are +1, -1, +1, so w_01 = w_10 = h_0·h_1 + (b + 1) = -1 + 2 = 1
    qk = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    anchors, hash_weights, kernel_mean = np.array([[1.0, 0.0]]), np.array([[1.0]]), np.array([0.5])
    assert binary_codes(qk, anchors, hash_weights, kernel_mean)[:, 0].tolist() == [1.0, -1.0, 1.0]
    v = np.array([[1.0, 2.0], [3.0, 5.0], [7.0, 11.0]])
    mask = np.array([[False, True, False], [True, False, False], [False, False, False]])
    with np.errstate(all="raise"):  # the empty row must not be computed as 0/0 and then replaced
        out = ecoformer_attention(qk, v, anchors, hash_weights, kernel_mean, mask=mask)
    np.testing.assert_array_equal(out, [v[1], v[0], [0.0, 0.0]])
