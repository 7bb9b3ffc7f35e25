"""Core data types of the form declarations (OpInfo-style), shared by references, fast paths and tests.

A :class:`Form` declares everything the lab knows about one attention form: its float64 reference and
a brute-force loop, an independent composed-torch oracle, how to build samples, its invariants and the
mutants each invariant must catch, bad inputs, the source, status, FLOP count, benchmark cases and its
fast paths (lazy ``"module:attr"`` references with their tolerances). The list of forms is
``attnlab.forms.FORMS`` (the declaration modules); everything else (generic tests, ``attnlab forms``,
``verify``, ``check``, benchmarks, the book) is derived from it.

This module imports neither Numba nor Torch.
"""

from __future__ import annotations

import contextlib
import importlib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from attnlab.papers import Source

#: Value distributions a sample can be drawn from (see :func:`attnlab.forms._shared.draw_values`).
VALUES = ("normal", "large", "shifted", "tied", "near_tied")


@dataclass(frozen=True)
class Shape:
    """Sizes, options and value distribution of one sample.

    Attributes:
        batch, heads, kv_heads: ``B``, query heads ``H`` and KV heads ``H_kv`` (``H_kv`` divides ``H``).
        n, m: query and key lengths (``m=None``: self-attention, ``m = n``).
        d, d_v: query/key and value head dims.
        causal: ask for bottom-right causal visibility.
        masked: add a random boolean mask (with a fully masked query row when ``n > 2``).
        values: the value distribution (:data:`VALUES`): ``normal`` N(0, 1); ``large`` scaled by up to
            1e3; ``shifted`` offset by a constant; ``tied`` exactly equal logits; ``near_tied``
            logits equal up to 1e-9.
        options: form-specific keyword options to pass explicitly (``scale``, ``lam``, ``top_n``, ...),
            as sorted ``(name, value)`` pairs so the shape stays hashable.
    """

    batch: int = 1
    heads: int = 2
    kv_heads: int = 2
    n: int = 8
    m: int | None = None
    d: int = 8
    d_v: int = 8
    causal: bool = False
    masked: bool = False
    values: str = "normal"
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.values not in VALUES:
            raise ValueError(f"values: expected one of {VALUES}, got {self.values!r}")

    @property
    def keys(self) -> int:
        return self.n if self.m is None else self.m

    @property
    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)

    def with_options(self, **options: Any) -> Shape:
        merged = {**self.option_dict, **options}
        return replace(self, options=tuple(sorted(merged.items())))

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
        if self.values != "normal":
            parts.append(self.values)
        parts += [f"{name}={_short(value)}" for name, value in self.options]
        return "-".join(parts)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SampleInput:
    """Positional ``args`` and keyword ``kwargs`` of one call of a form's operator."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str = ""

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **self.kwargs)

    def with_args(self, *args: Any, **kwargs: Any) -> SampleInput:
        """The same call with new positional args and some keyword options replaced or added."""
        return SampleInput(args, {**self.kwargs, **kwargs}, self.label)

    def without(self, *names: str) -> SampleInput:
        """The same call with the keyword options ``names`` removed."""
        return SampleInput(self.args, {k: v for k, v in self.kwargs.items() if k not in names}, self.label)


@dataclass(frozen=True)
class BadInput:
    """A call that must raise ``error`` with a message matching the regex ``match`` (PyTorch's ``ErrorInput``)."""

    label: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: type[Exception]
    match: str


def always(sample: SampleInput) -> bool:
    return True


def same_shape(shape: Shape) -> Shape | None:
    return shape


@dataclass(frozen=True)
class Invariant:
    """A property of the operator.

    ``check(ops, sample)`` raises ``AssertionError`` with the size of the violation. ``ops`` is the form's
    reference module (or a mutated copy of it): checks call the operator through it
    (``ops.softmax_attention(...)``), so a mutant planted in that module reaches them.

    Attributes:
        applies: samples the property speaks about; others are filtered out when samples are drawn
            (and counted), never silently passed.
        mutants: names of the form's mutants this check must catch (at least one).
        min_samples: the least number of fixed samples it must apply to.
    """

    name: str
    description: str
    check: Callable[[Any, SampleInput], None]
    mutants: tuple[str, ...]
    applies: Callable[[SampleInput], bool] = always
    min_samples: int = 2


@dataclass(frozen=True)
class Mutant:
    """A deliberately wrong variant of a form's reference, which some invariant must catch.

    ``patches`` maps an attribute of the reference module to a function of the original that returns
    the replacement (``{"masked_softmax": lambda orig: no_max_shift}``). Applying a mutant patches the
    module in place for the duration of a ``with`` block, so calls through the module's own globals see
    it too.
    """

    name: str
    description: str
    patches: Mapping[str, Callable[[Any], Any]]


@contextlib.contextmanager
def mutated(module: types.ModuleType, mutant: Mutant) -> Iterator[types.ModuleType]:
    """Apply ``mutant`` to ``module`` inside the block (restored afterwards, also on error)."""
    saved = {}
    try:
        for attr, make in mutant.patches.items():
            if not hasattr(module, attr):
                raise AttributeError(f"mutant {mutant.name!r}: {module.__name__} has no attribute {attr!r}")
            saved[attr] = getattr(module, attr)
            setattr(module, attr, make(saved[attr]))
        yield module
    finally:
        for attr, original in saved.items():
            setattr(module, attr, original)


def load(ref: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {ref!r}")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Tolerance:
    """The tolerance rule ``err(fast, ref64) <= k * err(oracle at the fast dtype, ref64) + floor[dtype]``.

    Attributes:
        k: the fudge factor (PyTorch's default is 5; FlashAttention's tests use 2).
        floors: per-dtype absolute floors overriding :data:`DEFAULT_FLOORS`.
        reason: why a path declares anything but the defaults.
    """

    k: float = 5.0
    floors: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""

    def floor(self, dtype: str) -> float:
        return float(self.floors.get(dtype, DEFAULT_FLOORS.get(dtype, 1e-5)))

    def bound(self, oracle_error: float, dtype: str) -> float:
        return self.k * oracle_error + self.floor(dtype)


#: Absolute noise floors of the tolerance rule, per dtype (cf. PyTorch's ``default_atol`` table).
DEFAULT_FLOORS: dict[str, float] = {
    "float64": 1e-10,
    "float32": 1e-5,
    "float16": 1e-3,
    "bfloat16": 1e-2,
}

Kind = Literal["numpy", "torch"]


@dataclass(frozen=True)
class FastPath:
    """One fast implementation of a form.

    Attributes:
        name: implementation id (``numba``, ``torch``).
        fn: ``"module:attr"`` of a function with the reference's call signature.
        kind: ``"numpy"`` (NumPy arrays in and out) or ``"torch"`` (tensors in and out).
        dtypes: dtypes it supports, by name.
        devices: devices it runs on (torch kinds: ``("cpu", "cuda")``).
        vjp: NumPy kinds with a backward kernel: ``"module:attr"`` of
            ``vjp(grad_out, *args, **kwargs) -> gradients of the array arguments``.
        differentiable: gradients flow (torch autograd, or ``vjp``).
        supports: predicate on a sample; options a path does not implement are filtered out of its cases.
        tolerance: its tolerance rule, with the reason for any override.
        deterministic: two calls on the same input give bit-identical outputs (at any thread count).
        tiles: lengths at which the path's blocking changes (query blocks, key tiles, chunks); the
            standard cases include lengths just below, at and above each, and past twice the largest.
    """

    name: str
    fn: str
    kind: Kind
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    vjp: str | None = None
    differentiable: bool = False
    supports: Callable[[SampleInput], bool] = always
    tolerance: Tolerance = field(default_factory=Tolerance)
    deterministic: bool = True
    tiles: tuple[int, ...] = ()

    def load(self) -> Callable[..., Any]:
        return load(self.fn)

    def load_vjp(self) -> Callable[..., Any] | None:
        return None if self.vjp is None else load(self.vjp)


@dataclass(frozen=True)
class BenchCase:
    """One benchmark input of a form.

    Attributes:
        label: shape label.
        shape: the :class:`Shape` passed to the form's sample builder (values N(0, 1), fixed seed).
        modes: benchmark modes it belongs to (``tiny``, ``quick``, ``full``, ``cuda``).
        skip: implementations too large or too slow at this size.
    """

    shape: Shape
    modes: tuple[str, ...]
    skip: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return self.shape.label()


@dataclass(frozen=True)
class Diagnosis:
    """A known way for an implementation to be wrong.

    ``expect(sample)`` is the output the wrong variant would give (computed with the reference), or
    None where the variant coincides with the right answer; a failing output that matches it within
    the same bound is reported with ``message`` (e.g. "matches top-left causal alignment").
    """

    message: str
    expect: Callable[[SampleInput], Any]


Status = Literal["exact", "reading"]


@dataclass(frozen=True)
class Form:
    """The declaration of one attention form: the single source of truth about it.

    Attributes:
        name: family name shared across folders (``reference/softmax.py``, ``attnlab/forms/softmax.py``,
            ``fastpath/numba/softmax.py``, ``fastpath/torch/softmax.py``).
        title: human-readable title.
        equation: the defining equation in LaTeX (for ``attnlab forms`` and the book).
        reference: the float64 NumPy reference operator.
        module: the reference module the invariants call through (and mutants patch).
        brute_force: the same operator as plain scalar loops, written without the reference's helpers.
        oracle: the composed-torch oracle: the same math written plainly in torch, independent of the
            fast paths (it imports torch only when called). Run in float64 it is the gradient golden;
            run at a fast path's dtype it is "the same math at that dtype" of the tolerance rule.
        source: the paper and the place in it that defines the operator.
        status: ``exact`` (the paper defines one operator) or ``reading`` (the paper is too vague; the
            lab implements its best-specified reading, spelled out in ``note``).
        note: paper/code differences, the reading taken, conventions.
        array_args: names of the positional array arguments, in order (differentiated in gradient tests).
        sample: ``sample(seed, shape) -> SampleInput``, deterministic.
        adapt: maps a standard :class:`Shape` onto one this form accepts (or None: not applicable).
        shapes: hypothesis strategy of shapes this form accepts.
        extra_shapes: fixed shapes beyond the standard lists (form-specific options).
        invariants, mutants: properties, and the wrong variants they must catch.
        bad_inputs: ``bad_inputs() -> list of BadInput``.
        flops: ``flops(sample) -> float`` under the convention stated in ``flop_convention``.
        bench: benchmark cases; ``peers`` maps peer names to ``"module:attr"`` (torch kind);
            ``baseline`` names the implementation speedups are measured against (``oracle``: the
            composed-torch math).
        fast_paths: the fast implementations.
        diagnoses: known ways to be wrong, tried on a failing output by ``attnlab check``.
        batch_args: names of the array arguments (positional or keyword) whose leading axes are the batch
            axes (None: every array with at least the first argument's rank); the others are parameters
            every batch element shares (projection maps), left as they are when the batch-axes test
            slices the batch.
        row_args: positional arguments indexed by query (sliced to the last rows by the benchmark gate,
            which keeps bottom-right causal alignment); empty where rows are not separable.
        order: place in the catalogue (tables list forms by it, then by name).
        scaling: implementations (``"module:attr"``) timed against n for a log-log slope by ``attnlab bench``,
            called with ``scaling_options``.
    """

    name: str
    title: str
    equation: str
    reference: Callable[..., Any]
    module: types.ModuleType
    brute_force: Callable[..., Any]
    oracle: Callable[..., Any]
    source: Source
    status: Status
    array_args: tuple[str, ...]
    sample: Callable[[int, Shape], SampleInput]
    shapes: Any
    invariants: tuple[Invariant, ...]
    mutants: tuple[Mutant, ...]
    bad_inputs: Callable[[], list[BadInput]]
    flops: Callable[[SampleInput], float]
    flop_convention: str
    adapt: Callable[[Shape], Shape | None] = same_shape
    extra_shapes: tuple[Shape, ...] = ()
    note: str = ""
    bench: tuple[BenchCase, ...] = ()
    peers: Mapping[str, str] = field(default_factory=dict)
    baseline: str = "oracle"
    fast_paths: tuple[FastPath, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    row_args: tuple[int, ...] = ()
    batch_args: tuple[str, ...] | None = None
    scaling: Mapping[str, str] = field(default_factory=dict)
    scaling_options: Mapping[str, Any] = field(default_factory=dict)
    order: float = 100.0

    def __post_init__(self) -> None:
        names = [m.name for m in self.mutants]
        if len(set(names)) != len(names):
            raise ValueError(f"form {self.name!r}: mutant names repeat: {names}")
        for inv in self.invariants:
            missing = [m for m in inv.mutants if m not in names]
            if not inv.mutants or missing:
                raise ValueError(
                    f"form {self.name!r}, invariant {inv.name!r}: needs at least one declared mutant "
                    f"(unknown: {missing})"
                )

    def invariant(self, name: str) -> Invariant:
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(f"form {self.name!r} has no invariant {name!r}")

    def mutant(self, name: str) -> Mutant:
        for mutant in self.mutants:
            if mutant.name == name:
                return mutant
        raise KeyError(f"form {self.name!r} has no mutant {name!r}")

    def fast_path(self, name: str) -> FastPath:
        for path in self.fast_paths:
            if path.name == name:
                return path
        raise KeyError(f"form {self.name!r} has no fast path {name!r}; it has {[p.name for p in self.fast_paths]}")
