"""``attnlab.reference`` finds an operator in its family modules on first use (lazily, so importing the
package loads no family module and neither Numba nor Torch)."""

from __future__ import annotations

import pkgutil

import pytest

import attnlab.reference as reference
from attnlab.reference import laser, softmax


@pytest.mark.parametrize(("name", "module"), [("softmax_attention", softmax), ("laser_attention", laser)])
def test_an_operator_resolves_to_its_family_modules_object(name: str, module) -> None:
    assert reference.__getattr__(name) is getattr(module, name)
    assert getattr(reference, name) is getattr(module, name)


def test_unknown_names_raise_attribute_error_naming_them() -> None:
    with pytest.raises(AttributeError, match=r"has no operator 'flash_attention'; see its family modules \["):
        reference.__getattr__("flash_attention")
    with pytest.raises(AttributeError):
        reference.__getattr__("__wrapped__")


def test_private_and_imported_names_are_not_exported() -> None:
    # softmax.py imports numpy as np and defines private helpers; neither is an operator of the package.
    for name in ("np", "_prepare_qk", "annotations"):
        with pytest.raises(AttributeError, match=repr(name)):
            reference.__getattr__(name)


def test_dir_lists_every_family_module() -> None:
    families = {m.name for m in pkgutil.iter_modules(reference.__path__) if not m.name.startswith("_")}
    assert {"softmax", "laser", "hamming"} <= families
    assert families <= set(dir(reference))
    # and the package's own names, as a module's dir() would list them
    assert {"__getattr__", "_family_modules", "__name__"} <= set(dir(reference))
    assert reference._family_modules() == sorted(families)
