"""Prepare ``make mutation`` to resume: keep the results of killed mutants, retry every other one.

mutmut keeps each mutant's result until the function it mutates changes (by hash). A mutant that
survived, had no test, or ended abnormally (a timeout or a signal) may be killed by tests added since,
so its result is cleared and the next run tries it again; killed mutants stay killed. Run in the
mutation directory; with ``--fresh`` every result is cleared.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KILLED_EXIT_CODE = 1


def main(argv: list[str]) -> int:
    fresh = "--fresh" in argv
    kept = cleared = 0
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        for key, code in codes.items():
            if code is None:
                continue
            if code == KILLED_EXIT_CODE and not fresh:
                kept += 1
            else:
                codes[key] = None
                cleared += 1
        tmp = meta.with_suffix(".meta.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(meta)
    print(f"mutation: {kept} killed mutants kept, {cleared} results cleared for a retry")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
