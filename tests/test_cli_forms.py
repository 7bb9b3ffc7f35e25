"""The `attnlab forms` verb lists the registered forms."""

from __future__ import annotations

from typer.testing import CliRunner

from attnlab import cli
from attnlab.registry import forms


def _app():
    return cli.build_app()


def test_forms_lists_the_nine_core_forms_with_invariant_counts() -> None:
    result = CliRunner().invoke(_app(), ["forms"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for info in forms():
        assert info.name in result.output
        assert info.reference.__name__ in result.output


def test_every_verb_has_help() -> None:
    app = _app()
    runner = CliRunner()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert "forms" in names
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"{name} --help failed: {result.output}"
        assert "Usage" in result.output
