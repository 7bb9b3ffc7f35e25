"""Layout: every folder with an ``__init__.py`` under the mapped roots imports as ``attnlab.*``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ["attnlab", "reference", "theory", "synthetic", "fastpath", "proofs_checks"]


def _packages() -> list[str]:
    names = []
    for root in ROOTS:
        base = "attnlab" if root == "attnlab" else f"attnlab.{root}"
        for init in sorted((ROOT / root).rglob("__init__.py")):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / root)
            names.append(".".join([base, *rel.parts]))
    return names


def test_mapped_roots_are_discovered() -> None:
    packages = _packages()
    for expected in (
        "attnlab",
        "attnlab.reference",
        "attnlab.theory",
        "attnlab.synthetic",
        "attnlab.fastpath",
        "attnlab.fastpath.numba",
        "attnlab.fastpath.torch",
        "attnlab.proofs_checks",
    ):
        assert expected in packages


@pytest.mark.parametrize("package", _packages())
def test_package_imports_from_its_folder(package: str) -> None:
    module = importlib.import_module(package)
    folder = package.split(".")[1] if package != "attnlab" else "attnlab"
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(ROOT / (folder if folder in ROOTS else "attnlab"))


def test_python_dash_m_attnlab_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "attnlab", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "forms" in proc.stdout
