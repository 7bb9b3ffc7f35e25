"""Bookkeeping of the bad-input fuzzer (``test_fuzz.py``): calls per path and outcomes per class.

Every fuzzed call is recorded in a session-wide log; the terminal summary prints the number of calls per
path (and any outcome other than ``ok``), and the same numbers are written as JSON to
``fuzz_calls.json`` under the pytest base temporary directory (or to ``$ATTNLAB_FUZZ_LOG`` when set).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest

FUZZ_LOG = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FUZZ_LOG] = {"calls": Counter(), "outcomes": defaultdict(Counter), "examples": {}, "dir": None}


@pytest.fixture(scope="session")
def fuzz_log(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> dict:
    log = pytestconfig.stash[FUZZ_LOG]
    log["dir"] = tmp_path_factory.getbasetemp()
    return log


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
    out = Path(target) if target else (Path(log["dir"]) / "fuzz_calls.json" if log["dir"] else None)
    if out is not None:
        out.write_text(json.dumps(record, indent=1, sort_keys=True))
        write(f"fuzzer log written to {out}")
