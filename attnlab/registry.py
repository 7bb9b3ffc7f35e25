"""The operator registry (OpInfo-style): one entry per attention form.

An :class:`OperatorInfo` names the form's reference operator, a sample-input generator (and a
hypothesis strategy built from it), its invariants, its bad-input cases, a brute-force loop
implementation, and slots for fast paths with per-implementation tolerances. Generic tests (parity,
gradients, invariants, bad inputs) are generated from these entries, so adding a form is one reference
function, one entry (in :mod:`attnlab.entries`) and its fast paths.

Fast-path packages register themselves with :func:`register_fast_path` from the modules listed in
``FAST_PATH_MODULES``; they are imported the first time :func:`forms` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class Shape:
    """Sizes of one sample: batch ``B``, query heads ``H``, KV heads ``H_kv`` (divides ``H``), query
    length ``n``, key length ``m`` (None: ``n``), head dims ``d``/``d_v``, and the options to use."""

    batch: int = 1
    heads: int = 2
    kv_heads: int = 2
    n: int = 8
    m: int | None = None
    d: int = 8
    d_v: int = 8
    causal: bool = False
    masked: bool = False

    @property
    def keys(self) -> int:
        return self.n if self.m is None else self.m

    def label(self) -> str:
        parts = [f"B{self.batch}", f"H{self.heads}"]
        if self.kv_heads != self.heads:
            parts.append(f"Hkv{self.kv_heads}")
        parts.append(f"n{self.n}")
        if self.m is not None and self.m != self.n:
            parts.append(f"m{self.m}")
        parts += [f"d{self.d}", f"dv{self.d_v}"]
        if self.causal:
            parts.append("causal")
        if self.masked:
            parts.append("mask")
        return "-".join(parts)


@dataclass(frozen=True)
class SampleInput:
    """Positional ``args`` and keyword ``kwargs`` for one call of a form's operator."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str = ""

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **self.kwargs)

    def with_args(self, *args: Any, **kwargs: Any) -> SampleInput:
        return SampleInput(args, {**self.kwargs, **kwargs}, self.label)


@dataclass(frozen=True)
class BadInput:
    """A call that must raise ``error`` with a message matching the regex ``match``."""

    label: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: type[Exception]
    match: str


@dataclass(frozen=True)
class Invariant:
    """A property of the operator; ``check(sample)`` raises ``AssertionError`` on a violation."""

    name: str
    description: str
    check: Callable[[SampleInput], None]


@dataclass(frozen=True)
class FastPath:
    """One fast implementation of a form.

    Attributes:
        name: implementation id (``numba``, ``torch``).
        fn: same call signature as the reference; ``kind`` says which arrays it takes and returns.
        kind: ``"numpy"`` (NumPy arrays in and out) or ``"torch"`` (tensors in and out).
        dtypes: dtypes it supports, by name (``"float32"``, ``"float64"``, ``"bfloat16"``...).
        differentiable: whether gradients flow (torch autograd, or ``vjp`` for NumPy kinds).
        supports: predicate on a :class:`SampleInput`; unsupported options are skipped, not failed.
        prepare: converts ``(args, kwargs, dtype, device)`` into the call's inputs when plain
            array conversion is not enough (e.g. weight dataclasses).
        vjp: for NumPy kinds with a backward kernel: ``vjp(grad_out, *args, **kwargs)`` returns the
            gradients of the array arguments, in order.
        fudge: the ``k`` of the tolerance rule ``err(fast) <= k * err(ref at dtype) + floor``.
        floors: per-dtype absolute floors overriding :data:`DEFAULT_FLOORS`.
    """

    name: str
    fn: Callable[..., Any]
    kind: str = "numpy"
    dtypes: tuple[str, ...] = ("float32", "float64")
    differentiable: bool = False
    supports: Callable[[SampleInput], bool] = field(default=lambda sample: True)
    prepare: Callable[..., tuple[tuple[Any, ...], dict[str, Any]]] | None = None
    vjp: Callable[..., tuple[np.ndarray, ...]] | None = None
    fudge: float = 5.0
    floors: dict[str, float] = field(default_factory=dict)


#: Absolute error floors of the tolerance rule, per dtype (cf. PyTorch's default_atol table).
DEFAULT_FLOORS: dict[str, float] = {
    "float64": 1e-10,
    "float32": 1e-5,
    "float16": 1e-3,
    "bfloat16": 1e-2,
}


@dataclass
class OperatorInfo:
    """Registry entry of one attention form.

    Attributes:
        name: family name shared across folders (``reference/softmax.py``,
            ``fastpath/numba/softmax.py``, ``tests/.../test_*softmax*.py``).
        title: human-readable title.
        reference: the float64 NumPy reference operator.
        source: paper (and arXiv id) the operator follows.
        make_sample: ``make_sample(seed, shape) -> SampleInput`` builds a deterministic sample.
        shape_strategy: hypothesis strategy of :class:`Shape` values this form accepts.
        invariants: properties checked on samples.
        bad_inputs: ``bad_inputs() -> list[BadInput]``.
        brute_force: the same operator as a plain loop (on tiny samples), same call signature.
        array_args: indices of the positional args that are arrays (converted for fast paths and
            differentiated in gradient tests).
        fast_paths: filled by the fast-path packages.
        torch_reference: the reference math written in torch (float64 gradients for parity tests).
    """

    name: str
    title: str
    reference: Callable[..., np.ndarray]
    source: str
    make_sample: Callable[[int, Shape], SampleInput]
    shape_strategy: st.SearchStrategy[Shape]
    invariants: tuple[Invariant, ...]
    bad_inputs: Callable[[], list[BadInput]]
    brute_force: Callable[..., np.ndarray]
    array_args: tuple[int, ...]
    fast_paths: dict[str, FastPath] = field(default_factory=dict)
    torch_reference: Callable[..., Any] | None = None

    def samples(self) -> st.SearchStrategy[SampleInput]:
        """Hypothesis strategy: a shape from ``shape_strategy`` and a seed, then ``make_sample``."""
        return st.builds(self.make_sample, st.integers(0, 2**32 - 1), self.shape_strategy)

    def invariant(self, name: str) -> Invariant:
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(f"form {self.name!r} has no invariant {name!r}")


_FORMS: dict[str, OperatorInfo] = {}

#: Modules that register fast paths on import.
FAST_PATH_MODULES: tuple[str, ...] = (
    "attnlab.fastpath.numba.register",
    "attnlab.fastpath.torch.register",
)
_loaded = False


def register_form(info: OperatorInfo) -> OperatorInfo:
    if info.name in _FORMS:
        raise ValueError(f"form {info.name!r} is registered twice")
    _FORMS[info.name] = info
    return info


def register_fast_path(form: str, path: FastPath) -> None:
    """Attach a fast path to a registered form (replacing one of the same name)."""
    _ensure_entries()
    if form not in _FORMS:
        raise KeyError(f"form: no registered form {form!r}; known: {sorted(_FORMS)}")
    _FORMS[form].fast_paths[path.name] = path


def register_torch_reference(form: str, fn: Callable[..., Any]) -> None:
    _ensure_entries()
    _FORMS[form].torch_reference = fn


def _ensure_entries() -> None:
    if not _FORMS:
        importlib.import_module("attnlab.entries")


def _load() -> None:
    global _loaded
    _ensure_entries()
    if _loaded:
        return
    _loaded = True
    for module in FAST_PATH_MODULES:
        importlib.import_module(module)


def forms() -> list[OperatorInfo]:
    """All registered forms, in registration order, with their fast paths attached."""
    _load()
    return list(_FORMS.values())


def get_form(name: str) -> OperatorInfo:
    _load()
    try:
        return _FORMS[name]
    except KeyError:
        raise KeyError(f"form: no registered form {name!r}; known: {sorted(_FORMS)}") from None


#: Fixed shapes on which ``attnlab verify`` checks every invariant (each form adapts them).
VERIFY_SHAPES: tuple[Shape, ...] = (
    Shape(batch=1, heads=2, kv_heads=2, n=5, d=4, d_v=3),
    Shape(batch=2, heads=2, kv_heads=1, n=7, m=7, d=6, d_v=2, causal=True),
    Shape(batch=1, heads=2, kv_heads=2, n=6, m=9, d=4, d_v=3, causal=True, masked=True),
    Shape(batch=1, heads=1, kv_heads=1, n=1, d=3, d_v=2),
)


def register_invariant_claims() -> None:
    """Expose every (form, invariant) pair as a claim of family ``operators`` for ``attnlab verify``."""
    from attnlab.theory.registry import Claim, register

    for info in forms():
        for inv in info.invariants:
            register(
                Claim(
                    id=f"operators.{info.name}.{inv.name}",
                    family="operators",
                    statement=inv.description,
                    source=info.source,
                    verdict="holds",
                    quick=_invariant_check(info, inv),
                )
            )


def _invariant_check(info: OperatorInfo, inv: Invariant) -> Callable[[], Any]:
    from attnlab.theory.registry import CheckResult

    def check() -> CheckResult:
        shapes = VERIFY_SHAPES
        failures = []
        for seed, shape in enumerate(shapes):
            sample = info.make_sample(seed, shape)
            try:
                inv.check(sample)
            except AssertionError as err:
                failures.append(f"{sample.label}: {err}")
        if failures:
            return CheckResult("falsified", f"violated on {failures[0]}", {"failures": failures})
        return CheckResult("holds", f"checked on {len(shapes)} seeded samples", {"samples": len(shapes)})

    return check
