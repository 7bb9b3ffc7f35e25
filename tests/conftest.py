"""Shared pytest configuration: hypothesis profiles and thread settings.

Profiles: ``default`` (local runs: bounded example counts, no deadline since the first Numba call
JIT-compiles; failing examples are kept in the example database and replayed first), ``ci`` (chosen
when ``CI`` is set: the same bounded counts, derandomized) and ``thorough``
(``HYPOTHESIS_PROFILE=thorough`` for a deeper hunt).
"""

from __future__ import annotations

import os

# One thread per library: CI has 2 cores, and BLAS/Numba thread pools oversubscribe them (batched small
# matrix products ran ~10x slower with OpenBLAS's default threads on a loaded 2-core machine).
for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from hypothesis import HealthCheck, settings  # noqa: E402  (thread env vars must be set first)

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# CI replays the same examples on every run (a red CI must be reproducible, not a lucky draw); local runs
# explore new examples and keep any failure in the example database.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, database=None)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
