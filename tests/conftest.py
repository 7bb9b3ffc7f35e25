"""Shared pytest configuration: thread settings and the hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE``, default ``ci`` when ``CI`` is set, else ``dev``):

* ``ci`` — a fixed seed, so a red CI run is reproducible, and the committed database of failures
  found earlier (``tests/hypothesis-db``, read-only) replayed first;
* ``dev`` — explores new examples each run, keeps failures in the local ``.hypothesis/`` database and
  replays the committed ones too;
* ``thorough`` — forty times as many examples, for a deeper hunt.

No test sets its own example counts: the profile decides.

The terminal summary reports the samples each invariant checked (``build/invariant-samples.json``) and
the bad-input fuzzer's calls per path and outcomes per class (``build/fuzz-calls.json``, or
``$ATTNLAB_FUZZ_LOG``); both travel as report user properties, so they are complete under pytest-xdist.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

# One thread per library: CI has 2 cores, and BLAS/Numba thread pools oversubscribe them (batched small
# matrix products ran ~10x slower with OpenBLAS's default threads on a loaded 2-core machine).
for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from hypothesis import HealthCheck, settings  # noqa: E402  (thread env vars must be set first)
from hypothesis.database import (  # noqa: E402
    DirectoryBasedExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

#: Failures found earlier and committed: replayed first by every profile.
FOUND = ReadOnlyDatabase(DirectoryBasedExampleDatabase(Path(__file__).parent / "hypothesis-db"))
CI_SEED = 20261201

_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("ci", max_examples=15, database=FOUND, print_blob=True, **_common)
settings.register_profile(
    "dev",
    max_examples=15,
    database=MultiplexedDatabase(DirectoryBasedExampleDatabase(".hypothesis/examples"), FOUND),
    **_common,
)
settings.register_profile(
    "thorough",
    max_examples=600,
    database=MultiplexedDatabase(DirectoryBasedExampleDatabase(".hypothesis/examples"), FOUND),
    **_common,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    if PROFILE == "ci" and getattr(config.option, "hypothesis_seed", None) is None:
        config.option.hypothesis_seed = CI_SEED
    #: ``(form, invariant) -> {"fixed": n, "hypothesis": m}``: samples each invariant checked this run,
    #: reported by tests/forms/test_invariants.py (as user properties, so that pytest-xdist workers'
    #: counts reach the controller) and summarised at the end of the run.
    config.invariant_samples = {}
    #: the bad-input fuzzer's calls per path and outcomes per class (tests/forms/test_fuzz.py)
    config.stash[FUZZ_LOG] = {"calls": Counter(), "outcomes": defaultdict(Counter), "examples": {}}
    _CONFIG.append(config)


_CONFIG: list = []
FUZZ_LOG = pytest.StashKey[dict]()


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


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    # Counts travel as report user properties, so that pytest-xdist workers' numbers reach the controller
    # (which loads only this root conftest).
    if not _CONFIG:
        return
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "invariant_samples":
                form, invariant, kind, count = value
                _CONFIG[-1].invariant_samples.setdefault((form, invariant), {})[kind] = count
    if report.when != "teardown":
        return
    for name, record in report.user_properties:
        if name != "fuzz_calls":
            continue
        session = _CONFIG[-1].stash[FUZZ_LOG]
        session["calls"].update(record["calls"])
        for path, counts in record["outcomes"].items():
            session["outcomes"][path].update(counts)
        for key, examples in record["examples"].items():
            session["examples"].setdefault(key, []).extend(examples)


def pytest_terminal_summary(terminalreporter, config) -> None:  # type: ignore[no-untyped-def]
    _fuzz_summary(terminalreporter, config)
    counts = getattr(config, "invariant_samples", {})
    if not counts:
        return
    by_kind = {kind: [c[kind] for c in counts.values() if kind in c] for kind in ("fixed", "hypothesis")}
    parts = [
        f"{kind}: {len(values)} invariants, min {min(values)}, median {sorted(values)[len(values) // 2]}, "
        f"total {sum(values)} samples"
        for kind, values in by_kind.items()
        if values
    ]
    fewest = sorted(counts.items(), key=lambda item: sum(item[1].values()))[:5]
    terminalreporter.write_sep("-", f"invariant samples checked ({PROFILE} profile)")
    terminalreporter.write_line("; ".join(parts))
    terminalreporter.write_line("fewest: " + ", ".join(f"{form}.{inv} {dict(c)}" for (form, inv), c in fewest))
    report = Path(config.rootpath) / "build" / "invariant-samples.json"
    report.parent.mkdir(exist_ok=True)
    rows = [{"form": form, "invariant": inv, **c} for (form, inv), c in sorted(counts.items())]
    report.write_text(json.dumps({"profile": PROFILE, "invariants": rows}, indent=1))
    terminalreporter.write_line(f"per invariant: {report}")


def _fuzz_summary(terminalreporter, config) -> None:  # type: ignore[no-untyped-def]
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
