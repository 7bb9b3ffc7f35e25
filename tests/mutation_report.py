"""Summarise a ``mutmut`` run of ``make mutation``: killed, survived and untested mutants per module,
and the score (killed / all mutants; a mutant no test reaches counts as surviving)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors = []
    for line in out.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name.startswith("attnlab."):
            continue
        module = name.split(".x_")[0].split(".xǁ")[0]
        counts[module][status] += 1
        if status != "killed":
            survivors.append(f"{name}: {status}")
    total = sum(sum(c.values()) for c in counts.values())
    killed = sum(c["killed"] for c in counts.values())
    for module, c in sorted(counts.items()):
        print(f"{module:40s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    score = killed / total if total else 0.0
    print(f"score: {killed}/{total} mutants killed = {100 * score:.1f} %")
    with open("mutation-report.json", "w") as fh:
        json.dump({"killed": killed, "total": total, "score": score, "not_killed": survivors}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
