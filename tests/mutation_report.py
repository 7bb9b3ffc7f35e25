"""Summarise a ``mutmut`` run of ``make mutation``: killed, survived and untested mutants per module,
and the score.

The score is detected / (all mutants − listed equivalents), where a mutant is detected when a test fails
on it or when the tests do not finish within mutmut's time limit (a mutant that makes an operator loop
forever; these are listed with their diffs so each can be checked); a mutant no test reaches, or one not
run, counts as surviving.
An equivalent mutant (one no test could kill, because the program means the same) is listed in
``tests/mutation_equivalents.toml`` with the reason; a listed mutant that no longer exists or that the
run killed is reported as stale, so the list cannot silently hide a real survivor.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.toml")
#: The score `make mutation` must reach (issue: at least 90 % of reference mutants killed).
REQUIRED_SCORE = 0.90


def _results() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
    results = {}
    for line in out.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name.startswith("attnlab."):
            results[name] = status
    return results


def _diff(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True)
    changed = [line for line in out.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    return "\n".join(changed)


def _equivalents() -> dict[str, dict[str, str]]:
    """Listed equivalent mutants: name -> {"diff": the mutant's -/+ lines when listed, "reason": why}."""
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text())
    return {entry["mutant"]: entry for entry in data.get("equivalent", [])}


def main() -> int:
    results = _results()
    equivalents = _equivalents()
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    not_killed = []
    # an entry is stale when its mutant is gone, was killed, or is now another mutation (an edit above it
    # renumbers a function's mutants): it then counts as what it is, and the report fails until it is fixed
    stale = [
        name
        for name, entry in equivalents.items()
        if results.get(name, "missing") in ("killed", "missing") or _diff(name) != entry["diff"]
    ]
    for name, status in results.items():
        module = name.split(".x_")[0].split(".xǁ")[0]
        if status != "killed" and name in equivalents and name not in stale:
            status = "equivalent"
        counts[module][status] += 1
        if status not in ("killed", "equivalent"):
            not_killed.append({"mutant": name, "status": status, "diff": _diff(name)})
    timeouts = [entry for entry in not_killed if entry["status"] == "timeout"]
    for entry in timeouts:
        print(f"timeout (counted as detected): {entry['mutant']}\n{entry['diff']}")
    total = len(results)
    equivalent = sum(c["equivalent"] for c in counts.values())
    killed = sum(c["killed"] for c in counts.values())
    detected = killed + len(timeouts)
    for module, c in sorted(counts.items()):
        print(f"{module:40s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    score = detected / (total - equivalent) if total > equivalent else 0.0
    print(
        f"score: {detected}/{total - equivalent} mutants detected = {100 * score:.1f} % "
        f"({killed} killed, {len(timeouts)} timed out; {equivalent} equivalent listed)"
    )
    for name in stale:
        print(f"stale equivalent (killed, gone or renumbered; fix it in {EQUIVALENTS.name}): {name}")
    with open("mutation-report.json", "w") as fh:
        report = {
            "killed": killed,
            "timed_out": len(timeouts),
            "total": total,
            "equivalent": equivalent,
            "score": score,
            "stale_equivalents": stale,
            "not_killed": not_killed,
        }
        json.dump(report, fh, indent=1, ensure_ascii=False)
    return 0 if score >= REQUIRED_SCORE and not stale else 1


if __name__ == "__main__":
    raise SystemExit(main())
