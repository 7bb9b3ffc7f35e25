"""Count the floating-point work an operator actually executes, for the lab's cost claims.

:func:`count_operations` runs a function on its inputs with every NumPy operation it performs on them
tallied: the inputs (and every array the reference modules allocate while counting) are a tracking
``ndarray`` subclass, so each ufunc call, reduction, ``matmul``, ``einsum`` or ``dot`` that touches
them is seen with its real operand shapes. The count therefore follows the executed computation,
blocking loops, masks and all, not a list of contractions written down beside it.

Counting rules (one unit per scalar operation):

* elementwise ufuncs: one per output element; reductions: one per input element;
* ``matmul``/``dot``/``tensordot``/``inner``: one multiply-add per term (``n·k·m`` for ``(n,k)@(k,m)``);
* ``einsum``: the product of all index sizes times ``operands − 1`` (a direct, unfactored evaluation,
  which is what NumPy's default ``einsum`` performs);
* ``where``: one per output element; data movement (reshape, indexing, broadcasting): free.

The tally is a lower-level cousin of a FLOP counter: its absolute value depends on these rules, but
its growth with the problem size (the exponent a cost claim is about) does not.
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class OpTally:
    """Operations seen while counting: ``products`` (matmul/einsum/dot terms) and ``elementwise``."""

    products: int = 0
    elementwise: int = 0

    @property
    def total(self) -> int:
        return self.products + self.elementwise


_ACTIVE: list[OpTally] = []


def _record(products: int = 0, elementwise: int = 0) -> None:
    for tally in _ACTIVE:
        tally.products += int(products)
        tally.elementwise += int(elementwise)


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Counted):
        return value.view(np.ndarray)
    if isinstance(value, tuple):
        return tuple(_unwrap(item) for item in value)
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value


def _wrap(value: Any) -> Any:
    if type(value) is np.ndarray:
        return value.view(_Counted)
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    return value


def _size(value: Any) -> int:
    return int(np.size(value)) if isinstance(value, (np.ndarray, np.generic)) else 1


def _matmul_terms(a: Any, b: Any) -> int:
    a_shape, b_shape = np.shape(a), np.shape(b)
    if not a_shape or not b_shape:
        return max(_size(a), _size(b))
    a2 = a_shape if len(a_shape) > 1 else (1, *a_shape)
    b2 = b_shape if len(b_shape) > 1 else (*b_shape, 1)
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    return math.prod(batch) * a2[-2] * a2[-1] * b2[-1]


def _einsum_terms(subscripts: str, operands: tuple[Any, ...]) -> int:
    spec = subscripts.replace(" ", "")
    inputs = spec.split("->")[0].split(",")
    sizes: dict[str, int] = {}
    ellipsis: tuple[int, ...] = ()
    for term, operand in zip(inputs, operands):
        shape = np.shape(operand)
        if "..." in term:
            before, after = term.split("...")
            covered = len(shape) - len(before) - len(after)
            ellipsis = np.broadcast_shapes(ellipsis, shape[len(before) : len(before) + covered])
            letters = list(before) + list(after)
            dims = list(shape[: len(before)]) + list(shape[len(before) + covered :])
        else:
            letters, dims = list(term), list(shape)
        for letter, dim in zip(letters, dims):
            sizes[letter] = max(sizes.get(letter, 1), int(dim))
    return math.prod(sizes.values()) * math.prod(ellipsis) * max(1, len(operands) - 1)


_REDUCTIONS = frozenset(
    {"sum", "prod", "max", "min", "amax", "amin", "mean", "all", "any", "cumsum", "cumprod", "std", "var", "ptp"}
)
_CONTRACTIONS = frozenset({"dot", "tensordot", "inner", "vdot"})


class _Counted(np.ndarray):
    """An ndarray whose operations are tallied by the active :class:`OpTally` (see the module doc)."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        raw = [_unwrap(x) for x in inputs]
        result = getattr(ufunc, method)(*raw, **kwargs)
        if ufunc is np.matmul and method == "__call__":
            _record(products=_matmul_terms(raw[0], raw[1]))
        elif method == "__call__":
            first = result[0] if isinstance(result, tuple) else result
            _record(elementwise=_size(first))
        else:  # reduce, accumulate, reduceat, outer, at
            _record(elementwise=max(_size(x) for x in raw))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any) -> Any:
        raw_args = _unwrap(tuple(args))
        raw_kwargs = {key: _unwrap(value) for key, value in kwargs.items()}
        result = func(*raw_args, **raw_kwargs)
        name = getattr(func, "__name__", "")
        if name == "einsum" and raw_args and isinstance(raw_args[0], str):
            _record(products=_einsum_terms(raw_args[0], raw_args[1:]))
        elif name in _CONTRACTIONS and len(raw_args) >= 2:
            pair = _size(raw_args[0]) * _size(raw_args[1])
            _record(products=math.isqrt(max(1, pair * max(1, _size(result)))))
        elif name in _REDUCTIONS and raw_args:
            _record(elementwise=_size(raw_args[0]))
        elif name == "where" and len(raw_args) == 3:
            _record(elementwise=_size(result))
        return _wrap(result)


class _CountingNumPy(types.ModuleType):
    """``numpy`` as seen by a module while counting: allocations and conversions stay tracked."""

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def _keep(source: Any, result: Any) -> Any:
        return result.view(_Counted) if isinstance(source, _Counted) and type(result) is np.ndarray else result

    def asarray(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return self._keep(a, np.asarray(a, *args, **kwargs))

    def ascontiguousarray(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return self._keep(a, np.ascontiguousarray(a, *args, **kwargs))

    def array(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return self._keep(a, np.array(a, *args, **kwargs))

    def empty(self, *args: Any, **kwargs: Any) -> Any:
        return np.empty(*args, **kwargs).view(_Counted)

    def zeros(self, *args: Any, **kwargs: Any) -> Any:
        return np.zeros(*args, **kwargs).view(_Counted)

    def ones(self, *args: Any, **kwargs: Any) -> Any:
        return np.ones(*args, **kwargs).view(_Counted)

    def full(self, *args: Any, **kwargs: Any) -> Any:
        return np.full(*args, **kwargs).view(_Counted)


#: Packages whose modules see the counting ``numpy`` (the lab's operators and their input validation).
COUNTED_PACKAGES: tuple[str, ...] = ("attnlab.reference", "attnlab.validation")


@contextlib.contextmanager
def _counting_numpy(packages: tuple[str, ...]) -> Iterator[None]:
    proxy = _CountingNumPy()
    patched = [
        module
        for name, module in list(sys.modules.items())
        if module is not None and name.startswith(packages) and getattr(module, "np", None) is np
    ]
    for module in patched:
        module.np = proxy  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.np = np  # type: ignore[attr-defined]


def count_operations(
    fn: Callable[..., Any], *args: Any, packages: tuple[str, ...] = COUNTED_PACKAGES, **kwargs: Any
) -> tuple[Any, OpTally]:
    """Run ``fn(*args, **kwargs)`` and tally the NumPy operations it executes on the array arguments.

    Array arguments are passed as tracking views; modules under ``packages`` see a ``numpy`` whose
    conversions and allocations keep the tracking. Returns ``(result as plain arrays, tally)``.
    """
    tally = OpTally()
    wrapped = [np.asarray(a).view(_Counted) if isinstance(a, np.ndarray) else a for a in args]
    _ACTIVE.append(tally)
    try:
        with _counting_numpy(packages):
            result = fn(*wrapped, **kwargs)
    finally:
        _ACTIVE.remove(tally)
    return _unwrap(result), tally
