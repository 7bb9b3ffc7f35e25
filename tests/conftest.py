"""Shared pytest configuration: thread settings and the hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE``, default ``ci`` when ``CI`` is set, else ``dev``):

* ``ci`` — a fixed seed, so a red CI run is reproducible, and the committed database of failures
  found earlier (``tests/hypothesis-db``, read-only) replayed first;
* ``dev`` — explores new examples each run, keeps failures in the local ``.hypothesis/`` database and
  replays the committed ones too;
* ``thorough`` — forty times as many examples, for a deeper hunt.

No test sets its own example counts: the profile decides.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    _CONFIG.append(config)


_CONFIG: list = []


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    if report.when != "call" or not _CONFIG:
        return
    for name, value in report.user_properties:
        if name == "invariant_samples":
            form, invariant, kind, count = value
            _CONFIG[-1].invariant_samples.setdefault((form, invariant), {})[kind] = count


def pytest_terminal_summary(terminalreporter, config) -> None:  # type: ignore[no-untyped-def]
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
    import json

    rows = [{"form": form, "invariant": inv, **c} for (form, inv), c in sorted(counts.items())]
    report.write_text(json.dumps({"profile": PROFILE, "invariants": rows}, indent=1))
    terminalreporter.write_line(f"per invariant: {report}")
