"""``attnlab verify`` / ``attnlab figure`` (theory.cli) through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from attnlab.papers import Source
from attnlab.theory import cli as theory_cli
from attnlab.theory import registry
from attnlab.theory.registry import CheckResult, Claim, Mutant


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    theory_cli.register(application)
    return application


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _observing(observed: str):
    """A check that reports ``observed``, or the opposite verdict when run with ``flip=True``."""

    def check(*, flip: bool = False) -> CheckResult:
        verdict = ("falsified" if observed == "holds" else "holds") if flip else observed
        return CheckResult(verdict, f"observed {verdict}", {"value": float("inf")})

    return check


FLIP = Mutant("flip", "reports the other verdict", {"flip": True})


def _claim(claim_id: str, family: str, *, recorded: str = "holds", observed: str = "holds", **extra) -> Claim:
    reason = "" if recorded == "holds" else "planted for a test"
    return Claim(
        id=claim_id,
        family=family,
        statement="x = x",
        kind=extra.pop("kind", "derived"),
        source=Source(None),
        verdict=recorded,
        reason=reason,
        condition="planted condition" if recorded == "refined" else "",
        quick=extra.pop("quick", _observing(observed)),
        mutants=extra.pop("mutants", (FLIP,)),
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
    # Every row says whose statement its verdict judges (kind, source, judges; reads/condition when set).
    assert set(row) == {
        "id", "family", "kind", "source", "judges", "reads", "condition",
        "verdict", "observed", "consistent", "evidence", "data", "seconds",
    }  # fmt: skip
    assert row["consistent"] is True and row["observed"] == row["verdict"] == "holds"
    assert row["kind"] == "paper" and "2510.23012" in row["source"] and "abstract-level" in row["source"]
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
    def broken(*, flip: bool = False) -> CheckResult:
        raise ZeroDivisionError("planted failure")

    fake_registry(_claim("alpha.boom", "alpha", quick=broken))
    result = runner.invoke(app, ["verify", "--json"])
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)
    assert row["observed"] == "error"
    assert "ZeroDivisionError: planted failure" in row["evidence"]


def test_verify_full_runs_the_full_check(app, runner, fake_registry) -> None:
    def full(*, flip: bool = False) -> CheckResult:
        return CheckResult("falsified", "only the full sweep finds it")

    fake_registry(_claim("alpha.depth", "alpha", full=full))
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


def test_verify_table_shows_the_kind_of_every_claim(app, runner, fake_registry) -> None:
    fake_registry(_claim("alpha.lemma", "alpha"))
    table = runner.invoke(app, ["verify"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "kind" in table.stdout and "derived" in table.stdout


# --- mutants ----------------------------------------------------------------------------------------


def test_verify_mutants_reports_killed_and_exits_0(app, runner, fake_registry) -> None:
    fake_registry(_claim("alpha.one", "alpha"), _claim("beta.one", "beta", recorded="refined", observed="refined"))
    result = runner.invoke(app, ["verify", "--mutants", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["id"], r["mutant"], r["status"], r["killed"]) for r in rows] == [
        ("alpha.one", "flip", "killed", True),
        ("beta.one", "flip", "killed", True),
    ]
    assert rows[0]["observed"] == "falsified" and rows[0]["verdict"] == "holds" and rows[0]["kind"] == "derived"
    table = runner.invoke(app, ["verify", "--mutants", "--family", "beta"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "1 mutants of 1 claims, 1 killed, 0 not" in table.stdout


def test_verify_mutants_exits_1_on_a_survivor_and_on_a_crash(app, runner, fake_registry) -> None:
    harmless = Mutant("harmless", "changes nothing the check looks at", {"flip": False})

    def crashing(*, flip: bool = False) -> CheckResult:
        if flip:
            raise RuntimeError("plumbing broke")
        return CheckResult("holds", "fine")

    def asserting(*, flip: bool = False) -> CheckResult:
        assert not flip, "instrument failed its calibration"
        return CheckResult("holds", "fine")

    fake_registry(
        _claim("alpha.survivor", "alpha", mutants=(FLIP, harmless)),
        _claim("alpha.crash", "alpha", quick=crashing),
        _claim("alpha.assert", "alpha", quick=asserting),
    )
    result = runner.invoke(app, ["verify", "--mutants", "--json"])
    assert result.exit_code == 1
    status = {(r["id"], r["mutant"]): r["status"] for r in json.loads(result.stdout)}
    assert status == {
        ("alpha.survivor", "flip"): "killed",
        ("alpha.survivor", "harmless"): "survived",
        ("alpha.crash", "flip"): "crashed",
        ("alpha.assert", "flip"): "killed_by_assertion",
    }
    table = runner.invoke(app, ["verify", "--mutants", "--claim", "alpha.survivor"], env={"COLUMNS": "200"})
    assert table.exit_code == 1 and "alpha.survivor:harmless" in table.stdout


def test_verify_mutants_of_a_real_claim(app, runner) -> None:
    result = runner.invoke(app, ["verify", "--mutants", "--claim", "laser.lwse.global_shift", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["mutant"] for r in rows} >= {"row_shift_instead", "no_band_probe"}
    assert all(r["killed"] for r in rows)


# --- the registry's own rules ----------------------------------------------------------------------


def test_claim_records_are_validated() -> None:
    base = {"id": "alpha.x", "family": "alpha", "statement": "s", "quick": _observing("holds"), "mutants": (FLIP,)}
    with pytest.raises(ValueError, match="mutants"):
        Claim(**{**base, "mutants": ()}, kind="derived", source=Source(None), verdict="holds")
    with pytest.raises(ValueError, match="condition"):
        Claim(**base, kind="derived", source=Source(None), verdict="refined", reason="r")
    with pytest.raises(ValueError, match="reads"):
        Claim(**base, kind="reading", source=Source(None), verdict="holds")
    with pytest.raises(ValueError, match="paper"):
        Claim(**base, kind="paper", source=Source(None), verdict="holds")
    with pytest.raises(ValueError, match="does not accept"):
        Claim(**{**base, "mutants": (Mutant("typo", "d", {"flpi": True}),)}, kind="derived", source=Source(None),
              verdict="holds")  # fmt: skip
    with pytest.raises(TypeError, match="Source"):
        Claim(**base, kind="derived", source="a string", verdict="holds")
    with pytest.raises(ValueError, match="kind"):
        Claim(**base, kind="lemma", source=Source(None), verdict="holds")


def test_run_mutant_classifies_outcomes() -> None:
    claim = _claim("alpha.x", "alpha")
    outcome = registry.run_mutant(claim, FLIP)
    assert outcome.killed and outcome.status == "killed" and outcome.observed == "falsified"
    assert registry.run(claim, overrides={"flip": True}).result.verdict == "falsified"
    assert [o.killed for o in registry.run_mutants(claim)] == [True]
