"""Bookkeeping of the bad-input fuzzer (``test_fuzz.py``): calls per path and outcomes per class.

Every fuzzed call is recorded in a session-wide log; the terminal summary prints the number of calls per
path (and any outcome other than ``ok``), and the same numbers are written as JSON to
``build/fuzz-calls.json`` (or to ``$ATTNLAB_FUZZ_LOG`` when set).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

FUZZ_LOG = pytest.StashKey[dict]()
_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FUZZ_LOG] = {"calls": Counter(), "outcomes": defaultdict(Counter), "examples": {}}
    _CONFIG.append(config)


@pytest.fixture
def fuzz_log(request: pytest.FixtureRequest) -> Iterator[dict]:
    """One test's record of fuzzed calls, attached to its report, so the session log (merged from the
    reports in :func:`pytest_runtest_logreport`) is complete under pytest-xdist too."""
    log: dict = {"calls": Counter(), "outcomes": defaultdict(Counter), "examples": {}}
    yield log
    record = {
        "calls": dict(log["calls"]),
        "outcomes": {path: dict(counts) for path, counts in log["outcomes"].items()},
        "examples": log["examples"],
    }
    request.node.user_properties.append(("fuzz_calls", record))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown" or not _CONFIG:
        return
    session = _CONFIG[-1].stash[FUZZ_LOG]
    for name, record in report.user_properties:
        if name != "fuzz_calls":
            continue
        session["calls"].update(record["calls"])
        for path, counts in record["outcomes"].items():
            session["outcomes"][path].update(counts)
        for key, examples in record["examples"].items():
            session["examples"].setdefault(key, []).extend(examples)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    log = config.stash.get(FUZZ_LOG, None)
    if not log or not log["calls"]:
        return
    calls: Counter = log["calls"]
    outcomes = log["outcomes"]
    write = terminalreporter.write_line
    terminalreporter.section("bad-input fuzzer: calls per path")
    for path in sorted(calls):
        bad = {k: v for k, v in sorted(outcomes[path].items()) if k != "ok"}
        write(f"{path:32s} {calls[path]:6d}" + (f"   {bad}" if bad else ""))
    totals: Counter = Counter()
    for counts in outcomes.values():
        totals.update(counts)
    write(f"{'total':32s} {sum(calls.values()):6d}   {dict(sorted(totals.items()))}")
    record = {
        "calls": dict(sorted(calls.items())),
        "outcomes": {path: dict(counts) for path, counts in sorted(outcomes.items())},
        "totals": dict(sorted(totals.items())),
        "examples": log["examples"],
    }
    target = os.environ.get("ATTNLAB_FUZZ_LOG")
    out = Path(target) if target else Path(config.rootpath) / "build" / "fuzz-calls.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True))
    write(f"fuzzer log written to {out}")
