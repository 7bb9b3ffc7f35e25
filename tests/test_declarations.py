"""The declaration list is complete: every form, fast path, VJP, peer and benchmark case lives in a
declaration, and nothing outside a form's own files keeps a table naming it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab.core import load
from attnlab.forms import FORMS, all_forms

ROOT = Path(__file__).resolve().parents[1]
FORM_LIST = all_forms()


def _referenced_modules() -> set[str]:
    refs: set[str] = set()
    for form in FORM_LIST:
        refs.add(form.module.__name__)
        for path in form.fast_paths:
            refs.add(path.fn.partition(":")[0])
            if path.vjp:
                refs.add(path.vjp.partition(":")[0])
        refs |= {ref.partition(":")[0] for ref in (*form.peers.values(), *form.scaling.values())}
    return refs


def _public_modules(folder: str, package: str) -> list[str]:
    return sorted(f"{package}.{p.stem}" for p in (ROOT / folder).glob("*.py") if not p.stem.startswith("_"))


def test_the_forms_are_the_declaration_modules_in_catalogue_order() -> None:
    modules = {m.rpartition(".")[2] for m in _public_modules("attnlab/forms", "attnlab.forms")}
    assert set(FORMS) == modules and len(FORMS) == len(modules)
    assert [f.name for f in FORM_LIST] == list(FORMS)
    assert [f.order for f in FORM_LIST] == sorted(f.order for f in FORM_LIST)


@pytest.mark.parametrize(
    ("folder", "package"),
    [
        ("fastpath/numba", "attnlab.fastpath.numba"),
        ("fastpath/numba/backward", "attnlab.fastpath.numba.backward"),
        ("fastpath/torch", "attnlab.fastpath.torch"),
        ("reference", "attnlab.reference"),
    ],
)
def test_every_fast_path_and_reference_module_belongs_to_a_declaration(folder: str, package: str) -> None:
    referenced = _referenced_modules()
    unknown = [m for m in _public_modules(folder, package) if m not in referenced]
    assert not unknown, f"modules no form declares (as module, fast path, vjp, peer or scaling): {unknown}"


def test_every_declared_reference_resolves() -> None:
    for form in FORM_LIST:
        for path in form.fast_paths:
            assert callable(path.load()), f"{form.name}/{path.name}: {path.fn}"
            if path.vjp:
                assert callable(path.load_vjp()), f"{form.name}/{path.name}: {path.vjp}"
        for ref in (*form.peers.values(), *form.scaling.values()):
            assert callable(load(ref)), ref


def test_every_form_has_benchmark_cases_for_the_cpu_modes() -> None:
    for form in FORM_LIST:
        modes = {mode for case in form.bench for mode in case.modes}
        assert {"tiny", "quick", "full"} <= modes, f"{form.name}: bench modes {sorted(modes)}"


def _form_files(form) -> set[str]:
    files = {Path(importlib.import_module(form.module.__name__).__file__).resolve()}
    files.add((ROOT / "attnlab" / "forms" / f"{form.name}.py").resolve())
    for ref in (p.fn for p in form.fast_paths):
        files.add(Path(importlib.import_module(ref.partition(":")[0]).__file__).resolve())
    for path in form.fast_paths:
        if path.vjp:
            files.add(Path(importlib.import_module(path.vjp.partition(":")[0]).__file__).resolve())
    return files


def _string_constants(path: Path) -> set[str]:
    """String literals of a module, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    }


def test_no_module_outside_a_form_keeps_a_table_of_form_names() -> None:
    """Outside a form's own files and the one list in FORMS, no module names two forms in string literals
    (a table). One name alone may be a word with another meaning (``link="softmax"``); theory/ and
    synthetic/ are other registries (claim families, tasks) and are not scanned."""
    sources = [p for folder in ("attnlab", "fastpath", "reference") for p in (ROOT / folder).rglob("*.py")]
    listing = (ROOT / "attnlab" / "forms" / "__init__.py").resolve()
    own_files = {form.name: _form_files(form) for form in FORM_LIST}
    offenders = []
    for path in sources:
        if path.resolve() == listing:
            continue
        literals = _string_constants(path)
        named = sorted(f for f in own_files if f in literals and path.resolve() not in own_files[f])
        if len(named) >= 2:
            offenders.append(f"{path.relative_to(ROOT)}: {named}")
    assert not offenders, offenders


def test_the_word_hamming_appears_only_in_the_hamming_forms_files() -> None:
    form = next(f for f in FORM_LIST if f.name == "hamming")
    allowed = _form_files(form)
    mentions = [
        p.relative_to(ROOT)
        for folder in ("attnlab", "fastpath", "reference", "theory", "synthetic", "proofs_checks", "bench")
        for p in (ROOT / folder).rglob("*.py")
        if "hamming" in p.read_text().lower() and p.resolve() not in allowed
    ]
    assert not mentions, mentions


def test_importing_reference_theory_or_forms_loads_neither_numba_nor_torch() -> None:
    code = (
        "import sys, attnlab.reference, attnlab.theory, attnlab.forms, attnlab.core\n"
        "from attnlab.forms import all_forms\n"
        "all_forms()\n"
        "from attnlab.theory.registry import claims\n"
        "claims('laser')\n"
        "loaded = [m for m in ('torch', 'numba') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"
