"""The list of equivalent mutants still names the mutations it argues about.

mutmut numbers a function's mutants in order, so an edit to a reference function renumbers them and an
entry can silently come to excuse another mutation. Each entry pins its mutant's diff; this test
regenerates the mutants of the current sources with mutmut's own generator and compares, so a stale entry
fails the default suite, not only a mutation run.
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from pathlib import Path

import libcst as cst
import pytest
from mutmut.mutation.file_mutation import create_mutations, deep_replace, group_by_top_level_node

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = tomllib.loads((ROOT / "tests" / "mutation_equivalents.toml").read_text())["equivalent"]


def _mutant_diffs(module: str) -> dict[str, str]:
    """``{mutant name: its -/+ lines}`` for ``reference/<module>.py``, named as mutmut names them."""
    path = ROOT / "reference" / f"{module}.py"
    tree, mutations, _, _ = create_mutations(str(path), path.read_text())
    classes = {id(node): cls.name.value for cls in tree.body if isinstance(cls, cst.ClassDef) for node in cls.body.body}
    diffs = {}
    for function, found in group_by_top_level_node(mutations).items():
        owner = classes.get(id(function))
        mangled = f"xǁ{owner}ǁ{function.name.value}" if owner else f"x_{function.name.value}"
        original = cst.Module(body=[function]).code.splitlines()
        for index, mutation in enumerate(found, start=1):
            mutated = cst.Module(body=[deep_replace(function, mutation.original_node, mutation.mutated_node)]).code
            lines = difflib.unified_diff(original, mutated.splitlines(), lineterm="", n=0)
            changed = [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            diffs[f"attnlab.reference.{module}.{mangled}__mutmut_{index}"] = "\n".join(changed)
    return diffs


BY_MODULE: dict[str, list[dict]] = defaultdict(list)
for _entry in ENTRIES:
    BY_MODULE[_entry["mutant"].split(".")[2]].append(_entry)


def test_every_entry_names_a_mutant_once_with_its_diff_and_a_reason() -> None:
    names = [entry["mutant"] for entry in ENTRIES]
    assert len(names) == len(set(names))
    for entry in ENTRIES:
        assert set(entry) == {"mutant", "diff", "reason"}, entry["mutant"]
        assert entry["diff"].startswith("-") and "\n+" in entry["diff"], entry["mutant"]
        assert len(entry["reason"]) > 30, entry["mutant"]


@pytest.fixture(scope="module")
def mutmut_config_dir(tmp_path_factory):
    # mutmut's generator reads its configuration from the working directory: the one `make mutation` uses
    here = tmp_path_factory.mktemp("mutmut")
    (here / "pyproject.toml").write_text((ROOT / "tests" / "mutation.toml").read_text())
    previous = os.getcwd()
    os.chdir(here)
    yield here
    os.chdir(previous)


@pytest.mark.parametrize("module", sorted(BY_MODULE))
def test_each_entry_still_has_the_diff_it_was_listed_for(module, mutmut_config_dir) -> None:
    current = _mutant_diffs(module)
    for entry in BY_MODULE[module]:
        assert entry["mutant"] in current, f"{entry['mutant']} no longer exists"
        assert current[entry["mutant"]] == entry["diff"], f"{entry['mutant']} is now another mutation"
