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
    unit_rows,
)


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
