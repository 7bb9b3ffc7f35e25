"""Exact float64 NumPy reference operators, one module per attention family.

Arrays are laid out ``(..., n, d)`` (SDPA layout); options are keyword-only. Every operator validates
its inputs and raises ``TypeError``/``ValueError`` naming the argument at fault. Import an operator from
its family module (``from attnlab.reference.softmax import softmax_attention``) or from this package,
which finds it in the family modules on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def _family_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    for family in _family_modules():
        module = importlib.import_module(f"{__name__}.{family}")
        value = getattr(module, name, None)
        if value is not None and getattr(value, "__module__", None) == module.__name__ and not name.startswith("_"):
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no operator {name!r}; see its family modules {_family_modules()}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_family_modules()))
