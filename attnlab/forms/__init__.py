"""The attention forms the lab knows: one declaration module each; ``FORMS`` names them.

Each module ``attnlab.forms.<name>`` defines ``FORM``, a :class:`attnlab.core.Form` holding everything
about that form (reference, brute force, torch oracle, samples, invariants and mutants, bad inputs,
source, status, FLOPs, benchmark cases and fast paths). Generic tests, ``attnlab forms``, ``verify``,
``check``, ``bench`` and the book all read this list; nothing registers itself by import side effect.
Adding a form is adding its declaration module here (with its reference and, optionally, fast paths);
``Form.order`` places it in the catalogue (the section of the lab's operator catalogue).

Importing this package loads neither Numba nor Torch (fast paths and oracles load on first use).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from attnlab.core import Form


def _declaration_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


@cache
def form_names() -> tuple[str, ...]:
    """Every form: the declaration modules of this package, in their declared catalogue order."""
    names = _declaration_modules()
    forms = {name: importlib.import_module(f"{__name__}.{name}").FORM for name in names}
    return tuple(sorted(names, key=lambda name: (forms[name].order, name)))


@cache
def get_form(name: str) -> Form:
    """The declaration of form ``name``."""
    if name not in _declaration_modules():
        raise KeyError(f"form: no form {name!r}; known forms: {', '.join(form_names())}")
    form = importlib.import_module(f"attnlab.forms.{name}").FORM
    if not isinstance(form, Form) or form.name != name:
        raise TypeError(f"attnlab.forms.{name}.FORM: expected a Form named {name!r}")
    return form


def all_forms() -> list[Form]:
    """Every declared form, in catalogue order."""
    return [get_form(name) for name in form_names()]


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "FORMS":  # the names, computed on first use (importing this package loads no declaration)
        return form_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FORMS", "all_forms", "form_names", "get_form"]
