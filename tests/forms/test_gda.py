"""GDA: what is specific to it — per-query-head masks split like the query groups in every path, the
Numba VJP across the softmax kernel's tiles with GQA over KV pairs, and DIFF V1's λ helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.core import SampleInput, Shape
from attnlab.forms.gda import brute_force, oracle, sample
from attnlab.reference.gda import gda_attention, lambda_init, reparameterised_lambda
from attnlab.testing import check_path

torch.set_num_threads(1)


def _per_head_mask_sample(seed: int) -> SampleInput:
    """H = 6 (r = 2, two groups), H_kv = 4 and a different random pattern for every query head."""
    s = sample(
        seed,
        Shape(
            batch=2,
            heads=6,
            kv_heads=4,
            n=7,
            m=9,
            d=4,
            d_v=3,
            options=(("gain", True), ("lam", 0.7), ("lam_init", 0.3), ("ratio", 2)),
        ),
    )
    mask = np.random.default_rng(seed).random((2, 6, 7, 9)) < 0.6
    mask[:, :, 3] = False  # a query with no visible key
    return SampleInput(s.args, {**s.kwargs, "mask": mask}, s.label + "-per-head-mask")


def test_per_head_masks_follow_the_query_groups() -> None:
    s = _per_head_mask_sample(1)
    want = s.call(brute_force)
    np.testing.assert_allclose(s.call(gda_attention), want, atol=1e-12)
    np.testing.assert_allclose(oracle(*(torch.tensor(a) for a in s.args), **s.kwargs).numpy(), want, atol=1e-12)
    assert not np.any(want[:, :, 3])
    for path in ("numba", "torch"):
        check_path("gda", path, s, "float64", grad=True)
        check_path("gda", path, s, "float32")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_vjp_across_kernel_tiles(dtype: str) -> None:
    """H = 8 (r = 3, two groups) over one KV pair, n = 130 crosses the kernel's 128-row blocks."""
    s = sample(
        4,
        Shape(
            batch=1,
            heads=8,
            kv_heads=2,
            n=130,
            m=150,
            d=8,
            d_v=4,
            causal=True,
            options=(("lam", 0.5), ("lam_init", 0.2), ("ratio", 3)),
        ),
    )
    check_path("gda", "numba", s, dtype, grad=True)


def test_lambda_helpers_follow_diff_v1() -> None:
    assert lambda_init(0) == pytest.approx(0.2)
    assert lambda_init(1000) == pytest.approx(0.8)
    assert lambda_init(1) == pytest.approx(0.355509, abs=1e-6)  # 0.8 − 0.6 e^{−0.3}: the decay rate 0.3
    zeros = np.zeros(4)
    assert reparameterised_lambda(zeros, zeros, zeros, zeros, 0.35) == pytest.approx(0.35)
    a, b = np.full(4, 0.5), np.full(4, 0.25)
    assert reparameterised_lambda(a, a, b, b, 0.1) == pytest.approx(np.exp(1.0) - np.exp(0.25) + 0.1)


@pytest.mark.parametrize("position", range(4))
def test_reparameterised_lambda_names_the_bad_vector(position: int) -> None:
    vectors: list = [np.zeros(4)] * 4
    vectors[position] = "0.5"
    name = ("lam_q1", "lam_k1", "lam_q2", "lam_k2")[position]
    with pytest.raises(TypeError, match=rf"^{name}: expected a float NumPy array"):
        reparameterised_lambda(*vectors, 0.2)


def test_reference_keeps_the_compute_dtype() -> None:
    """Under ``reference_precision`` (the benchmark's NumPy row) the default RMSNorm gain follows the dtype."""
    from attnlab.validation import reference_precision

    s = sample(0, Shape(batch=1, heads=4, kv_heads=2, n=5, d=4, d_v=3, options=(("lam", 0.5), ("ratio", 3))))
    with reference_precision("float32"):
        out = gda_attention(*(a.astype(np.float32) for a in s.args), **s.kwargs)
    assert out.dtype == np.float32
