"""Input validation shared by every public operator: the references, the Numba paths and the torch paths.

Each check raises ``TypeError`` (wrong kind of object, dtype, array library or device) or ``ValueError``
(wrong shape, non-finite value, option out of range) with a message that names the argument the caller
passed and states what was expected, e.g.
``"k: expected last axis of size 8 (d_k, the last axis of q), got shape (2, 5, 7)"``.

The rules, the same on every path:

* **Arrays.** Floating dtypes only (complex where a form is complex-valued); integer, boolean, complex
  and object arrays are rejected, never silently cast. Rank and the token and feature axes are checked
  (those must be non-empty); leading batch/head axes may be empty, which gives an empty output. Every
  entry must be finite.
* **One array library per path.** The NumPy references and the Numba paths take NumPy arrays (or
  nested lists of floats); a torch tensor, or any other library's array, raises ``TypeError`` naming the
  argument. Torch paths take tensors for their positional array arguments; their keyword array
  options (masks, λ, weights) may also be NumPy arrays, converted to the device of the first array
  argument (float options to its dtype). Tensors must hold data (not the ``meta`` device).
* **Scalar options** are Python or NumPy scalars (``np.float32(0.5)`` is as good as ``0.5``); ``bool``
  is not a number, numbers are finite, and each option states its range. Arrays, even 0-d ones, are
  not scalars.
* **Structured arguments** (weights dataclasses, callables, option arrays) are validated like arrays,
  field by field or on what the callable returns, and named ``weights.w_o``, ``feature_map(q)``, ...
* **Overflow.** Inputs so large that an intermediate overflows the compute dtype raise ``ValueError``
  naming the arguments of the call (:func:`overflow_checked`) instead of returning NaN or Inf.

:class:`ArraySpec` is the one description of an array argument that the NumPy checks here and the torch
checks in ``attnlab.fastpath.torch._common`` share, so both paths word every message the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

FloatArray = np.ndarray

_FLOAT64 = np.dtype(np.float64)
_COMPUTE_DTYPE: contextvars.ContextVar[np.dtype] = contextvars.ContextVar("attnlab_compute_dtype", default=_FLOAT64)

F = TypeVar("F", bound=Callable[..., Any])


def compute_dtype() -> np.dtype:
    """The dtype reference operators compute in (float64 unless inside :func:`reference_precision`)."""
    return _COMPUTE_DTYPE.get()


@contextlib.contextmanager
def reference_precision(dtype: Any) -> Iterator[None]:
    """Run reference operators in ``dtype`` instead of float64.

    This is "the same math at the fast path's dtype" of the tolerance rule
    ``err(fast, ref64) <= k * err(ref at fast dtype, ref64) + floor``.
    """
    token = _COMPUTE_DTYPE.set(np.dtype(dtype))
    try:
        yield
    finally:
        _COMPUTE_DTYPE.reset(token)


# ---------------------------------------------------------------------------------------------
# what an object is


def type_name(x: Any) -> str:
    """``torch.Tensor``, ``numpy.ndarray``, ``list``, ... (the module is kept for array libraries)."""
    cls = type(x)
    module = cls.__module__.split(".")[0]
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def array_library(x: Any) -> str | None:
    """The array library of a non-NumPy array object (``torch``, ``jax``, ``cupy``, ...), else None."""
    if isinstance(x, (np.ndarray, np.generic)):
        return None
    if hasattr(x, "__dlpack__") or hasattr(x, "__array_namespace__") or hasattr(x, "__cuda_array_interface__"):
        return type(x).__module__.split(".")[0]
    return None


def is_real_number(value: Any) -> bool:
    """A Python or NumPy real scalar (``bool`` excluded)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


# ---------------------------------------------------------------------------------------------
# arrays


@dataclass(frozen=True)
class ArraySpec:
    """What one array argument must be; the NumPy and the torch checks both raise its messages.

    Attributes:
        name: the argument's name, as the caller passed it (``q``, ``weights.w_o``, ``feature_map(q)``).
        layout: the expected layout, for messages (``(..., n, d)``).
        min_ndim, ndim: the least rank, or the exact rank.
        nonempty: how many trailing axes must be non-empty (the token and feature axes).
        complex_ok: complex dtypes are accepted (complex-valued forms).
    """

    name: str
    layout: str = "(..., n, d)"
    min_ndim: int = 2
    ndim: int | None = None
    nonempty: int = 2
    complex_ok: bool = False

    @property
    def kind(self) -> str:
        return "a floating or complex" if self.complex_ok else "a float"

    def wrong_type(self, x: Any, container: str = "NumPy array", hint: str = "") -> TypeError:
        """``x`` is not a ``container`` (``NumPy array``, ``torch.Tensor``); ``hint`` says how to convert."""
        message = f"{self.name}: expected {self.kind} {container} of shape {self.layout}, got {type_name(x)}"
        return TypeError(f"{message}; {hint}" if hint else message)

    def wrong_dtype(self, dtype: Any, allowed: str) -> TypeError:
        return TypeError(f"{self.name}: expected a floating dtype ({allowed}), got dtype {dtype}")

    def non_finite(self) -> ValueError:
        return ValueError(f"{self.name}: contains NaN or Inf; every entry must be finite")

    def check_shape(self, shape: tuple[int, ...], noun: str = "array") -> None:
        """Rank and non-empty trailing axes (the leading batch/head axes may be empty)."""
        if self.ndim is not None and len(shape) != self.ndim:
            raise ValueError(f"{self.name}: expected a {self.ndim}-d {noun} {self.layout}, got shape {shape}")
        if len(shape) < self.min_ndim:
            raise ValueError(
                f"{self.name}: expected at least {self.min_ndim} dims laid out {self.layout}, got shape {shape}"
            )
        trailing = shape[len(shape) - min(self.nonempty, len(shape)) :]
        if any(s == 0 for s in trailing):
            raise ValueError(
                f"{self.name}: expected non-empty {'token and feature axes' if self.nonempty >= 2 else 'last axis'}, "
                f"got shape {shape}"
            )


#: How to convert another library's array for a NumPy path.
NUMPY_HINT = (
    "the NumPy reference and Numba paths take NumPy arrays: pass {name}.detach().cpu().numpy(), or call the torch path"
)


def as_numpy(spec: ArraySpec, x: Any) -> np.ndarray:
    """``x`` as a NumPy array of a float (or, if allowed, complex) dtype, checked against ``spec``."""
    if array_library(x) is not None:
        raise spec.wrong_type(x, hint=NUMPY_HINT.format(name=spec.name))
    if x is None or isinstance(x, (str, bytes, dict, set)) or callable(x):
        raise spec.wrong_type(x)
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(
            f"{spec.name}: expected {spec.kind} array of shape {spec.layout}, got a ragged {type_name(x)}"
        ) from None
    if arr.dtype == object:
        raise TypeError(f"{spec.name}: expected {spec.kind} array of shape {spec.layout}, got an object array")
    kinds = "fc" if spec.complex_ok else "f"
    if arr.dtype.kind not in kinds:
        allowed = "float16/float32/float64" + ("/complex64/complex128" if spec.complex_ok else "")
        raise spec.wrong_dtype(arr.dtype, allowed)
    spec.check_shape(arr.shape)
    if arr.size and not np.isfinite(arr).all():
        raise spec.non_finite()
    return arr


def as_float_array(
    name: str, x: Any, *, min_ndim: int = 2, ndim: int | None = None, layout: str | None = None, nonempty: int = 2
) -> np.ndarray:
    """Return ``x`` as a float array in the compute dtype after checking its type, dtype, rank and finiteness.

    Accepts NumPy arrays (and array-likes such as nested lists of floats) of a floating dtype.
    Integer, boolean and complex inputs are rejected rather than silently cast: a reference operator
    that quietly rounds is a source of false agreement. Arrays of other libraries (torch tensors) are
    rejected with a ``TypeError`` naming ``name``.
    """
    if ndim is not None:
        min_ndim = ndim
    if layout is None:
        layout = "(..., n, d)" if min_ndim >= 2 else "(...)"
    spec = ArraySpec(name, layout, min_ndim, ndim, nonempty if min_ndim >= 1 else 0)
    return as_numpy(spec, x).astype(compute_dtype(), copy=False)


def as_complex_array(name: str, x: Any, *, min_ndim: int = 2, layout: str = "(..., n, d)") -> np.ndarray:
    """Like :func:`as_float_array` for complex-valued forms: real or complex input, returned as the complex
    dtype of the compute dtype (complex128; complex64 inside ``reference_precision(float32)``)."""
    arr = as_numpy(ArraySpec(name, layout, min_ndim, complex_ok=True), x)
    return arr.astype(np.result_type(compute_dtype(), np.complex64), copy=False)


def check_last_dim(name: str, x: Any, expected: int, what: str) -> None:
    if x.shape[-1] != expected:
        raise ValueError(f"{name}: expected last axis of size {expected} ({what}), got shape {tuple(x.shape)}")


def check_same_length(names: Sequence[str], arrays: Sequence[Any], axis: int = -2) -> None:
    """All arrays must have the same size on ``axis`` (the token axis by default)."""
    sizes = [a.shape[axis] for a in arrays]
    if len(set(sizes)) > 1:
        detail = ", ".join(f"{n}{tuple(a.shape)}" for n, a in zip(names, arrays))
        raise ValueError(f"{'/'.join(names)}: expected the same length on axis {axis}, got {detail}")


def broadcast_batch(names: Sequence[str], arrays: Sequence[Any], core_ndim: int = 2) -> tuple:
    """Broadcast the leading (batch/head) dims of several arrays; the last ``core_ndim`` stay."""
    try:
        return np.broadcast_shapes(*(tuple(a.shape[:-core_ndim]) for a in arrays))
    except ValueError:
        detail = ", ".join(f"{n}{tuple(a.shape)}" for n, a in zip(names, arrays))
        raise ValueError(f"{'/'.join(names)}: leading (batch/head) dims must broadcast, got {detail}") from None


def check_broadcast_to(name: str, shape: tuple[int, ...], target: tuple[int, ...], expected: str) -> None:
    """``shape`` must broadcast to exactly ``target`` (an option array may not enlarge the output)."""
    try:
        ok = np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected {expected} broadcastable to {tuple(target)}, got shape {tuple(shape)}")


# ---------------------------------------------------------------------------------------------
# scalar options


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive: bool = False,
    what: str = "a finite real number",
) -> float:
    """A Python or NumPy real scalar, finite, within ``[minimum, maximum]`` (open at ``minimum`` if
    ``exclusive``); returned as a Python float."""
    if not is_real_number(value):
        raise TypeError(f"{name}: expected {what} (a Python or NumPy scalar), got {type_name(value)} {_short(value)}")
    number = float(value)
    below = minimum is not None and (number <= minimum if exclusive else number < minimum)
    if not math.isfinite(number) or below or (maximum is not None and number > maximum):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return number


def check_scale(scale: Any, default: float, name: str = "scale") -> float:
    """Return ``default`` if ``scale`` is None, else check it is a positive finite real number."""
    if scale is None:
        return float(default)
    return check_real(name, scale, minimum=0.0, exclusive=True, what="a positive finite float or None")


def check_int(name: str, value: Any, *, minimum: int | None = None, what: str = "an int") -> int:
    """A Python or NumPy integer (``bool`` excluded) of at least ``minimum``; returned as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected {what}, got {type_name(value)} {_short(value)}")
    if minimum is not None and int(value) < minimum:
        raise ValueError(f"{name}: expected {what}, got {value}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    return check_int(name, value, minimum=1, what="a positive int")


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type_name(value)} {_short(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices`` (a ``str``; NumPy strings are strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {_short(value)}")
    return str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# structured arguments


def checked_call(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user-supplied callable; an exception it raises is re-raised naming the argument it came in."""
    try:
        return fn(*args)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: the callable raised {type(exc).__name__}: {exc}") from exc


def check_field_shape(name: str, value: Any, expected: tuple[int, ...], what: str) -> None:
    """A weights field must have exactly ``expected`` as shape (``what`` explains the sizes)."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)} ({what}), got {tuple(value.shape)}")


# ---------------------------------------------------------------------------------------------
# visibility


def as_mask(mask: Any, target: tuple[int, ...], name: str = "mask") -> np.ndarray:
    """A NumPy boolean mask broadcastable to ``target`` (True = attend)."""
    n, m = target[-2:]
    if array_library(mask) is not None:
        raise TypeError(
            f"{name}: expected a NumPy boolean array (True = attend) broadcastable to (..., {n}, {m}), got "
            f"{type_name(mask)}; the NumPy reference and Numba paths take NumPy arrays"
        )
    arr = boolean_array(name, mask, f" broadcastable to (..., {n}, {m})")
    check_mask_shape(name, tuple(arr.shape), target)
    return arr


def boolean_array(name: str, mask: Any, shape_hint: str = "") -> np.ndarray:
    """``mask`` (a NumPy array or nested lists) as a NumPy boolean array; any other dtype is refused."""
    if isinstance(mask, (str, bytes)) or callable(mask) or mask is None:
        raise TypeError(f"{name}: expected a boolean array (True = attend), got {type_name(mask)}")
    try:
        arr = np.asarray(mask)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a boolean array (True = attend), got a ragged {type_name(mask)}") from None
    if arr.dtype != np.bool_:
        raise TypeError(f"{name}: expected a boolean array (True = attend){shape_hint}, got dtype {arr.dtype}")
    return arr


def check_mask_shape(name: str, shape: tuple[int, ...], target: tuple[int, ...]) -> None:
    """A mask has 2 to ``len(target)`` dims and broadcasts to exactly ``target``."""
    if not 2 <= len(shape) <= len(target):
        raise ValueError(f"{name}: expected a boolean array broadcastable to {tuple(target)}, got shape {shape}")
    check_broadcast_to(name, shape, target, "a boolean array")


def allowed_positions(
    n: int,
    m: int,
    *,
    causal: bool,
    mask: Any,
    lead: tuple[int, ...] = (),
    mask_name: str = "mask",
) -> np.ndarray:
    """Boolean ``(..., n, m)`` array of query/key pairs that may attend (True = attend).

    ``causal`` uses bottom-right alignment: key ``j`` is visible to query ``i`` iff
    ``j <= i + m - n`` (FlashAttention >= 2.1; the last query sees every key).  ``mask`` must be a
    boolean array broadcastable to ``(*lead, n, m)``.
    """
    causal = check_bool("causal", causal)
    allowed = np.ones((n, m), dtype=bool)
    if causal:
        allowed = np.tril(allowed, k=m - n)
    if mask is None:
        return allowed
    return allowed & as_mask(mask, (*lead, n, m), mask_name)


def expand_kv_heads(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, names: tuple[str, str, str] = ("q", "k", "v")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the GQA/MQA head map and broadcast leading dims.

    When ``k``/``v`` carry fewer heads than ``q`` on axis -3, query head ``h`` uses KV head
    ``h // G`` with ``G = H / H_kv`` (contiguous groups, as in FlashAttention and ``enable_gqa``).
    Returns ``q, k, v`` with identical leading dims.
    """
    _, kn, vn = names
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"{kn}/{vn}: expected the same leading dims and length (..., m, *), got {kn}{k.shape} and {vn}{v.shape}"
        )
    check_kv_heads(q.shape, k.shape, names[:2])
    if q.ndim >= 3 and k.ndim >= 3 and k.shape[-3] not in (q.shape[-3], 1):
        group = q.shape[-3] // k.shape[-3]
        k = np.repeat(k, group, axis=-3)
        v = np.repeat(v, group, axis=-3)
    lead = broadcast_batch(names, (q, k, v))
    q = np.broadcast_to(q, (*lead, *q.shape[-2:]))
    k = np.broadcast_to(k, (*lead, *k.shape[-2:]))
    v = np.broadcast_to(v, (*lead, *v.shape[-2:]))
    return q, k, v


def check_kv_heads(q_shape: tuple[int, ...], k_shape: tuple[int, ...], names: tuple[str, str] = ("q", "k")) -> int:
    """The GQA group size ``G = H / H_kv`` (1 without a head axis, for MHA and for one KV head broadcast)."""
    if len(q_shape) < 3 or len(k_shape) < 3 or k_shape[-3] in (q_shape[-3], 1):
        return 1
    h, h_kv = q_shape[-3], k_shape[-3]
    if h_kv == 0 or h_kv > h or h % h_kv:
        raise ValueError(
            f"{names[1]}: expected a KV head count that divides the {h} query heads of {names[0]} on axis -3 "
            f"(GQA/MQA), got {h_kv} heads in shape {tuple(k_shape)}"
        )
    return h // h_kv


# ---------------------------------------------------------------------------------------------
# overflow


def call_arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> list[str]:
    """Names of the arguments of a call that can overflow: arrays, weights, callables and real options."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return []
    return [
        name
        for name, value in bound.arguments.items()
        if value is not None
        and not isinstance(value, (str, bool, np.bool_, int, np.integer))
        and (isinstance(value, (float, np.floating)) or not is_real_number(value))
    ]


class InputOverflow(ValueError):
    """Inputs too large for an operator in its dtype. The outermost checked call (:func:`guarded`) names
    the arguments the caller passed, whatever inner call found the overflow."""

    def __init__(self, names: Sequence[str], dtype: Any, detail: str) -> None:
        self.precision = _precision(dtype)
        self.detail = detail
        super().__init__(
            f"{'/'.join(names) or 'inputs'}: the result is not finite in {self.precision} for these values "
            f"({detail}): an intermediate result overflows (or divides 0 by 0); scale the inputs into a "
            "representable range"
        )


def _precision(dtype: Any) -> str:
    text = str(dtype)
    return text.removeprefix("torch.") if isinstance(dtype, str) or text.startswith("torch.") else np.dtype(dtype).name


def overflow_error(names: Sequence[str], dtype: Any, detail: str) -> InputOverflow:
    return InputOverflow(names, dtype, detail)


#: Set while a checked operator runs: operators it calls leave the checks to it, so an overflow is
#: reported under the names of the arguments the caller passed, not those of an inner call.
_CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar("attnlab_checking", default=False)

Problem = tuple[Any, str] | None


def guarded(fn: F, *, fp_errors: bool, check: Callable[[Any], Problem] | None = None) -> F:
    """Wrap an operator so that an overflow raises ``ValueError`` naming the arguments of the call.

    ``fp_errors``: run it with NumPy's ``over``/``invalid``/``divide`` floating-point errors raised (unless
    the caller ignores them; a division by zero from finite inputs is a quantity that under- or
    overflowed) and report a ``FloatingPointError``; ``check(out)`` returns ``(dtype, detail)`` for an
    output that must not be returned. Only the outermost checked call reports.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if _CHECKING.get():
            return fn(*args, **kwargs)
        current = np.geterr()
        over: Any = "ignore" if current["over"] == "ignore" or not fp_errors else "raise"
        invalid: Any = "ignore" if current["invalid"] == "ignore" or not fp_errors else "raise"
        divide: Any = "ignore" if current["divide"] == "ignore" or not fp_errors else "raise"
        token = _CHECKING.set(True)
        try:
            with np.errstate(over=over, invalid=invalid, divide=divide) if fp_errors else contextlib.nullcontext():
                out = fn(*args, **kwargs)
        except FloatingPointError as exc:
            raise overflow_error(call_arguments(signature, args, kwargs), compute_dtype(), str(exc)) from None
        except InputOverflow as exc:  # found by an inner call or a bound check: name this call's arguments
            raise overflow_error(call_arguments(signature, args, kwargs), exc.precision, exc.detail) from None
        finally:
            _CHECKING.reset(token)
        problem = check(out) if check is not None and current["invalid"] != "ignore" else None
        if problem is not None:
            raise overflow_error(call_arguments(signature, args, kwargs), *problem)
        return out

    checked.overflow_checked = True  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


def is_checked(fn: Any) -> bool:
    """Whether ``fn`` reports overflow by name (wrapped by :func:`guarded` or one of its forms)."""
    return bool(getattr(fn, "overflow_checked", False))


def _infinite_output(out: Any) -> Problem:
    first = out[0] if isinstance(out, tuple) else out  # later parts (a row lse) may be -inf by design
    if isinstance(first, np.ndarray) and first.dtype.kind in "fc" and np.isinf(first).any():
        return first.dtype, "the output is infinite"
    return None


def _non_finite(parts: Any) -> Problem:
    for part in parts:
        if isinstance(part, np.ndarray) and part.size and not np.isfinite(part).all():
            return part.dtype, "the output is not finite"
    return None


def overflow_checked(fn: F) -> F:
    """Turn a floating-point overflow inside a NumPy operator into a named error.

    The operator runs with NumPy's ``over`` and ``invalid`` floating-point errors raised (where the caller
    has not asked to ignore them), and a ``FloatingPointError`` becomes ``ValueError`` naming the
    arguments of the call: finite inputs only overflow when they are too large for the compute dtype
    (``q = k = 1e160`` makes ``q·k`` overflow float64). An infinite output (from the few NumPy routines
    that set no flag, such as ``einsum``) is reported the same way, so no ±Inf or NaN is ever returned
    for finite inputs.
    """
    return guarded(fn, fp_errors=True, check=_infinite_output)


def check_logits(q_max: float, k_max: float, d: int, sigma: float, dtype: Any) -> None:
    """The logits ``σ q·k`` must stay finite: ``σ·d·max|q|·max|k|`` below the overflow threshold (fast
    kernels set no floating-point flag, and a row of logits overflowed to ``-inf`` would pass for an
    empty row)."""
    check_magnitude(sigma * d * q_max * k_max, dtype, "a logit σ q·k")


def check_magnitude(bound: float, dtype: Any, what: str) -> None:
    """Reject inputs for which ``bound`` on an intermediate (``σ·d·max|q|·max|k1|·max|k2|`` for the
    logits of a triple product, say) reaches the overflow threshold of ``dtype``. Called inside a
    checked operator, whose wrapper names the arguments of the call in the error."""
    limit = largest_finite(dtype) / 16
    if not bound < limit:
        raise overflow_error((), dtype, f"{what} can reach {bound:.3g}")


def largest_finite(dtype: Any) -> float:
    """The largest finite value of a float dtype, named as NumPy or torch names it (``bfloat16`` too)."""
    name = str(dtype).removeprefix("torch.")
    if name == "bfloat16":
        return 3.3895313892515355e38
    return float(np.finfo(np.dtype(name if isinstance(dtype, str) or "torch." in str(dtype) else dtype)).max)


def max_abs(x: Any) -> float:
    """``max |x|`` as a Python float (0 for an empty array)."""
    return float(np.max(np.abs(x))) if np.size(x) else 0.0


def numba_checked(fn: F) -> F:
    """:func:`overflow_checked` for a Numba path, which also checks its output: the kernels set no
    floating-point flags, so a NaN or Inf they produce from finite inputs (an overflow in the path's
    dtype) is caught here. Of a tuple output only the first array is checked (a row lse may be -inf)."""
    return guarded(fn, fp_errors=True, check=lambda out: _non_finite((out[0] if isinstance(out, tuple) else out,)))


def gradients_checked(fn: F) -> F:
    """:func:`numba_checked` for a VJP: every gradient it returns must be finite."""
    return guarded(fn, fp_errors=True, check=lambda out: _non_finite(out if isinstance(out, tuple) else (out,)))
