"""Generic fast-path checks derived from the declarations, beyond parity.

* every declared bad input is rejected by every fast path with the same error type and a message
  naming the argument (torch paths get tensors);
* two calls on one input give bit-identical outputs with two Numba and torch threads (deterministic paths);
* each oracle's float64 autograd passes ``torch.autograd.gradcheck`` (it is the gradient golden);
* a NumPy VJP rejects an upstream gradient of the wrong shape, naming ``grad_out``;
* CUDA parity, forward and gradients, where a GPU is present.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnlab.forms import all_forms
from attnlab.testing.convert import convert
from attnlab.testing.parity import Implementation, array_positions, assert_forward, assert_gradients
from attnlab.testing.samples import fixed_samples, gradient_samples, parity_samples

FORMS = all_forms()
PATHS = [pytest.param(form, path, id=f"{form.name}-{path.name}") for form in FORMS for path in form.fast_paths]


def _as_torch(value):
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        return torch.from_numpy(np.ascontiguousarray(value)).to(torch.complex128)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        return tensor.double() if value.dtype.kind == "f" else tensor
    return value


@pytest.mark.parametrize(("form", "path"), PATHS)
def test_fast_path_rejects_every_declared_bad_input(form, path) -> None:
    fn = path.load()
    for bad in form.bad_inputs():
        args, kwargs = bad.args, bad.kwargs
        if path.kind == "torch":
            args, kwargs = tuple(_as_torch(a) for a in args), {k: _as_torch(v) for k, v in kwargs.items()}
        with pytest.raises(bad.error) as caught:
            fn(*args, **kwargs)
        assert re.search(bad.match, str(caught.value)), (
            f"{bad.label}: {str(caught.value)!r} does not match {bad.match!r}"
        )


DETERMINISM_SCRIPT = """
import json, sys
import numpy as np, numba, torch
from attnlab.forms import all_forms
from attnlab.testing.convert import convert
from attnlab.testing.samples import parity_samples
assert numba.get_num_threads() >= 2, numba.get_num_threads()
torch.set_num_threads(2)
differ = []
for form in all_forms():
    for path in form.fast_paths:
        if not path.deterministic:
            continue
        sample = parity_samples(form, path)[-1]
        args, kwargs = convert(sample, path.kind, "float32" if "float32" in path.dtypes else path.dtypes[0])
        fn = path.load()
        first, second = (fn(*args, **kwargs) for _ in range(2))
        first, second = (x.detach().numpy() if hasattr(x, "detach") else x for x in (first, second))
        if not np.array_equal(first, second):
            differ.append(f"{form.name}/{path.name} {sample.label}")
print(json.dumps(differ))
"""


def test_two_calls_are_bit_identical_with_several_threads() -> None:
    """Every path declared deterministic gives bit-identical outputs on two calls with two Numba and two
    torch threads (a race between threads would show up here; one thread could not show it)."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT], capture_output=True, text=True, env=env, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_oracle_gradients_pass_gradcheck(form) -> None:
    sample = min(gradient_samples(form), key=lambda s: sum(np.size(a) for a in s.args if isinstance(a, np.ndarray)))
    positions = array_positions(form, sample)
    args, kwargs = convert(sample, "torch", "float64", requires_grad=positions)
    out = form.oracle(*args, **kwargs)
    total = (torch.view_as_real(out) if out.is_complex() else out).sum()  # complex forms: a real scalar
    grads = torch.autograd.grad(total, [args[i] for i in positions], allow_unused=True)
    positions = tuple(i for i, g in zip(positions, grads) if g is not None)  # inputs the math differentiates
    assert positions, f"{form.name}: the oracle has no differentiable input"

    def fn(*inputs):
        full = list(args)
        for i, t in zip(positions, inputs):
            full[i] = t
        return form.oracle(*full, **kwargs)

    assert torch.autograd.gradcheck(fn, tuple(args[i] for i in positions))


VJPS = [
    pytest.param(form, path, id=f"{form.name}-{path.name}") for form in FORMS for path in form.fast_paths if path.vjp
]


@pytest.mark.parametrize(("form", "path"), VJPS)
def test_vjp_rejects_an_upstream_of_the_wrong_shape(form, path) -> None:
    sample = fixed_samples(form)[1]
    out = sample.call(form.reference)
    wrong = np.ones((*out.shape[:-1], out.shape[-1] + 1))
    with pytest.raises(ValueError, match=r"grad_out"):
        path.load_vjp()(wrong, *sample.args, **sample.kwargs)


CUDA = [
    pytest.param(form, path, dtype, id=f"{form.name}-{path.name}-{dtype}")
    for form in FORMS
    for path in form.fast_paths
    if "cuda" in path.devices
    for dtype in ("float32", "bfloat16")
    if dtype in path.dtypes
]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("form", "path", "dtype"), CUDA)
def test_cuda_parity(form, path, dtype) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    impl = Implementation.of(path)
    for sample in parity_samples(form, path)[:6]:
        assert_forward(form, impl, sample, dtype, "cuda")
    for sample in gradient_samples(form, path):
        assert_gradients(form, impl, sample, dtype, "cuda")
