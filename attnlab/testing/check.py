"""Validate a user's own kernel against a form's reference: ``attnlab check`` and :func:`check_kernel`.

The kernel runs on the form's samples (length 1, odd lengths, m ≠ n both ways, bottom-right causal with
queries before the first key, GQA with several KV heads, masks with an empty row, large, shifted and
tied values, explicit options, lengths around common tile sizes) through an :class:`Adapter` that
speaks the kernel's calling convention; each output is held to the tolerance rule
``err(kernel, ref64) <= k · err(oracle at the kernel's dtype, ref64) + floor``, and a failure is
explained where a known mistake reproduces it (top-left causal alignment, NaN on empty rows, a wrong
scale, an ignored mask, an interleaved GQA head map).

Inside a user's pytest suite::

    import pytest
    from attnlab.testing import kernel_cases

    @pytest.mark.parametrize("case", kernel_cases("softmax", convention="sdpa"), ids=str)
    def test_my_kernel(case):
        case.check(my_kernel)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from attnlab.core import Form, SampleInput, Tolerance, load
from attnlab.forms import get_form
from attnlab.testing.parity import Implementation, forward, gradients
from attnlab.testing.rule import error, to_numpy
from attnlab.testing.samples import kernel_samples

LAYOUTS = ("bhnd", "bnhd")
ARRAYS = ("torch", "numpy")
CONVENTIONS = ("attnlab", "sdpa", "flash")
CAUSAL_AS = ("flag", "mask")
ATTENTION_OPTIONS = frozenset({"scale", "causal", "mask"})


class Unsupported(Exception):
    """The sample asks for something the kernel's calling convention cannot express."""


@dataclass(frozen=True)
class Adapter:
    """How to call a kernel written for another convention.

    Attributes:
        layout: ``bhnd`` (SDPA's ``(B, H, n, d)``, attnlab's own) or ``bnhd`` (flash-attn's ``(B, n, H, d)``)
            for the array arguments and the output.
        arrays: the kernel takes ``torch`` tensors or ``numpy`` arrays.
        convention: keyword names: ``attnlab`` (``scale``, ``causal``, ``mask``), ``sdpa`` (``scale``,
            ``is_causal``, ``attn_mask``, ``enable_gqa``) or ``flash`` (``softmax_scale``, ``causal``;
            no mask).
        causal_as: pass causal as the convention's ``flag``, or fold it into a boolean ``mask`` built
            with attnlab's bottom-right alignment (for kernels whose flag means something else).
    """

    layout: str = "bhnd"
    arrays: str = "torch"
    convention: str = "attnlab"
    causal_as: str = "flag"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("layout", self.layout, LAYOUTS),
            ("arrays", self.arrays, ARRAYS),
            ("convention", self.convention, CONVENTIONS),
            ("causal_as", self.causal_as, CAUSAL_AS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")

    def wrap(self, fn: Callable[..., Any], form: Form) -> Callable[..., Any]:
        """``fn`` as a function of attnlab's layout and keywords."""
        attention_like = form.array_args[:3] == ("q", "k", "v")
        if self.convention != "attnlab" and not attention_like:
            raise ValueError(
                f"convention: {self.convention!r} applies to (q, k, v) forms; form "
                f"{form.name!r} takes {form.array_args}"
            )

        def swap(x: Any) -> Any:
            if self.layout == "bhnd" or getattr(x, "ndim", 0) < 3:
                return x
            return x.transpose(-2, -3) if hasattr(x, "detach") else np.swapaxes(x, -2, -3)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            arrays = [swap(a) if i < len(form.array_args) else a for i, a in enumerate(args)]
            out = fn(*arrays, **self._keywords(args, kwargs))
            return swap(out)

        return wrapped

    def _keywords(self, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(kwargs)
        takes_causal = "causal" in kwargs
        causal = bool(kwargs.pop("causal", False))
        mask = kwargs.get("mask")
        if causal and (self.causal_as == "mask" or (mask is not None and self.convention != "attnlab")):
            mask = _fold_causal(args[0], args[1], mask)
            causal = False
        if self.convention == "attnlab":
            if takes_causal:
                kwargs["causal"] = causal
            if mask is not None:
                kwargs["mask"] = mask
            return kwargs
        extra = set(kwargs) - ATTENTION_OPTIONS
        if extra:
            raise Unsupported(f"the {self.convention} convention has no keyword for {sorted(extra)}")
        scale = kwargs.get("scale")
        if self.convention == "sdpa":
            out: dict[str, Any] = {"is_causal": causal}
            if mask is not None:
                out["attn_mask"] = mask
            if scale is not None:
                out["scale"] = scale
            q, k = args[0], args[1]
            if getattr(q, "ndim", 0) >= 3 and k.shape[-3] != q.shape[-3]:
                out["enable_gqa"] = True
            return out
        if mask is not None:
            raise Unsupported("the flash convention takes no boolean mask")
        out = {"causal": causal}
        if scale is not None:
            out["softmax_scale"] = scale
        return out


def _fold_causal(q: Any, k: Any, mask: Any) -> Any:
    n, m = q.shape[-2], k.shape[-2]
    tri = np.tril(np.ones((n, m), dtype=bool), k=m - n)
    if hasattr(q, "detach"):
        import torch

        tri_t = torch.from_numpy(tri).to(q.device)
        return tri_t if mask is None else tri_t & mask
    return tri if mask is None else tri & np.asarray(mask)


@dataclass
class Row:
    """One line of the report."""

    sample: str
    output: str
    passed: bool
    max_abs_error: float | None
    bound: float | None
    first_index: list[int] | None = None
    diagnosis: str = ""
    skipped: str = ""


@dataclass
class KernelReport:
    """What :func:`check_kernel` found."""

    form: str
    kernel: str
    dtype: str
    device: str
    adapter: Adapter
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows if not r.skipped) and any(not r.skipped for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.passed and not r.skipped]

    def to_json(self) -> str:
        return json.dumps(
            {
                "form": self.form,
                "kernel": self.kernel,
                "dtype": self.dtype,
                "device": self.device,
                "adapter": asdict(self.adapter),
                "passed": self.passed,
                "rows": [asdict(r) for r in self.rows],
            },
            indent=1,
        )

    def table(self) -> Any:
        from rich.table import Table

        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} of {sum(not r.skipped for r in self.rows)})"
        table = Table(title=f"attnlab check {self.kernel} as {self.form} [{self.dtype}, {self.device}]: {verdict}")
        for column in ("sample", "output", "max abs error", "bound", "result", "first differing index / diagnosis"):
            table.add_column(column)
        for r in self.rows:
            if r.skipped:
                table.add_row(r.sample, r.output, "-", "-", "skip", r.skipped)
                continue
            detail = r.diagnosis
            if r.first_index is not None:
                detail = f"{r.first_index} " + detail
            table.add_row(
                r.sample,
                r.output,
                "-" if r.max_abs_error is None else f"{r.max_abs_error:.2e}",
                "-" if r.bound is None else f"{r.bound:.2e}",
                "pass" if r.passed else "FAIL",
                detail,
            )
        return table


def diagnose(form: Form, sample: SampleInput, got: Any, bound: float) -> str:
    """A one-line explanation of a failing output, where a known mistake reproduces it."""
    got_np = to_numpy(got)
    ref = to_numpy(sample.call(form.reference))
    if got_np.shape != ref.shape:
        hint = " (the kernel's layout?)" if sorted(got_np.shape) == sorted(ref.shape) else ""
        return f"output shape {got_np.shape}, expected {ref.shape}{hint}"
    nan = np.isnan(got_np)
    if nan.any():
        empty_rows = np.all(ref == 0, axis=-1, keepdims=True) & np.ones_like(nan)
        if np.all(empty_rows[nan]) and np.allclose(np.where(nan, 0.0, got_np), ref, atol=bound, rtol=0):
            return "NaN on rows with no visible key (the reference returns zeros there)"
        return "NaN in the output"
    for diag in form.diagnoses:
        try:
            wrong = diag.expect(sample)
        except Exception:
            continue
        if wrong is not None and error(wrong, got_np).abs <= max(bound, 1e-12):
            return diag.message
    return ""


def default_causal_as(convention: str, causal_as: str | None) -> str:
    if causal_as is not None:
        return causal_as
    return "mask" if convention == "sdpa" else "flag"


def _target_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "") or ""
    return f"{module}:{getattr(fn, '__qualname__', repr(fn))}"


def check_kernel(
    fn: Callable[..., Any] | str,
    *,
    form: str,
    dtype: str = "float32",
    device: str = "cpu",
    grad: bool = False,
    samples: int | None = None,
    layout: str = "bhnd",
    arrays: str = "torch",
    convention: str = "attnlab",
    causal_as: str | None = None,
    k: float = 5.0,
) -> KernelReport:
    """Run the lab's validation of ``form`` on a user's kernel and return the report.

    Args:
        fn: the kernel, or ``"package.module:function"``.
        form: the attention form it implements (``attnlab forms`` lists them).
        dtype, device: where the kernel runs (``float32``/``float16``/``bfloat16``/``float64``; ``cpu``/``cuda``).
        grad: also check gradients of every array argument (torch kernels).
        samples: run only the first ``samples`` samples (the adversarial ones come first).
        layout, arrays, convention, causal_as: how to call it (see :class:`Adapter`); ``causal_as``
            defaults to ``mask`` for the ``sdpa`` convention (SDPA's ``is_causal`` is top-left aligned)
            and ``flag`` otherwise.
        k: the fudge factor of the tolerance rule.
    """
    target = load(fn) if isinstance(fn, str) else fn
    if not callable(target):
        raise TypeError(f"fn: expected a callable or 'module:function', got {type(target).__name__}")
    info = get_form(form)
    adapter = Adapter(layout, arrays, convention, default_causal_as(convention, causal_as))
    if arrays == "numpy" and (grad or device != "cpu" or dtype == "bfloat16"):
        raise ValueError("arrays: a NumPy kernel runs on the CPU in float16/32/64 without gradients")
    if samples is not None and samples < 1:
        raise ValueError(f"samples: expected a positive count, got {samples}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device: CUDA is not available on this machine")
    impl = Implementation(
        _target_name(target) if not isinstance(fn, str) else fn, adapter.wrap(target, info), arrays, Tolerance(k=k)
    )
    report = KernelReport(info.name, impl.name, dtype, device, adapter)
    cases = kernel_samples(info)
    for sample in cases[:samples]:
        report.rows += _check_sample(info, impl, sample, dtype, device, grad)
    return report


def _check_sample(
    form: Form, impl: Implementation, sample: SampleInput, dtype: str, device: str, grad: bool
) -> list[Row]:
    from attnlab.testing.parity import run

    try:
        got = run(impl, sample, dtype, device)
    except Unsupported as exc:
        return [Row(sample.label, "out", True, None, None, skipped=str(exc))]
    except Exception as exc:
        return [Row(sample.label, "out", False, None, None, diagnosis=f"raised {type(exc).__name__}: {exc}")]
    verdict = forward(form, impl, sample, dtype, device, output=got)
    rows = [
        Row(
            sample.label,
            "out",
            verdict.passed,
            verdict.error.abs,
            verdict.bound,
            None if verdict.first_index is None else list(verdict.first_index),
            "" if verdict.passed else (diagnose(form, sample, got, verdict.bound) or verdict.problem),
        )
    ]
    if grad and verdict.passed:
        try:
            for res in gradients(form, impl, sample, dtype, device):
                j = res.judgement
                rows.append(
                    Row(
                        sample.label,
                        f"d/d{res.argument}",
                        res.passed,
                        None if j is None else j.error.abs,
                        None if j is None else j.bound,
                        None if j is None or j.first_index is None else list(j.first_index),
                        res.problem,
                    )
                )
        except Exception as exc:
            rows.append(
                Row(sample.label, "grad", False, None, None, diagnosis=f"backward raised {type(exc).__name__}: {exc}")
            )
    return rows


@dataclass(frozen=True)
class KernelCase:
    """One sample of :func:`kernel_cases`, for a user's pytest parametrisation."""

    form: str
    sample: SampleInput
    dtype: str
    device: str
    adapter: Adapter
    grad: bool
    k: float

    def __str__(self) -> str:
        return f"{self.form}-{self.dtype}-{self.sample.label}"

    def check(self, fn: Callable[..., Any]) -> None:
        """Raise ``AssertionError`` (with the error, bound and diagnosis) unless ``fn`` passes on this sample."""
        info = get_form(self.form)
        impl = Implementation(_target_name(fn), self.adapter.wrap(fn, info), self.adapter.arrays, Tolerance(k=self.k))
        for row in _check_sample(info, impl, self.sample, self.dtype, self.device, self.grad):
            if not row.passed and not row.skipped:
                detail = f"max abs error {row.max_abs_error}, bound {row.bound}, first index {row.first_index}"
                raise AssertionError(f"{self} {row.output}: {detail}" + (f"; {row.diagnosis}" if row.diagnosis else ""))


def kernel_cases(
    form: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    grad: bool = False,
    layout: str = "bhnd",
    arrays: str = "torch",
    convention: str = "attnlab",
    causal_as: str | None = None,
    k: float = 5.0,
) -> list[KernelCase]:
    """The samples ``attnlab check`` runs, as cases for ``pytest.mark.parametrize`` (``ids=str``)."""
    adapter = Adapter(layout, arrays, convention, default_causal_as(convention, causal_as))
    return [KernelCase(form, s, dtype, device, adapter, grad, k) for s in kernel_samples(get_form(form))]
