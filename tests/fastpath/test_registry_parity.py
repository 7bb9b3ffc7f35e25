"""Generic fast-path tests generated from the operator registry.

For every registered fast path: forward parity against the float64 reference under the tolerance rule
``err(fast, ref64) <= k * err(same math at the fast dtype, ref64) + floor`` on lengths 1, 63, 100 and
a power of two, causal and not, with masks, GQA and m != n where the form takes them; and, for
differentiable paths, gradient parity against the float64 torch reference math.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.registry import Shape, forms
from attnlab.testing import assert_within_rule, convert_sample
from attnlab.validation import reference_precision

PARITY_SHAPES = [
    Shape(batch=1, heads=2, kv_heads=2, n=1, d=8, d_v=4),
    Shape(batch=1, heads=2, kv_heads=1, n=63, d=16, d_v=8, causal=True),
    Shape(batch=2, heads=4, kv_heads=2, n=100, m=100, d=8, d_v=8, masked=True),
    Shape(batch=1, heads=2, kv_heads=2, n=64, m=80, d=32, d_v=16, causal=True),
    Shape(batch=1, heads=1, kv_heads=1, n=128, d=64, d_v=8),
]
GRAD_SHAPES = [
    Shape(batch=1, heads=2, kv_heads=1, n=7, d=4, d_v=3, causal=True),
    Shape(batch=1, heads=2, kv_heads=2, n=9, m=6, d=5, d_v=2, masked=True),
]


SEEDS = {False: 11, True: 12}  # sample seed of the forward and the gradient cases


def _has_gradient(info, path) -> bool:
    if info.torch_reference is None or "torch" not in info.fast_paths:
        return False
    return (path.kind == "torch" and path.differentiable) or (path.kind == "numpy" and path.vjp is not None)


def _cases(grad: bool) -> list:
    cases = []
    for info in forms():
        for path in info.fast_paths.values():
            if grad and not _has_gradient(info, path):
                continue
            for dtype in path.dtypes:
                if dtype not in ("float32", "float64"):
                    continue
                for shape in GRAD_SHAPES if grad else PARITY_SHAPES:
                    if not path.supports(info.make_sample(SEEDS[grad], shape)):
                        continue  # an option this path does not implement: not a case for it
                    cases.append(
                        pytest.param(info, path, dtype, shape, id=f"{info.name}-{path.name}-{dtype}-{shape.label()}")
                    )
    return cases


def _run(path, info, sample, dtype):
    args, kwargs = convert_sample(sample, path, dtype)
    return path.fn(*args, **kwargs)


@pytest.mark.parametrize(("info", "path", "dtype", "shape"), _cases(grad=False))
def test_forward_parity(info, path, dtype, shape) -> None:
    sample = info.make_sample(SEEDS[False], shape)
    ref64 = sample.call(info.reference)
    with reference_precision(dtype):
        lowp = sample.call(info.reference)
    fast = _run(path, info, sample, dtype)
    if path.kind == "numpy":
        assert fast.dtype == np.dtype(dtype), f"{path.name} returned {fast.dtype} for {dtype} inputs"
    assert_within_rule(f"{info.name}/{path.name}", ref64, fast, lowp, dtype, fudge=path.fudge, floors=path.floors)


@pytest.mark.parametrize(("info", "path", "dtype", "shape"), _cases(grad=True))
def test_gradient_parity(info, path, dtype, shape) -> None:
    import torch

    torch.manual_seed(42)
    sample = info.make_sample(SEEDS[True], shape)

    torch_path = info.fast_paths["torch"]

    def upstream_for(shape: tuple) -> np.ndarray:
        return np.random.default_rng(5).standard_normal(shape)

    def grads(fn, run_dtype, run_path):
        args, kwargs = convert_sample(sample, run_path, run_dtype, requires_grad=True)
        out = fn(*args, **kwargs)
        upstream = torch.as_tensor(upstream_for(tuple(out.shape)), dtype=out.dtype)
        (out * upstream).sum().backward()
        return [a.grad for a in args if isinstance(a, torch.Tensor) and a.requires_grad]

    golden = grads(info.torch_reference, "float64", torch_path)
    lowp = grads(info.torch_reference, dtype, torch_path)
    if path.kind == "numpy":
        args, kwargs = convert_sample(sample, path, dtype)
        out = path.fn(*args, **kwargs)
        fast_np = path.vjp(upstream_for(out.shape).astype(out.dtype), *args, **kwargs)
        for grad, arg in zip(fast_np, (args[i] for i in info.array_args)):
            assert grad.shape == arg.shape and grad.dtype == arg.dtype, f"vjp returned {grad.shape}/{grad.dtype}"
        fast = [torch.from_numpy(np.ascontiguousarray(g)) for g in fast_np]
    else:
        fast = grads(path.fn, dtype, path)
    assert len(fast) == len(golden) > 0
    assert any(g is not None for g in golden)
    for index, (g64, glow, gfast) in enumerate(zip(golden, lowp, fast)):
        if g64 is None:  # no gradient path in the reference math (e.g. sign codes): none, or zeros, in the fast path
            assert gfast is None or not torch.any(gfast), (
                f"argument {index}: reference has no gradient, fast path has one"
            )
            continue
        assert gfast is not None, f"no gradient for argument {index}"
        assert_within_rule(
            f"{info.name}/{path.name} grad[{index}]", g64, gfast, glow, dtype, fudge=path.fudge, floors=path.floors
        )


HYPOTHESIS_CASES = [
    pytest.param(info, path, dtype, id=f"{info.name}-{path.name}-{dtype}")
    for info in forms()
    for path in info.fast_paths.values()
    for dtype in ("float32", "float64")
    if dtype in path.dtypes
]


@pytest.mark.parametrize(("info", "path", "dtype"), HYPOTHESIS_CASES)
def test_forward_parity_on_hypothesis_samples(info, path, dtype) -> None:
    """The fast path meets the tolerance rule on the form's own hypothesis samples (odd lengths, length 1,
    m != n, GQA, masks, options drawn by the form), not only on the hand-picked shapes above."""
    from hypothesis import given, settings

    @settings(max_examples=8)
    @given(info.samples())
    def check(sample) -> None:
        if not path.supports(sample):
            return
        ref64 = sample.call(info.reference)
        with reference_precision(dtype):
            lowp = sample.call(info.reference)
        fast = _run(path, info, sample, dtype)
        assert_within_rule(f"{info.name}/{path.name}", ref64, fast, lowp, dtype, fudge=path.fudge, floors=path.floors)

    check()
