"""The `attnlab forms` verb lists every declared form; every verb has help."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from attnlab import cli
from attnlab.forms import all_forms


def _app():
    return cli.build_app()


def test_forms_lists_every_form_with_status_and_counts() -> None:
    result = CliRunner().invoke(_app(), ["forms"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for form in all_forms():
        row = next(line for line in result.output.splitlines() if line.strip("│ ").startswith(form.name + " "))
        assert form.status in row and form.reference.__name__ in row
        assert f" {len(form.invariants)} " in row and f" {len(form.bad_inputs())} " in row


def test_forms_json_carries_every_declaration_in_catalogue_order() -> None:
    result = CliRunner().invoke(_app(), ["forms", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    forms = all_forms()
    assert [r["name"] for r in records] == [f.name for f in forms]
    for record, form in zip(records, forms):
        assert [i["name"] for i in record["invariants"]] == [i.name for i in form.invariants]
        assert [p["fn"] for p in record["fast_paths"]] == [p.fn for p in form.fast_paths]
        assert record["bad_inputs"] == len(form.bad_inputs()) and record["status"] == form.status
        for path, declared in zip(record["fast_paths"], form.fast_paths):
            assert path["tolerance"]["k"] == declared.tolerance.k
            assert path["tolerance"]["floors"] == {d: declared.tolerance.floor(d) for d in declared.dtypes}


@pytest.mark.parametrize("name", ["softmax", "lla"])
def test_forms_name_shows_one_form_in_full(name: str) -> None:
    form = next(f for f in all_forms() if f.name == name)
    result = CliRunner().invoke(_app(), ["forms", name], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert form.title in result.output and form.source.cite() in result.output
    for inv in form.invariants:
        assert inv.name in result.output
    for path in form.fast_paths:
        assert path.fn in result.output
    other = next(f for f in all_forms() if f.name != name)
    assert not any(line.startswith(f"{other.name}:") for line in result.output.splitlines())


def test_forms_unknown_name_exits_2_and_lists_the_forms() -> None:
    result = CliRunner().invoke(_app(), ["forms", "flash"])
    assert result.exit_code == 2
    assert "unknown form 'flash'" in result.output and "softmax" in result.output


def test_every_verb_has_help() -> None:
    app = _app()
    runner = CliRunner()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {"forms", "check", "bench", "verify", "reproduce"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"{name} --help failed: {result.output}"
        assert "Usage" in result.output
