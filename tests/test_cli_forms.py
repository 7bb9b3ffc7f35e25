"""The `attnlab forms` verb lists every declared form; every verb has help."""

from __future__ import annotations

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


def test_every_verb_has_help() -> None:
    app = _app()
    runner = CliRunner()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {"forms", "check", "bench", "verify", "reproduce"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"{name} --help failed: {result.output}"
        assert "Usage" in result.output
