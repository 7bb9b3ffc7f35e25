"""A bad-input fuzzer generated from the form declarations, run on every path of every form.

Hypothesis draws a valid call from a form's declaration (its ``shapes`` strategy and ``sample``), then one
malformation of it, derived from the call's own values and from the operator's signature
(``inspect.signature``): for an array argument a wrong rank, dtype, shape, length or head count, a NaN or
±Inf entry, huge or tiny values, another array library (torch tensors for NumPy paths, NumPy arrays and
meta-device tensors for torch paths), ``None``, a string or a bad callable in its place; for a keyword
option NumPy scalar types, bools, zero, negative, NaN, ±Inf and huge values, strings and wrong-type
option arrays; for a weights dataclass each field in turn; and missing arguments and empty batches.

Each malformation states what a correct operator does with it:

* ``reject``: raise ``TypeError``/``ValueError`` whose message names the malformed argument;
* ``accept``: return the reference's output on the equivalent well-formed call, under the tolerance rule
  (``attnlab.testing.rule.judge`` with the oracle at the path's dtype on the call and its one-ulp
  jitters; outputs above 1e6 are judged relative to their size, the rule's floors being absolute);
* ``either``: one of the two. A fast path may refuse what the reference accepts (with a named error),
  but it never returns where the reference refuses, and a returned output is finite wherever the
  reference's is.

Outcomes are classed as ``raw`` (an exception of another type), ``unnamed`` (the message names no
argument), ``misnamed`` (it names another argument, or one the operator does not take), ``silent`` (an
invalid input accepted, or a non-finite output from finite inputs), ``mismatch`` (an accepted call that
differs from the reference), ``refused`` (a valid call rejected) and ``ok``. With
``ATTNLAB_FUZZ_SURVEY=1`` outcomes are only counted (for measuring a branch), otherwise anything but
``ok`` fails the test. ``tests/forms/conftest.py`` prints the calls per path and writes them as JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from attnlab.core import FastPath, Form, SampleInput, Tolerance
from attnlab.forms import all_forms
from attnlab.testing.parity import oracle_outputs
from attnlab.testing.rule import judge, to_numpy
from attnlab.testing.samples import fixed_samples
from attnlab.validation import reference_precision

SURVEY = os.environ.get("ATTNLAB_FUZZ_SURVEY") == "1"
FORMS = all_forms()
FAMILIES = ("arrays", "types", "options", "structure")
_TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
_ABSENT = object()
_LOADED: dict[str, Callable[..., Any]] = {}


# ---------------------------------------------------------------------------------------------
# what is fuzzed


@dataclass(frozen=True)
class Target:
    """One path of a form: the reference, a fast path, or a NumPy path's VJP."""

    form: Form
    name: str
    kind: str
    dtypes: tuple[str, ...]
    path: FastPath | None = None
    vjp: bool = False

    @property
    def key(self) -> str:
        return f"{self.form.name}/{self.name}"

    def load(self) -> Callable[..., Any]:
        if self.path is None:
            return self.form.reference
        if self.key not in _LOADED:
            _LOADED[self.key] = self.path.load_vjp() if self.vjp else self.path.load()
        return _LOADED[self.key]

    @property
    def tolerance(self) -> Tolerance:
        return self.path.tolerance if self.path is not None else Tolerance()


def targets() -> list[Target]:
    out = []
    for form in FORMS:
        out.append(Target(form, "reference", "numpy", ("float64",)))
        for path in form.fast_paths:
            if "cpu" not in path.devices:
                continue
            dtypes = tuple(d for d in path.dtypes if d in ("float32", "float64"))
            out.append(Target(form, path.name, path.kind, dtypes, path))
            if path.vjp:
                out.append(Target(form, f"{path.name}-vjp", path.kind, dtypes, path, vjp=True))
    return out


TARGETS = targets()


def parameters(target: Target) -> tuple[inspect.Parameter, ...]:
    return _parameters(target.key, target.load(), target.vjp)


@cache
def _parameters(key: str, fn: Callable[..., Any], vjp: bool) -> tuple[inspect.Parameter, ...]:
    params = tuple(inspect.signature(fn).parameters.values())
    return params[1:] if vjp else params  # a VJP's first parameter is grad_out


def argument_names(target: Target) -> tuple[str, ...]:
    names = tuple(p.name for p in parameters(target) if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return (*names, "grad_out") if target.vjp else names


def reference_names(form: Form) -> frozenset[str]:
    return _reference_names(form.name, form.reference)


@cache
def _reference_names(name: str, reference: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(reference).parameters)


def kind_of(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "real"
    if isinstance(value, str):
        return "str"
    if isinstance(value, np.ndarray):
        return "mask" if value.dtype == np.bool_ else "array"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "struct"
    if callable(value):
        return "callable"
    if isinstance(value, (tuple, list)):
        return "sequence"
    return "none" if value is None else "other"


_KINDS: dict[str, dict[str, frozenset[str]]] = {}


def option_kinds(form: Form) -> dict[str, frozenset[str]]:
    """Kinds of value each keyword option takes across the form's fixed samples."""
    if form.name not in _KINDS:
        _KINDS[form.name] = _option_kinds(form)
    return _KINDS[form.name]


def _option_kinds(form: Form) -> dict[str, frozenset[str]]:
    seen: dict[str, set[str]] = {}
    for sample in fixed_samples(form):
        for name, value in sample.kwargs.items():
            seen.setdefault(name, set()).add(kind_of(value))
    return {name: frozenset(kinds) for name, kinds in seen.items()}


# ---------------------------------------------------------------------------------------------
# malformations


@dataclass(frozen=True)
class Mutation:
    """One malformation of a valid call.

    ``edit`` rewrites the NumPy call (what the reference sees; the path gets it converted to its array
    type); ``typed`` rewrites the path's converted value at ``loc`` (another array library, a device);
    ``canon`` is the well-formed call an ``accept`` must equal (default: the edited call itself).
    ``any_name``: a shape that disagrees with another argument may be reported under either name.
    """

    family: str
    label: str
    arg: str
    expect: str
    loc: tuple[str, Any] | None = None
    edit: Callable[[SampleInput], SampleInput] | None = None
    typed: Callable[[Any], Any] | None = None
    canon: Callable[[SampleInput], SampleInput] | None = None
    any_name: bool = False
    keeps_dtype: bool = True
    judge_dtype: str | None = None


def value_at(sample: SampleInput, loc: tuple[str, Any]) -> Any:
    where, key = loc
    if where == "arg":
        return sample.args[key] if key < len(sample.args) else _ABSENT
    return sample.kwargs.get(key, _ABSENT)


def put(sample: SampleInput, loc: tuple[str, Any], value: Any) -> SampleInput:
    """``sample`` with the value at ``loc`` replaced (``_ABSENT``: dropped; a dropped positional truncates)."""
    args, kwargs = list(sample.args), dict(sample.kwargs)
    where, key = loc
    if where == "arg":
        if value is _ABSENT:
            args = args[:key]
        else:
            args[key] = value
    elif value is _ABSENT:
        kwargs.pop(key, None)
    else:
        kwargs[key] = value
    return SampleInput(tuple(args), kwargs, sample.label)


def at(loc: tuple[str, Any], change: Callable[[Any], Any]) -> Callable[[SampleInput], SampleInput]:
    return lambda sample: put(sample, loc, change(value_at(sample, loc)))


def set_flat(index: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(x: np.ndarray) -> np.ndarray:
        y = np.array(x)
        y.flat[index % y.size] = value
        return y

    return change


def grow(axis: int, size: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """One more slice on ``axis`` (or the axis resized to ``size``)."""

    def change(x: np.ndarray) -> np.ndarray:
        if size is not None:
            shape = list(x.shape)
            shape[axis] = size
            return np.resize(x, shape) if size else np.zeros(shape, dtype=x.dtype)
        return np.concatenate([x, np.take(x, [-1], axis=axis)], axis=axis)

    return change


def readonly(x: np.ndarray) -> np.ndarray:
    y = np.array(x)
    y.setflags(write=False)
    return y


def callable_returning(make: Callable[[Any], Any]) -> Callable[..., Any]:
    def bad(x: Any = None, *args: Any, **kwargs: Any) -> Any:
        return make(x)

    return bad


def array_mutations(
    target: Target, name: str, loc: tuple[str, Any], a: np.ndarray, *, positional: bool, required: bool, pick: int
) -> list[Mutation]:
    out: list[Mutation] = []
    torch_path = target.kind == "torch"

    def add(family: str, label: str, change: Callable[[Any], Any], expect: str, **kw: Any) -> None:
        out.append(Mutation(family, f"{name}:{label}", name, expect, loc, edit=at(loc, change), **kw))

    def typed(label: str, change: Callable[[Any], Any], expect: str, **kw: Any) -> None:
        out.append(Mutation("types", f"{name}:{label}", name, expect, loc, typed=change, **kw))

    mask = a.dtype == np.bool_
    complex_ = a.dtype.kind == "c"
    primary = positional and not mask  # the array library of a path is fixed for its positional arrays
    if a.size and not mask:
        add("arrays", "nan", set_flat(pick, np.nan), "reject")
        add("arrays", "inf", set_flat(pick, np.inf), "reject")
        add("arrays", "-inf", set_flat(pick, -np.inf), "reject")
        add("arrays", "huge", lambda x: x * 1e150, "either")
        add("arrays", "huge-entry", set_flat(pick, 1e300), "either")
        add("arrays", "tiny", lambda x: x * 1e-300, "either")
    if mask:
        add("arrays", "float", lambda x: x.astype(np.float64), "reject")
        add("arrays", "int", lambda x: x.astype(np.int64), "reject")
        add("arrays", "all-false", np.zeros_like, "either")
        add("arrays", "all-true", np.ones_like, "either")
        if a.ndim >= 2:
            add("arrays", "rows+1", grow(-2), "reject")
            add("arrays", "cols+1", grow(-1), "reject")
            add("arrays", "1d", lambda x: x.reshape(-1), "reject")
    else:
        add("arrays", "int", lambda x: np.round(x.real).astype(np.int64), "reject")
        add("arrays", "bool", lambda x: x.real > 0, "reject")
        if not complex_:
            add("arrays", "complex", lambda x: x.astype(np.complex128), "reject")
        add("arrays", "float16", lambda x: x.astype(np.float16), "either", keeps_dtype=False, judge_dtype="float16")
        add("arrays", "float32", lambda x: x.astype(np.float32), "either", keeps_dtype=False, judge_dtype="float32")
        add("arrays", "object", lambda x: x.astype(object), "reject")
        if a.ndim >= 2 and positional:
            # flattening (1, …, 1, d) only drops leading unit axes, which broadcast
            add("arrays", "1d", lambda x: x.reshape(-1), "either" if a.shape[-1] == a.size else "reject")
            add("arrays", "0d", lambda x: np.asarray(x.reshape(-1)[0]), "reject")
        if a.ndim >= 1:
            add("arrays", "last+1", grow(-1), "either", any_name=True)
            add("arrays", "last=0", grow(-1, 0), "either", any_name=True)
            if a.shape[-1] >= 2:
                add("arrays", "last-1", lambda x: x[..., :-1], "either", any_name=True)
        if a.ndim >= 2:
            add("arrays", "rows+1", grow(-2), "either", any_name=True)
            add("arrays", "rows=0", grow(-2, 0), "either", any_name=True)
            add("arrays", "extra-lead", lambda x: x[None], "either", any_name=True)
        if a.ndim >= 3:
            add("arrays", "heads*3", lambda x: np.concatenate([x] * 3, axis=-3), "either", any_name=True)
            add("arrays", "drop-lead", lambda x: x[0], "either", any_name=True)
    add("arrays", "string", lambda x: "not an array", "reject")
    # dropping an optional array can leave another argument inconsistent (a mask sized for it): any name
    add("arrays", "none", lambda x: None, "reject" if required else "either", any_name=not required)
    add("arrays", "list", lambda x: x.tolist(), "reject" if torch_path and primary else "either", keeps_dtype=False)
    add("arrays", "callable-nan", lambda _x: callable_returning(lambda y: y * float("nan")), "reject")
    add("arrays", "callable-none", lambda _x: callable_returning(lambda y: None), "reject")
    # layouts that change nothing but the memory order
    if a.ndim >= 2 and not torch_path:
        typed("fortran-order", np.asfortranarray, "accept")
        typed("read-only", readonly, "accept")
    # another array library, another device
    if torch_path:
        typed("numpy", lambda t: t.detach().cpu().numpy(), "reject" if primary else "either")
        typed("meta-device", lambda t: t.to("meta"), "reject")
        if t_is_float(a):
            typed("requires-grad", lambda t: t.detach().clone().requires_grad_(True), "accept")
            typed("bfloat16", lambda t: t.to(torch.bfloat16), "either", keeps_dtype=False, judge_dtype="bfloat16")
        if a.ndim >= 2:
            typed("non-contiguous", lambda t: t.transpose(-1, -2).contiguous().transpose(-1, -2), "accept")
    else:
        typed("torch", lambda x: torch.from_numpy(np.ascontiguousarray(x)), "reject")
        if t_is_float(a):
            typed(
                "torch-requires-grad",
                lambda x: torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True),
                "reject",
            )
            typed("torch-bfloat16", lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16), "reject")
        typed("torch-meta", lambda x: torch.from_numpy(np.ascontiguousarray(x)).to("meta"), "reject")
    return out


def t_is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def scalar_mutations(
    name: str, loc: tuple[str, Any], current: Any, kinds: frozenset[str], required: bool
) -> list[Mutation]:
    """Bad and equivalent values of a keyword option of the given kinds (``current``: its value, if any)."""
    out: list[Mutation] = []

    def add(label: str, value: Any, expect: str, canon_value: Any = _ABSENT) -> None:
        canon = None if canon_value is _ABSENT else (lambda s, v=canon_value: put(s, loc, v))
        edit = at(loc, lambda _x, v=value: v)
        # a valid value may clash with another argument sized for the old one (num_agents vs a bias): any name
        out.append(
            Mutation(
                "options", f"{name}={label}", name, expect, loc, edit=edit, canon=canon, any_name=expect == "either"
            )
        )

    for label, value in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("1j", 1j)):
        add(label, value, "reject")
    add("string", "bogus-value", "reject")
    add("object", object(), "reject")
    add("callable-nan", callable_returning(lambda x: x * float("nan")), "reject")
    if required:
        out.append(Mutation("structure", f"{name}:missing", name, "reject", loc, edit=at(loc, lambda _x: _ABSENT)))
    if "bool" in kinds:
        flag = bool(current) if current is not _ABSENT else False
        add("1", 1, "reject")
        add("0", 0, "reject")
        add("none", None, "either" if not required else "reject")
        add("np.bool_", np.bool_(flag), "accept" if current is not _ABSENT else "either", flag)
        add("flipped", not flag, "either")
    if "int" in kinds:
        given = current is not _ABSENT and kind_of(current) == "int"  # a made-up value may be out of range
        base = int(current) if given else 2
        add("np.int64", np.int64(base), "accept" if given else "either", base)
        add("True", True, "reject")
        add("half", base + 0.5, "reject")
        add("float", float(base), "either")
        # 10**30 overflows int64 (a count past it must be refused or clipped by name); 10**9 is left out:
        # a valid count that large allocates gigabytes
        for label, value in (("0", 0), ("-1", -1), ("+1", base + 1), ("1e30", 10**30)):
            add(label, value, "either")
    if "real" in kinds:
        given = current is not _ABSENT and kind_of(current) == "real"
        base = float(current) if given else 0.5
        add("np.float32", np.float32(base), "accept" if given else "either", float(np.float32(base)))
        add("np.float64", np.float64(base), "accept" if given else "either", base)
        add("True", True, "reject")
        for label, value in (
            ("0", 0.0),
            ("-0", -0.0),
            ("neg", -abs(base) - 0.5),
            ("1e-300", 1e-300),
            ("1e300", 1e300),
            ("int", 1),
            ("0d-array", np.array(base)),
            ("list", [base]),
        ):
            add(label, value, "either")
    if "str" in kinds:
        base = str(current) if current is not _ABSENT and kind_of(current) == "str" else ""
        if base:
            add("np.str_", np.str_(base), "accept", base)
            add("upper", base.upper() + "_", "reject")
        add("int", 1, "reject")
        add("none", None, "either")
    if "none" in kinds or not kinds:
        for label, value in (
            ("0", 0),
            ("-1", -1),
            ("0.5", 0.5),
            ("1e300", 1e300),
            ("True", True),
            ("np.float32", np.float32(0.5)),
        ):
            add(label, value, "either")
    if "callable" in kinds:
        add("callable-none", callable_returning(lambda x: None), "reject")
        add("callable-bool", callable_returning(lambda x: x > 0), "reject")
        add("callable-short", callable_returning(lambda x: x[..., :1, :]), "either")
    return out


def struct_mutations(name: str, loc: tuple[str, Any], value: Any, pick: int, torch_path: bool) -> list[Mutation]:
    """Each field of a weights dataclass in turn: non-finite, wrong dtype, shape and size fields."""
    out: list[Mutation] = []

    def add(
        label: str, field_name: str, change: Callable[[Any], Any], expect: str, canon: bool = False, **kw: Any
    ) -> None:
        def edit(sample: SampleInput) -> SampleInput:
            struct = value_at(sample, loc)
            return put(sample, loc, replace(struct, **{field_name: change(getattr(struct, field_name))}))

        out.append(
            Mutation(
                "structure",
                f"{name}.{field_name}:{label}",
                name,
                expect,
                loc,
                edit=edit,
                canon=(lambda s: s) if canon else None,
                **kw,
            )
        )

    out.append(
        Mutation("structure", f"{name}:dict", name, "reject", loc, edit=at(loc, lambda s: dataclasses.asdict(s)))
    )
    for f in dataclasses.fields(value):
        field_value = getattr(value, f.name)
        if isinstance(field_value, np.ndarray) and field_value.dtype.kind == "f":
            add("nan", f.name, set_flat(pick, np.nan), "reject")
            add("inf", f.name, set_flat(pick, np.inf), "reject")
            add("int", f.name, lambda x: np.round(x).astype(np.int64), "reject")
            add("complex", f.name, lambda x: x.astype(np.complex128), "reject")
            add("huge", f.name, lambda x: x * 1e200, "either")
            add("none", f.name, lambda x: None, "either", any_name=True)
            add("string", f.name, lambda x: "w", "reject")
            add("first+1", f.name, grow(0), "either", any_name=True)
            if field_value.ndim >= 2:
                add("last+1", f.name, grow(-1), "either", any_name=True)
                add("1d", f.name, lambda x: x.reshape(-1), "either", any_name=True)
            else:
                add("2d", f.name, lambda x: x[None], "either", any_name=True)
            add("float32", f.name, lambda x: x.astype(np.float32), "either", keeps_dtype=False, judge_dtype="float32")
            if not torch_path:
                add("torch", f.name, lambda x: torch.from_numpy(np.ascontiguousarray(x)), "reject")
        elif isinstance(field_value, (int, np.integer)) and not isinstance(field_value, bool):
            add("0", f.name, lambda x: 0, "either", any_name=True)
            add("-1", f.name, lambda x: -1, "either", any_name=True)
            add("+1", f.name, lambda x: x + 1, "either", any_name=True)
            add("True", f.name, lambda x: True, "reject")
            add("half", f.name, lambda x: x + 0.5, "reject")
            add("np.int64", f.name, np.int64, "accept", canon=True)
        elif field_value is None:
            add("string", f.name, lambda x: "w", "reject")
    return out


Site = Callable[[], list[Mutation]]


def sites(target: Target, sample: SampleInput, pick: int, empty: SampleInput | None) -> list[Site]:
    """One builder of malformations per argument of the call (built only when drawn), plus whole-call ones."""
    params = parameters(target)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in params if p.kind == p.KEYWORD_ONLY]
    kinds = option_kinds(target.form)
    torch_path = target.kind == "torch"
    out: list[Site] = []
    for index, value in enumerate(sample.args):
        param = positional[index]
        required = param.default is inspect.Parameter.empty
        loc = ("arg", index)
        name = param.name
        if isinstance(value, np.ndarray):
            out.append(
                lambda n=name, l=loc, v=value, r=required: array_mutations(
                    target, n, l, v, positional=True, required=r, pick=pick
                )
            )
        elif kind_of(value) == "struct":
            out.append(
                lambda n=name, l=loc, v=value: [
                    *struct_mutations(n, l, v, pick, torch_path),
                    Mutation("structure", f"{n}:none", n, "reject", l, edit=at(l, lambda _x: None)),
                    Mutation("structure", f"{n}:string", n, "reject", l, edit=at(l, lambda _x: "w")),
                ]
            )
        else:
            out.append(lambda n=name, l=loc, v=value, r=required: scalar_mutations(n, l, v, frozenset({kind_of(v)}), r))
    last = len(sample.args) - 1
    if last >= 0 and positional[last].default is inspect.Parameter.empty:
        name, loc = positional[last].name, ("arg", last)
        out.append(
            lambda n=name, l=loc: [
                Mutation("structure", f"{n}:missing", n, "reject", l, edit=at(l, lambda _x: _ABSENT))
            ]
        )
    for param in keyword:
        loc = ("kw", param.name)
        current = sample.kwargs.get(param.name, _ABSENT)
        required = param.default is inspect.Parameter.empty
        if isinstance(current, np.ndarray):
            out.append(
                lambda n=param.name, l=loc, v=current, r=required: [
                    *array_mutations(target, n, l, v, positional=False, required=r, pick=pick),
                    *(m for m in scalar_mutations(n, l, v, frozenset(), r) if m.expect == "reject"),
                ]
            )
            continue
        seen = kinds.get(param.name, frozenset())
        if current is not _ABSENT:
            seen = seen | {kind_of(current)}
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            seen = seen | {kind_of(param.default)}
        extra = []
        if "mask" in seen and current is _ABSENT:
            extra.append(
                Mutation(
                    "options",
                    f"{param.name}:float-ones",
                    param.name,
                    "reject",
                    loc,
                    edit=at(loc, lambda _x: np.ones((1, 1))),
                )
            )
        scalar_kinds = frozenset(k for k in seen if k not in ("mask", "array", "struct"))
        out.append(
            lambda n=param.name, l=loc, c=current, k=scalar_kinds, r=required, e=tuple(extra): [
                *e,
                *scalar_mutations(n, l, c, k, r),
            ]
        )
    whole = [Mutation("structure", "all-huge", "values", "either", edit=lambda s: _scale_all(s, 1e150), any_name=True)]
    if empty is not None:
        whole.append(Mutation("structure", "empty-batch", "batch", "accept", edit=lambda _s: empty))
    out.append(lambda: whole)
    return out


def draw_mutation(
    data: st.DataObject, target: Target, sample: SampleInput, family: str, pick: int, empty: SampleInput | None
) -> Mutation:
    """A malformation of ``family`` at a drawn argument (any family where that argument has none)."""
    candidates = sites(target, sample, pick, empty)
    order = data.draw(st.permutations(range(len(candidates))), label="sites")
    for index in order:
        built = [m for m in candidates[index]() if m.family == family]
        if built:
            return data.draw(st.sampled_from(built), label="mutation")
    everything = [m for build in candidates for m in build()]
    return data.draw(st.sampled_from(everything), label="mutation")


def _scale_all(sample: SampleInput, factor: float) -> SampleInput:
    args = tuple(a * factor if isinstance(a, np.ndarray) and a.dtype.kind in "fc" else a for a in sample.args)
    return SampleInput(args, sample.kwargs, sample.label)


# ---------------------------------------------------------------------------------------------
# running one call


def convert_value(value: Any, kind: str, dtype: str) -> Any:
    """A NumPy value as the path sees it: float64 arrays in the path's dtype, other dtypes kept."""
    if not isinstance(value, np.ndarray):
        return value
    if kind == "numpy":
        if value.dtype == np.float64:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: the path must refuse it
                return value.astype(dtype)
        if value.dtype == np.complex128 and dtype == "float32":
            return value.astype(np.complex64)
        return value
    if value.dtype == object:
        return value
    tensor = torch.from_numpy(np.ascontiguousarray(value))
    if value.dtype == np.float64:
        return tensor.to(_TORCH_DTYPES[dtype])
    if value.dtype == np.complex128:
        return tensor.to(torch.complex64 if dtype == "float32" else torch.complex128)
    return tensor


def convert_call(sample: SampleInput, kind: str, dtype: str) -> SampleInput:
    return SampleInput(
        tuple(convert_value(a, kind, dtype) for a in sample.args),
        {k: convert_value(v, kind, dtype) for k, v in sample.kwargs.items()},
        sample.label,
    )


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


#: Seconds one fuzzed call may run: a valid but absurd option (10**30 iterations) must be refused, not run.
CALL_LIMIT = 60.0


class CallTimeout(Exception):
    """A fuzzed call ran past :data:`CALL_LIMIT` (classed as ``raw``: a hang is no named error)."""


def _alarm(signum: int, frame: Any) -> None:
    raise CallTimeout(f"the call ran past {CALL_LIMIT:g} s")


@contextlib.contextmanager
def time_limit() -> Iterator[None]:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(fn: Callable[..., Any], call: SampleInput, grad_out: Any = None) -> Outcome:
    try:
        with time_limit():
            if grad_out is not None:
                return Outcome(fn(grad_out, *call.args, **call.kwargs))
            if any(isinstance(a, torch.Tensor) for a in (*call.args, *call.kwargs.values())):
                with torch.no_grad():
                    return Outcome(fn(*call.args, **call.kwargs))
            return Outcome(fn(*call.args, **call.kwargs))
    except Exception as exc:  # every failure is classified below
        return Outcome(error=exc)


#: Outputs larger than this are judged relative to their size (see :func:`judge_output`).
HUGE_OUTPUT = 1e6
_OVERFLOW = "the result is not finite"

_PREFIX = re.compile(r"^\s*[A-Za-z_][\w.]*(\s*/\s*[A-Za-z_][\w.]*)*\s*:")


def names(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", message) is not None


def classify_error(error: BaseException, mutation: Mutation, signature: tuple[str, ...]) -> str:
    if not isinstance(error, (TypeError, ValueError)):
        return "raw"
    message = str(error)
    if names(message, mutation.arg) or (mutation.any_name and any(names(message, n) for n in signature)):
        return "ok"
    if mutation.arg in ("batch", "values") and any(names(message, n) for n in signature):
        return "ok"
    if _PREFIX.match(message) or any(names(message, n) for n in signature):
        return "misnamed"
    return "unnamed"


def finite(x: Any) -> np.ndarray:
    return np.isfinite(to_numpy(x))


def first_array(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def _finite_gradients(out: Any) -> bool:
    return all(g is None or bool(np.all(finite(g))) for g in (out if isinstance(out, tuple) else (out,)))


def reference_outcome(form: Form, call: SampleInput) -> Outcome:
    keep = reference_names(form)
    return invoke(
        form.reference, SampleInput(call.args, {k: v for k, v in call.kwargs.items() if k in keep}, call.label)
    )


def lowp_oracle(form: Form, call: SampleInput, dtype: str) -> list[Any]:
    """The oracle at the path's dtype on the call and its one-ulp jitters (the rule's noise estimate), or
    the reference run in that precision where the oracle cannot run."""
    try:
        return oracle_outputs(form, call, dtype)
    except Exception:
        if dtype not in ("float16", "float32", "float64"):
            return [form.reference(*call.args, **call.kwargs)]
        with reference_precision(dtype):
            return [form.reference(*call.args, **call.kwargs)]


def judge_output(target: Target, mutation: Mutation, got: Any, canon: SampleInput, ref: Any, dtype: str) -> str:
    """``""`` when ``got`` matches the reference's ``ref`` under the tolerance rule, else the problem."""
    if target.vjp:
        return ""
    got_np = to_numpy(got)
    ref_np = to_numpy(ref)
    if got_np.shape != ref_np.shape:
        return f"output shape {got_np.shape}, expected {ref_np.shape}"
    if not np.all(np.isfinite(got_np) | ~np.isfinite(ref_np)):
        return "non-finite output where the reference is finite"
    if target.path is None:
        return ""
    rule_dtype = mutation.judge_dtype or dtype
    keep = reference_names(target.form)
    canon = SampleInput(canon.args, {k: v for k, v in canon.kwargs.items() if k in keep}, canon.label)
    lowp = [to_numpy(first_array(out)) for out in lowp_oracle(target.form, canon, rule_dtype)]
    # the rule's floors are absolute, set for outputs of order 1: huge outputs are judged relative to their size
    size = float(np.max(np.abs(ref_np))) if ref_np.size else 0.0
    unit = size if size > HUGE_OUTPUT else 1.0
    verdict = judge(ref_np / unit, got_np / unit, [out / unit for out in lowp], rule_dtype, target.tolerance)
    if not verdict.passed or verdict.problem:
        return verdict.message("output")
    if mutation.keeps_dtype and hasattr(got, "dtype") and not np.iscomplexobj(got_np):
        want = str(_TORCH_DTYPES[dtype]) if target.kind == "torch" else dtype
        if str(got.dtype) != want:
            return f"output dtype {got.dtype}, expected {want}"
    return ""


def judge_call(target: Target, mutation: Mutation, valid: SampleInput, dtype: str) -> tuple[str, str]:
    """Run the malformed call on the target and class the outcome (class, detail)."""
    signature = argument_names(target)
    edited = mutation.edit(valid) if mutation.edit else valid
    canon = mutation.canon(valid) if mutation.canon else edited
    call = convert_call(edited, target.kind, dtype)
    if mutation.typed is not None and mutation.loc is not None:
        call = put(call, mutation.loc, mutation.typed(value_at(call, mutation.loc)))
    grad_out = None
    if target.vjp:
        shaped = reference_outcome(target.form, canon)
        if shaped.error is not None:
            shaped = reference_outcome(target.form, valid)
        grad_out = np.ones(np.shape(first_array(shaped.value)), dtype=dtype)
    got = invoke(target.load(), call, grad_out)
    if got.error is not None:
        cls = classify_error(got.error, mutation, signature)
        detail = f"{type(got.error).__name__}: {got.error}"
        if cls == "ok" and mutation.expect == "accept":
            return "refused", detail
        return cls, detail
    if mutation.expect == "reject":
        return "silent", "returned an output"
    ref = got if target.path is None else reference_outcome(target.form, canon)
    if ref.error is not None:
        if target.vjp and _OVERFLOW in str(ref.error) and _finite_gradients(got.value):
            return "ok", ""  # the forward overflows; a finite gradient of the same call is no silent error
        return "silent", f"the reference refuses it ({type(ref.error).__name__}: {ref.error})"
    ref_out = first_array(ref.value)
    if not target.vjp and not np.all(finite(ref_out)):
        return "silent", "the reference returns a non-finite output from finite inputs"
    if target.vjp:
        return ("ok", "") if _finite_gradients(got.value) else ("silent", "a non-finite gradient")
    if target.path is None and mutation.canon is not None:
        want = reference_outcome(target.form, canon)
        if (
            want.error is not None
            or to_numpy(first_array(want.value)).shape != to_numpy(ref_out).shape
            or not np.allclose(to_numpy(ref_out), to_numpy(first_array(want.value)), rtol=1e-12, atol=1e-12)
        ):
            return "mismatch", "differs from the same call with built-in Python values"
        return "ok", ""
    problem = judge_output(target, mutation, first_array(got.value), canon, ref_out, dtype)
    return ("mismatch", problem) if problem else ("ok", "")


# ---------------------------------------------------------------------------------------------
# the test


def _empty_batch(form: Form, seed: int, shape: Any) -> SampleInput | None:
    """The form's sample with batch 0, where its builder makes a valid one (statistics of an empty batch,
    a mean say, are NaN: no valid call then)."""
    try:
        sample = form.sample(seed, replace(shape, batch=0))
    except Exception:
        return None
    values = [*sample.args, *sample.kwargs.values()]
    if any(isinstance(a, np.ndarray) and a.dtype.kind in "fc" and not np.isfinite(a).all() for a in values):
        return None
    return sample


@pytest.mark.parametrize("target", TARGETS, ids=[t.key for t in TARGETS])
def test_malformed_calls_are_rejected_by_name_or_match_the_reference(target: Target, fuzz_log: dict) -> None:
    form = target.form
    supports = target.path.supports if target.path is not None else (lambda s: True)

    @given(st.data())
    def check(data: st.DataObject) -> None:
        shape = data.draw(form.shapes, label="shape")
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        valid = form.sample(seed, shape)
        assume(supports(valid))
        dtype = data.draw(st.sampled_from(target.dtypes), label="dtype")
        family = data.draw(st.sampled_from(FAMILIES), label="family")
        pick = data.draw(st.integers(0, 2**16), label="pick")
        empty = _empty_batch(form, seed, shape) if family == "structure" else None
        mutation = draw_mutation(data, target, valid, family, pick, empty)
        cls, detail = judge_call(target, mutation, valid, dtype)
        fuzz_log["calls"][target.key] += 1
        fuzz_log["outcomes"][target.key][cls] += 1
        if cls != "ok":
            record = f"{mutation.label} [{dtype}] {detail}"[:300] + f" @ {valid.label} seed={seed}"
            fuzz_log["examples"].setdefault(f"{target.key} {cls}", []).append(record)
        if not SURVEY:
            where = f"{target.key} {mutation.label} [{dtype}] on {valid.label}"
            assert cls == "ok", f"{where} (expected {mutation.expect}): {cls}: {detail}"

    check()
