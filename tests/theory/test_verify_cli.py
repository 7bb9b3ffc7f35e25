"""``attnlab verify`` / ``attnlab figure`` (theory.cli) through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from attnlab.theory import cli as theory_cli
from attnlab.theory import registry
from attnlab.theory.registry import CheckResult, Claim


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    theory_cli.register(application)
    return application


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _claim(claim_id: str, family: str, *, recorded: str = "holds", observed: str = "holds", **extra) -> Claim:
    reason = "" if recorded == "holds" else "planted for a test"
    return Claim(
        id=claim_id,
        family=family,
        statement="x = x",
        source="test",
        verdict=recorded,
        reason=reason,
        quick=extra.pop("quick", lambda: CheckResult(observed, f"observed {observed}", {"value": float("inf")})),
        **extra,
    )


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the registry's contents with planted claims (no family modules are imported)."""
    store: dict[str, Claim] = {}
    monkeypatch.setattr(registry, "_CLAIMS", store)
    monkeypatch.setattr(registry, "FAMILY_MODULES", ())
    monkeypatch.setattr(registry, "FAMILIES", ("alpha", "beta", "empty"))

    def add(*claims: Claim) -> None:
        for claim in claims:
            store[claim.id] = claim

    return add


def test_plugin_is_listed_in_the_attnlab_cli() -> None:
    from attnlab import cli

    assert "attnlab.theory.cli" in cli._PLUGINS
    result = CliRunner().invoke(cli.build_app(), ["verify", "--claim", "laser.gradient.larger", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["observed"] == "refined"


def test_verify_prints_a_table_for_a_real_claim(app, runner) -> None:
    result = runner.invoke(app, ["verify", "--claim", "laser.gradient.larger"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "laser.gradient.larger" in result.stdout
    assert "refined" in result.stdout
    assert "1 consistent" in result.stdout


def test_verify_json_is_the_only_stdout(app, runner) -> None:
    result = runner.invoke(app, ["verify", "--claim", "softmax.lipschitz.l1_linf_attainment", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert set(row) == {"id", "family", "verdict", "observed", "consistent", "evidence", "data", "seconds"}
    assert row["consistent"] is True and row["observed"] == row["verdict"] == "holds"
    assert row["data"]["l1"] == pytest.approx(0.5)


def test_verify_family_filter(app, runner, fake_registry) -> None:
    fake_registry(_claim("alpha.one", "alpha"), _claim("beta.one", "beta"), _claim("beta.two", "beta"))
    result = runner.invoke(app, ["verify", "--family", "beta", "--json"])
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in json.loads(result.stdout)] == ["beta.one", "beta.two"]
    everything = runner.invoke(app, ["verify", "--json"])
    assert [row["id"] for row in json.loads(everything.stdout)] == ["alpha.one", "beta.one", "beta.two"]


def test_verify_exits_1_when_a_recorded_verdict_is_wrong(app, runner, fake_registry) -> None:
    fake_registry(_claim("alpha.ok", "alpha"), _claim("alpha.wrong", "alpha", recorded="holds", observed="falsified"))
    result = runner.invoke(app, ["verify", "--json"])
    assert result.exit_code == 1
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows["alpha.ok"]["consistent"] is True
    assert rows["alpha.wrong"]["consistent"] is False
    assert rows["alpha.wrong"]["observed"] == "falsified"
    assert rows["alpha.ok"]["data"] == {"value": "inf"}  # strict JSON: no Infinity literal
    table = runner.invoke(app, ["verify"], env={"COLUMNS": "200"})
    assert table.exit_code == 1
    assert "alpha.wrong" in table.stdout and "1 not" in table.stdout


def test_verify_reports_a_raising_check_in_its_row(app, runner, fake_registry) -> None:
    def broken() -> CheckResult:
        raise ZeroDivisionError("planted failure")

    fake_registry(_claim("alpha.boom", "alpha", quick=broken))
    result = runner.invoke(app, ["verify", "--json"])
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)
    assert row["observed"] == "error"
    assert "ZeroDivisionError: planted failure" in row["evidence"]


def test_verify_full_runs_the_full_check(app, runner, fake_registry) -> None:
    fake_registry(_claim("alpha.depth", "alpha", full=lambda: CheckResult("falsified", "only the full sweep finds it")))
    assert runner.invoke(app, ["verify"]).exit_code == 0
    result = runner.invoke(app, ["verify", "--full", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["evidence"] == "only the full sweep finds it"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--family", "nope"], "unknown family 'nope'"),
        (["verify", "--claim", "alpha.missing"], "no claim with id 'alpha.missing'"),
        (["verify", "--family", "empty"], "no claims are registered for family 'empty'"),
        (["figure"], "exactly one of"),
        (["figure", "alpha.one", "--all"], "exactly one of"),
        (["figure", "alpha.nofig"], "no figure"),
        (["figure", "alpha.unknown"], "no claim with id"),
    ],
)
def test_bad_requests_exit_2(app, runner, fake_registry, args, message) -> None:
    fake_registry(_claim("alpha.one", "alpha"), _claim("alpha.nofig", "alpha"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_figure_all_writes_a_shared_figure_once(app, runner, fake_registry, tmp_path) -> None:
    calls: list[Path] = []

    def shared(outdir: Path) -> list[Path]:
        calls.append(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / "shared.png"
        path.write_bytes(b"png")
        return [path]

    fake_registry(
        _claim("alpha.a", "alpha", figure=shared), _claim("beta.b", "beta", figure=shared), _claim("beta.c", "beta")
    )
    result = runner.invoke(app, ["figure", "--all", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == [tmp_path]
    assert result.stdout.splitlines() == [str(tmp_path / "shared.png")]


def test_figure_for_a_real_claim_writes_png_svg_json(app, runner, tmp_path) -> None:
    result = runner.invoke(app, ["figure", "laser.crossover.n2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.splitlines()]
    assert sorted(p.suffix for p in written) == [".json", ".png", ".svg"]
    png = next(p for p in written if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert len(data["alpha_star"]) == len(data["delta"])


@pytest.mark.slow
def test_every_softmax_and_laser_figure_renders(app, runner, tmp_path) -> None:
    for family in ("softmax", "laser"):
        result = runner.invoke(app, ["figure", "--all", "--family", family, "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("softmax_jacobian_vs_temperature", "laser_gradient_ratio_heatmap", "laser_gradient_vs_sharpness"):
        assert {f"{stem}.png", f"{stem}.svg", f"{stem}.json"} <= names
