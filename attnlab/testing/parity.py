"""Forward and gradient parity of an implementation against a form's reference, under the tolerance rule.

One definition serves the generic tests, the benchmark gate and ``attnlab check``:

* forward: ``ref64`` is the float64 NumPy reference; the implementation and the form's oracle both run
  on the sample cast to the implementation's dtype and device;
* gradients: an upstream gradient drawn from a seeded normal of the output's shape; ``ref64`` is the
  oracle's float64 autograd gradient (CPU), "the same math at the fast dtype" the oracle's autograd
  gradient at that dtype and device, and the implementation's gradient comes from torch autograd or,
  for NumPy paths, from its declared VJP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnlab.core import FastPath, Form, SampleInput, Tolerance
from attnlab.testing.convert import convert
from attnlab.testing.rule import Judgement, judge, to_numpy

#: Seed of the upstream gradient.
UPSTREAM_SEED = 5


@dataclass(frozen=True)
class Implementation:
    """Something to judge: a callable with the reference's signature, the arrays it takes, and its VJP."""

    name: str
    fn: Callable[..., Any]
    kind: str
    tolerance: Tolerance = field(default_factory=Tolerance)
    vjp: Callable[..., Any] | None = None

    @classmethod
    def of(cls, path: FastPath) -> Implementation:
        return cls(path.name, path.load(), path.kind, path.tolerance, path.load_vjp())


def array_positions(form: Form, sample: SampleInput) -> tuple[int, ...]:
    """Indices of the positional float arrays named by ``form.array_args`` (the differentiated inputs)."""
    return tuple(
        i
        for i, a in enumerate(sample.args[: len(form.array_args)])
        if isinstance(a, np.ndarray) and a.dtype.kind in "fc"
    )


def run(impl: Implementation, sample: SampleInput, dtype: str, device: str = "cpu") -> Any:
    args, kwargs = convert(sample, impl.kind, dtype, device)
    if impl.kind == "torch":
        import torch

        with torch.no_grad():
            return impl.fn(*args, **kwargs)
    return impl.fn(*args, **kwargs)


#: Seeds of the one-ulp input jitters of the oracle's noise estimate.
JITTER_SEEDS = (1, 2)


def jittered(sample: SampleInput, dtype: str, seed: int) -> SampleInput:
    """The sample with every float input moved by one unit in the last place of ``dtype``, up or down at
    random: an input the fast dtype cannot tell from the original."""
    if dtype == "bfloat16":
        eps = 2.0**-7
    else:
        eps = float(np.finfo(np.dtype(dtype)).eps)
    rng = np.random.default_rng(seed)

    def move(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.dtype.kind in "fc" and x.size:
            return x * (1.0 + eps * rng.choice([-1.0, 1.0], x.shape))
        return x

    return SampleInput(
        tuple(move(a) for a in sample.args), {k: move(v) for k, v in sample.kwargs.items()}, sample.label
    )


def oracle_outputs(form: Form, sample: SampleInput, dtype: str, device: str = "cpu") -> list[Any]:
    """The oracle at ``dtype`` on the sample and on its one-ulp jitters: the spread of these is the
    rounding noise of the problem at that dtype ("the same math at the fast dtype")."""
    import torch

    outs = []
    for s in (sample, *(jittered(sample, dtype, seed) for seed in JITTER_SEEDS)):
        args, kwargs = convert(s, "torch", dtype, device)
        with torch.no_grad():
            outs.append(form.oracle(*args, **kwargs))
    return outs


def forward(
    form: Form, impl: Implementation, sample: SampleInput, dtype: str, device: str = "cpu", *, output: Any = None
) -> Judgement:
    """The tolerance rule on the forward output (``output``: an already computed one, e.g. timed)."""
    ref64 = sample.call(form.reference)
    got = run(impl, sample, dtype, device) if output is None else output
    lowp = oracle_outputs(form, sample, dtype, device)
    verdict = judge(ref64, got, lowp, dtype, impl.tolerance)
    if verdict.passed and impl.kind == "numpy" and isinstance(got, np.ndarray):
        want = np.dtype(dtype) if not np.iscomplexobj(got) else got.dtype
        if got.dtype != want:
            return Judgement(
                False,
                verdict.error,
                verdict.bound,
                verdict.oracle_error,
                dtype,
                None,
                f"output dtype {got.dtype}, expected {dtype}",
            )
    if verdict.passed and impl.kind == "torch" and hasattr(got, "dtype") and not got.is_complex():
        if str(got.dtype) != f"torch.{dtype}":
            return Judgement(
                False,
                verdict.error,
                verdict.bound,
                verdict.oracle_error,
                dtype,
                None,
                f"output dtype {got.dtype}, expected {dtype}",
            )
    return verdict


def upstream(shape: tuple[int, ...], complex_: bool = False) -> np.ndarray:
    rng = np.random.default_rng(UPSTREAM_SEED)
    g = rng.standard_normal(shape)
    return g + 1j * rng.standard_normal(shape) if complex_ else g


def _autograd(
    fn: Callable[..., Any], sample: SampleInput, positions: tuple[int, ...], dtype: str, device: str
) -> tuple[list[Any], tuple[int, ...]]:
    import torch

    args, kwargs = convert(sample, "torch", dtype, device, requires_grad=positions)
    out = fn(*args, **kwargs)
    g = torch.as_tensor(upstream(tuple(out.shape), out.is_complex()), device=out.device).to(out.dtype)
    inputs = [args[i] for i in positions]
    grads = torch.autograd.grad(out, inputs, g, allow_unused=True)
    return list(grads), tuple(out.shape)


@dataclass(frozen=True)
class GradientJudgement:
    """The tolerance rule on each input's gradient (``None`` where the math has no gradient path)."""

    argument: str
    judgement: Judgement | None
    problem: str = ""

    @property
    def passed(self) -> bool:
        return not self.problem and (self.judgement is None or self.judgement.passed)


def gradients(
    form: Form, impl: Implementation, sample: SampleInput, dtype: str, device: str = "cpu"
) -> list[GradientJudgement]:
    """Gradient parity of ``impl`` on ``sample`` for every positional float array argument."""
    positions = array_positions(form, sample)
    golden, out_shape = _autograd(form.oracle, sample, positions, "float64", "cpu")
    noisy = [
        _autograd(form.oracle, s, positions, dtype, device)[0]
        for s in (sample, *(jittered(sample, dtype, seed) for seed in JITTER_SEEDS))
    ]
    lowp = [list(per_input) for per_input in zip(*noisy)]
    if impl.kind == "numpy":
        if impl.vjp is None:
            raise ValueError(f"{impl.name}: a NumPy implementation needs a vjp for gradient parity")
        args, kwargs = convert(sample, "numpy", dtype)
        g = upstream(out_shape).astype(dtype)
        got_all = impl.vjp(g, *args, **kwargs)
        got = [got_all[i] for i in range(len(positions))]
    else:
        got, _ = _autograd(impl.fn, sample, positions, dtype, device)
    results = []
    for index, want, low, fast in zip(positions, golden, lowp, got):
        name = form.array_args[index]
        shape = tuple(np.shape(sample.args[index]))
        if want is None:
            nonzero = fast is not None and bool(np.any(to_numpy(fast)))
            results.append(
                GradientJudgement(
                    name, None, "the oracle has no gradient here, the implementation does" if nonzero else ""
                )
            )
            continue
        if fast is None:
            results.append(GradientJudgement(name, None, "no gradient returned"))
            continue
        if tuple(np.shape(fast)) != shape:
            results.append(GradientJudgement(name, None, f"gradient shape {tuple(np.shape(fast))}, expected {shape}"))
            continue
        results.append(GradientJudgement(name, judge(want, fast, low, dtype, impl.tolerance)))
    return results


def assert_forward(form: Form, impl: Implementation, sample: SampleInput, dtype: str, device: str = "cpu") -> Judgement:
    verdict = forward(form, impl, sample, dtype, device)
    if not verdict.passed:
        raise AssertionError(verdict.message(f"{form.name}/{impl.name} {sample.label}"))
    return verdict


def assert_gradients(
    form: Form, impl: Implementation, sample: SampleInput, dtype: str, device: str = "cpu"
) -> list[GradientJudgement]:
    results = gradients(form, impl, sample, dtype, device)
    assert results, f"{form.name}: no differentiable argument in {sample.label}"
    for res in results:
        where = f"{form.name}/{impl.name} {sample.label} d/d{res.argument}"
        if res.problem:
            raise AssertionError(f"{where}: {res.problem}")
        if res.judgement is not None and not res.judgement.passed:
            raise AssertionError(res.judgement.message(where))
    return results


def check_path(
    form: str, path: str, sample: SampleInput, dtype: str, device: str = "cpu", *, grad: bool = False
) -> Judgement | list[GradientJudgement]:
    """Assert the tolerance rule for one declared fast path (``grad``: its gradients) on ``sample``."""
    from attnlab.forms import get_form

    info = get_form(form)
    impl = Implementation.of(info.fast_path(path))
    return (
        assert_gradients(info, impl, sample, dtype, device)
        if grad
        else assert_forward(info, impl, sample, dtype, device)
    )
