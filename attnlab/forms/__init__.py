"""The attention forms the lab knows: :data:`FORMS` names them, one declaration module each.

Each module ``attnlab.forms.<name>`` defines ``FORM``, a :class:`attnlab.core.Form` holding everything
about that form (reference, brute force, torch oracle, samples, invariants and mutants, bad inputs,
source, status, FLOPs, benchmark cases and fast paths). Generic tests, ``attnlab forms``, ``verify``,
``check``, ``bench`` and the book all read this list; nothing registers itself by import side effect.

Importing this package loads neither Numba nor Torch (fast paths and oracles load on first use).
"""

from __future__ import annotations

import importlib
from functools import cache

from attnlab.core import Form

#: Every form, in the order tables list them. Adding a form: a reference module, a declaration module
#: here, its name below, and optionally fast-path modules.
FORMS: tuple[str, ...] = (
    "softmax",
    "linear",
    "laser",
    "tensor",
    "simplicial",
    "differential",
    "hamming",
    "mla",
    "interaction",
    "moh",
    "sqa",
    "diff_v2",
    "gda",
    "agent",
    "flow",
    "softplus",
    "affine_scaled",
    "gaam",
    "lla",
    "infsa",
)


@cache
def get_form(name: str) -> Form:
    """The declaration of form ``name``."""
    if name not in FORMS:
        raise KeyError(f"form: no form {name!r}; known forms: {', '.join(FORMS)}")
    form = importlib.import_module(f"attnlab.forms.{name}").FORM
    if not isinstance(form, Form) or form.name != name:
        raise TypeError(f"attnlab.forms.{name}.FORM: expected a Form named {name!r}")
    return form


def all_forms() -> list[Form]:
    """Every declared form, in :data:`FORMS` order."""
    return [get_form(name) for name in FORMS]


__all__ = ["FORMS", "all_forms", "get_form"]
