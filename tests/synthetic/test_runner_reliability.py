"""The runner under failure: killed and interrupted pools, stale temporaries, corrupt cache files,
read-only caches and concurrent sweeps (a torch-free fake task keeps each test to about a second)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner_helpers as helpers
from runner_helpers import FakeConfig

from attnlab.io import read_json
from attnlab.synthetic.base import config_hash
from attnlab.synthetic.runner import (
    SweepInterrupted,
    WorkerDiedError,
    experiment_hash,
    reproduce,
)

HELPER_SCRIPT = "import runner_helpers; runner_helpers.main()"


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "log"
    folder.mkdir()
    monkeypatch.setenv(helpers.LOG_ENV, str(folder))
    monkeypatch.delenv(helpers.DELAYS_ENV, raising=False)
    return folder


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cli_env(log: Path, configs: str, delays: dict[str, float] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(helpers.HERE), env.get("PYTHONPATH", "")])
    env[helpers.LOG_ENV] = str(log)
    env[helpers.CONFIGS_ENV] = configs
    env[helpers.DELAYS_ENV] = json.dumps(delays or {})
    return env


def _as_from_a_terminal() -> None:
    # A sweep started from a terminal gets Ctrl-C. When the suite itself runs as a background job (`cmd &`
    # in a script), the shell has set SIGINT to ignored, the children inherit that and, by the Unix
    # convention for background jobs, keep ignoring it: restore the default so the test sees a terminal's.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def spawn_cli() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``attnlab reproduce`` (fake task registered) in its own session; the session is killed at
    teardown, so a failing test leaks no process."""
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
        also = kwargs.pop("preexec_fn", None)

        def preexec() -> None:
            _as_from_a_terminal()
            if also is not None:
                also()

        process = subprocess.Popen(
            [sys.executable, "-c", HELPER_SCRIPT, *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
            **kwargs,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.communicate()


def _run_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("seed-*/metrics.json"))}


def _fake_metrics(outcome: Any) -> list[dict[str, Any]]:
    return [m for _c, _s, m in outcome.results]


# ----------------------------------------------------------------------------- killed and interrupted pools

SLOW = [FakeConfig("slow0", steps=40), FakeConfig("slow1", steps=40), FakeConfig("slow2", steps=40)]


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_pool_sweep_leaves_no_worker_and_a_rerun_matches(
    tmp_path: Path, log_dir: Path, spawn_cli: Callable[..., subprocess.Popen[str]], signal_number: int
) -> None:
    root = tmp_path / "results"
    env = _cli_env(log_dir, helpers.configs_env(SLOW), {c.label: 0.25 for c in SLOW})
    sweep = spawn_cli(["reproduce", "fake", "--quick", "--seeds", "1", "--workers", "2", "--out", str(root)], env)
    _wait_for(lambda: len(list(root.rglob("work/checkpoint.json"))) == 2, 60, "two workers to checkpoint")
    descendants = psutil.Process(sweep.pid).children(recursive=True)
    workers = {e["pid"] for e in helpers.events(log_dir)}
    assert len(workers) == 2 and workers <= {p.pid for p in descendants}

    os.kill(sweep.pid, signal_number)
    returncode = sweep.wait(timeout=20)
    _wait_for(lambda: not any(_alive(p.pid) for p in descendants), 10, "the workers to die with the sweep")
    if signal_number == signal.SIGTERM:
        assert returncode == 128 + signal.SIGTERM
        _out, err = sweep.communicate()
        assert "interrupted by SIGTERM" in err and "Traceback" not in err
    else:
        assert returncode == -signal.SIGKILL
    checkpoints = {p: p.stat().st_mtime_ns for p in root.rglob("work/checkpoint.json")}
    time.sleep(0.6)  # longer than two steps: a surviving worker would have written again
    assert {p: p.stat().st_mtime_ns for p in root.rglob("work/checkpoint.json")} == checkpoints

    task = helpers.make_task(SLOW)
    resumed = reproduce(task, root=root, quick=True, seeds=[0])
    reference = reproduce(task, root=tmp_path / "reference", quick=True, seeds=[0])
    assert _fake_metrics(resumed) == _fake_metrics(reference)
    assert resumed.summary == reference.summary
    restarts = [e for e in helpers.events(log_dir) if e["pid"] == os.getpid() and e["start_step"] > 0]
    assert len(restarts) == 2  # the two interrupted runs resumed from their checkpoints
    assert not [p for p in root.rglob("*.tmp")]


@pytest.mark.parametrize("target", ["parent", "process group"])
def test_sigint_stops_the_workers_at_once_and_keeps_finished_runs(
    tmp_path: Path, log_dir: Path, spawn_cli: Callable[..., subprocess.Popen[str]], target: str
) -> None:
    """SIGINT to the sweep alone (``kill -INT``) or to its whole process group (Ctrl-C in a terminal)."""
    root = tmp_path / "results"
    configs = [FakeConfig("fast", steps=2), *SLOW[:2]]
    env = _cli_env(log_dir, helpers.configs_env(configs), {"slow0": 0.25, "slow1": 0.25})
    sweep = spawn_cli(["reproduce", "fake", "--quick", "--seeds", "1", "--workers", "2", "--out", str(root)], env)
    fast_metrics = root / "fake" / config_hash(configs[0]) / "seed-0" / "metrics.json"
    _wait_for(lambda: fast_metrics.exists() and len(helpers.events(log_dir)) == 3, 60, "the fast run to finish")
    descendants = psutil.Process(sweep.pid).children(recursive=True)

    sent = time.monotonic()
    if target == "parent":
        os.kill(sweep.pid, signal.SIGINT)
    else:
        os.killpg(sweep.pid, signal.SIGINT)
    assert sweep.wait(timeout=20) == 128 + signal.SIGINT
    assert time.monotonic() - sent < 8  # the slow runs had about 10 s left
    _out, err = sweep.communicate()
    assert "interrupted by SIGINT: 1 run(s) finished and kept, 2 still missing" in err
    assert "Traceback" not in err
    _wait_for(lambda: not any(_alive(p.pid) for p in descendants), 10, "the workers to stop")
    assert read_json(fast_metrics)["label"] == "fast"
    assert len(list(root.rglob("seed-0/metrics.json"))) == 1

    task = helpers.make_task(configs)
    resumed = reproduce(task, root=root, quick=True, seeds=[0])
    assert resumed.executed == 2 and resumed.cached == 1
    assert _fake_metrics(resumed) == _fake_metrics(reproduce(task, root=tmp_path / "reference", quick=True, seeds=[0]))


def test_the_watchdog_alone_stops_a_worker_whose_parent_died() -> None:
    """Where there is no parent-death signal (not Linux), the worker's watchdog notices the new parent."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(helpers.HERE), os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", "import runner_helpers; runner_helpers.watchdog_parent()"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _wait_for(lambda: any(t.id for t in psutil.Process(child).threads()[1:]), 30, "the watchdog thread")
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        _wait_for(lambda: not _alive(child), 5, "the orphaned child to exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.communicate()


class _InterruptAfterTheFastRun:
    """Raises KeyboardInterrupt (a Ctrl-C) on the slow run's first progress event, once the fast run's
    result is in transit: its worker has returned, but the sweep has not read the result yet."""

    def __init__(self, fast_checkpoint: Path, steps: int) -> None:
        self.fast_checkpoint, self.steps = fast_checkpoint, steps
        self.interrupted = False

    def sweep_started(self, total: int, cached: int) -> None:
        pass

    def run_progress(self, key: str, fraction: float, message: str) -> None:
        if key.startswith("slow") and not self.interrupted:
            self.interrupted = True
            _wait_for(
                lambda: self.fast_checkpoint.exists() and read_json(self.fast_checkpoint)["step"] == self.steps,
                30,
                "the fast run to finish",
            )
            time.sleep(0.3)
            raise KeyboardInterrupt

    def run_finished(self, key: str) -> None:
        pass


def test_an_interrupt_records_results_still_in_transit_from_workers(
    tmp_path: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = FakeConfig("fast", steps=2), FakeConfig("slow", steps=100)
    monkeypatch.setenv(helpers.DELAYS_ENV, json.dumps({"fast": 0.2, "slow": 0.05}))
    fast_dir = tmp_path / "fake" / config_hash(fast) / "seed-0"
    reporter = _InterruptAfterTheFastRun(fast_dir / "work" / "checkpoint.json", fast.steps)
    with pytest.raises(SweepInterrupted) as stopped:
        reproduce(helpers.make_task([fast, slow]), root=tmp_path, quick=True, seeds=[0], workers=2, reporter=reporter)
    assert (stopped.value.finished, stopped.value.remaining) == (1, 1)
    assert read_json(fast_dir / "metrics.json")["label"] == "fast"
    assert not (tmp_path / "fake" / config_hash(slow) / "seed-0" / "metrics.json").exists()
    assert not any(_alive(e["pid"]) for e in helpers.events(log_dir))


def test_a_failing_run_on_the_pool_raises_its_own_error_and_keeps_the_others(
    tmp_path: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = [FakeConfig("good"), FakeConfig("bad", fail=True)]
    monkeypatch.setenv(helpers.DELAYS_ENV, json.dumps({"bad": 0.2}))  # fails after the good run finished
    with pytest.raises(RuntimeError, match="bad fails on purpose") as failure:
        reproduce(helpers.make_task(configs), root=tmp_path, quick=True, seeds=[0], workers=2)
    assert any("pool worker" in note for note in getattr(failure.value, "__notes__", []))
    good = tmp_path / "fake" / config_hash(configs[0]) / "seed-0" / "metrics.json"
    assert read_json(good)["label"] == "good"
    assert not any(_alive(e["pid"]) for e in helpers.events(log_dir))


def test_a_worker_that_dies_is_reported_with_its_run(tmp_path: Path, log_dir: Path) -> None:
    configs = [FakeConfig("steady"), FakeConfig("crashing", crash=True)]
    with pytest.raises(WorkerDiedError, match=r"exited with code 3 while running crashing\["):
        reproduce(helpers.make_task(configs), root=tmp_path, quick=True, seeds=[0], workers=2)


# ----------------------------------------------------------------------------- stale temporaries


def test_stale_temporaries_are_removed_on_the_next_run(tmp_path: Path, log_dir: Path) -> None:
    configs = [FakeConfig("a"), FakeConfig("b")]
    task = helpers.make_task(configs)
    first = reproduce(task, root=tmp_path, quick=True, seeds=[0, 1])
    config_dir = tmp_path / "fake" / config_hash(configs[0])
    (config_dir / "seed-1" / "metrics.json").unlink()  # one run to redo
    planted = [
        config_dir / "seed-0" / ".metrics.json.k1ll3d.tmp",
        config_dir / "seed-0" / "work" / ".checkpoint.json.k1ll3d.tmp",
        config_dir / "seed-1" / "work" / ".checkpoint.json.k1ll3d.tmp",
        config_dir / ".config.json.k1ll3d.tmp",
        first.experiment_dir / ".metrics.json.k1ll3d.tmp",
        first.experiment_dir / ".totals.svg.k1ll3d.tmp",
    ]
    for path in planted:
        path.write_bytes(b'{"half": ')
    keep = config_dir / "seed-0" / "notes.tmp"  # not a hidden temporary of an atomic write
    keep.write_text("mine")
    again = reproduce(task, root=tmp_path, quick=True, seeds=[0, 1])
    assert again.executed == 1
    assert [p for p in planted if p.exists()] == []
    assert keep.read_text() == "mine"
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_fully_cached_run_also_removes_stale_temporaries(tmp_path: Path, log_dir: Path) -> None:
    task = helpers.make_task([FakeConfig("a")])
    first = reproduce(task, root=tmp_path, quick=True, seeds=[0])
    stale = [
        first.experiment_dir / ".metrics.json.x.tmp",
        tmp_path / "fake" / config_hash(FakeConfig("a")) / "seed-0" / "work" / ".checkpoint.json.x.tmp",
    ]
    for path in stale:
        path.write_text("{")
    assert reproduce(task, root=tmp_path, quick=True, seeds=[0]).executed == 0
    assert not any(p.exists() for p in stale)


def test_temporaries_of_a_run_another_process_holds_are_kept(tmp_path: Path, log_dir: Path) -> None:
    task = helpers.make_task([FakeConfig("a"), FakeConfig("b")])
    reproduce(task, root=tmp_path, quick=True, seeds=[0])
    held_dir = tmp_path / "fake" / config_hash(FakeConfig("a")) / "seed-0"
    free_dir = tmp_path / "fake" / config_hash(FakeConfig("b")) / "seed-0"
    held, free = held_dir / "work" / ".checkpoint.json.live.tmp", free_dir / "work" / ".checkpoint.json.old.tmp"
    held.write_text("{")
    free.write_text("{")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); "
            "lock.acquire(); print('held', flush=True); time.sleep(60)",
            str(held_dir / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert reproduce(task, root=tmp_path, quick=True, seeds=[0]).executed == 0
        assert held.exists() and not free.exists()
    finally:
        holder.kill()
        holder.communicate()


# ----------------------------------------------------------------------------- corrupt cache files

CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: b"\x00\x9c\xff\xfe not json \x81\n",
}


def _corrupt(path: Path, how: str) -> bytes:
    damaged = CORRUPTIONS[how](path.read_bytes())
    path.write_bytes(damaged)
    return damaged


def _quarantined(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "attnlab.cache" and r.levelno == logging.WARNING]


FILE_KINDS = ["run metrics", "config", "config metrics", "experiment config", "experiment summary", "figure list"]


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_corrupt_cache_file_is_named_moved_aside_and_recomputed(
    tmp_path: Path, log_dir: Path, caplog: pytest.LogCaptureFixture, kind: str, how: str
) -> None:
    configs = [FakeConfig("a"), FakeConfig("b")]
    task = helpers.make_task(configs)
    first = reproduce(task, root=tmp_path, quick=True, seeds=[0, 1])
    config_dir = tmp_path / "fake" / config_hash(configs[1])
    path = {
        "run metrics": config_dir / "seed-1" / "metrics.json",
        "config": config_dir / "config.json",
        "config metrics": config_dir / "metrics.json",
        "experiment config": first.experiment_dir / "config.json",
        "experiment summary": first.experiment_dir / "metrics.json",
        "figure list": first.experiment_dir / "figures.json",
    }[kind]
    original = path.read_bytes()
    damaged = _corrupt(path, how)
    calls = len(helpers.events(log_dir))
    caplog.set_level(logging.WARNING, logger="attnlab")

    again = reproduce(task, root=tmp_path, quick=True, seeds=[0, 1])

    assert path.read_bytes() == original
    (aside,) = _quarantined(path)
    assert aside.read_bytes() == damaged
    (message,) = _cache_warnings(caplog)
    assert str(path) in message and "corrupt" in message and aside.name in message and "\n" not in message
    assert again.summary == first.summary
    assert len(helpers.events(log_dir)) - calls == (1 if kind == "run metrics" else 0)
    assert again.executed == (1 if kind == "run metrics" else 0)


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_task_checkpoint_is_moved_aside_and_the_run_restarts(
    tmp_path: Path, log_dir: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    config = FakeConfig("a", steps=4)
    task = helpers.make_task([config])
    reference = reproduce(task, root=tmp_path / "reference", quick=True, seeds=[0])
    run_dir = tmp_path / "fake" / config_hash(config) / "seed-0"
    reproduce(task, root=tmp_path, quick=True, seeds=[0])
    (run_dir / "metrics.json").unlink()  # as if killed after its last checkpoint
    checkpoint = run_dir / "work" / "checkpoint.json"
    damaged = _corrupt(checkpoint, how)
    caplog.set_level(logging.WARNING, logger="attnlab")
    again = reproduce(task, root=tmp_path, quick=True, seeds=[0])
    (aside,) = _quarantined(checkpoint)
    assert aside.read_bytes() == damaged
    (message,) = _cache_warnings(caplog)
    assert str(checkpoint) in message
    assert helpers.events(log_dir)[-1]["start_step"] == 0
    assert _fake_metrics(again) == _fake_metrics(reference)


# ----------------------------------------------------------------------------- read-only caches


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``root`` with its inode, modification time and size."""
    entries = [root, *root.rglob("*")]
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in entries}


def test_a_fully_cached_run_writes_nothing(tmp_path: Path, log_dir: Path) -> None:
    task = helpers.make_task([FakeConfig("a"), FakeConfig("b")])
    first = reproduce(task, root=tmp_path / "results", quick=True, seeds=[0, 1])
    before = _snapshot(tmp_path / "results")
    plots = len(helpers.events(log_dir, "plot"))
    for workers in (1, 2):
        again = reproduce(task, root=tmp_path / "results", quick=True, seeds=[0, 1], workers=workers)
        assert again.summary == first.summary and again.executed == 0
        assert sorted(again.figures) == sorted(first.figures)
    assert _snapshot(tmp_path / "results") == before
    assert len(helpers.events(log_dir, "plot")) == plots
    # A deleted figure is redrawn by a normal run, so the cache stays complete.
    first.figures[0].unlink()
    reproduce(task, root=tmp_path / "results", quick=True, seeds=[0, 1])
    assert first.figures[0].exists() and len(helpers.events(log_dir, "plot")) == plots + 1


_CAPABILITIES_THAT_BYPASS_PERMISSIONS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
_PR_CAPBSET_DROP = 24


def _drop_permission_bypass() -> None:
    """In a child about to exec as root: drop the capabilities that let root ignore permission bits, so
    the program it runs meets a read-only folder as any user does."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _CAPABILITIES_THAT_BYPASS_PERMISSIONS:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_read_only_cache_is_read_and_replot_refuses_in_one_line(
    tmp_path: Path, log_dir: Path, spawn_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    configs = [FakeConfig("a"), FakeConfig("b")]
    root = tmp_path / "results"
    first = reproduce(helpers.make_task(configs), root=root, quick=True, seeds=[0])
    env = _cli_env(log_dir, helpers.configs_env(configs))
    extra: dict[str, Any] = {}
    if os.geteuid() == 0:
        if not sys.platform.startswith("linux"):
            pytest.skip("root ignores permission bits and dropping that needs Linux prctl")
        extra["preexec_fn"] = _drop_permission_bypass
    before = _snapshot(root)
    _make_read_only(root)
    try:

        def cli(*args: str) -> tuple[int, str, str]:
            process = spawn_cli(
                ["reproduce", "fake", "--quick", "--workers", "1", "--out", str(root), *args], env, **extra
            )
            out, err = process.communicate(timeout=60)
            return process.returncode, out, err

        code, out, err = cli("--seeds", "1", "--json")
        assert code == 0, err
        assert json.loads(out) == first.summary
        code, _out, err = cli("--seeds", "1", "--replot")
        assert code == 1 and err.count("\n") == 1 and "error: --replot cannot write figures" in err, err
        assert str(first.experiment_dir) in err
        code, _out, err = cli("--seeds", "2")  # seed 1 is missing and cannot be written
        assert code == 1 and err.count("\n") == 1 and "error: cannot write to the results folder" in err, err
    finally:
        _make_writable(root)
    assert _snapshot(root) == before


# ----------------------------------------------------------------------------- concurrent sweeps


def test_a_second_sweep_waits_for_the_first_and_reads_its_results(
    tmp_path: Path, log_dir: Path, spawn_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    config = FakeConfig("shared", steps=6)
    root = tmp_path / "results"
    env = _cli_env(log_dir, helpers.configs_env([config]), {"shared": 0.15})
    first = spawn_cli(
        ["reproduce", "fake", "--quick", "--seeds", "1", "--workers", "1", "--out", str(root), "--json"], env
    )
    _wait_for(lambda: len(helpers.events(log_dir)) == 1, 30, "the first sweep to start training")
    second = reproduce(helpers.make_task([config]), root=root, quick=True, seeds=[0])
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert len(helpers.events(log_dir)) == 1  # one training call between the two sweeps
    assert (second.executed, second.cached, second.from_other_sweeps) == (0, 1, 1)
    assert json.loads(out) == second.summary
    assert second.results[0][2] == read_json(root / "fake" / config_hash(config) / "seed-0" / "metrics.json")


def test_overlapping_sweeps_share_the_work_and_train_each_run_once(
    tmp_path: Path, log_dir: Path, spawn_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    quick = [FakeConfig("a", steps=4), FakeConfig("b", steps=4)]
    full = [*quick, FakeConfig("c", steps=4)]
    root = tmp_path / "results"
    env = _cli_env(log_dir, helpers.configs_env(quick, full), {c.label: 0.1 for c in full})
    other = spawn_cli(["reproduce", "fake", "--quick", "--seeds", "2", "--workers", "1", "--out", str(root)], env)
    _wait_for(lambda: len(helpers.events(log_dir)) >= 1, 30, "the other sweep to start training")
    mine = reproduce(helpers.make_task(quick, full), root=root, quick=False, seeds=[0, 1])
    _out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    calls = sorted((e["label"], e["seed"]) for e in helpers.events(log_dir))
    assert calls == sorted((c.label, s) for c in full for s in (0, 1))  # six distinct runs, each trained once
    assert mine.executed < 6 and mine.from_other_sweeps >= 1
    reference = reproduce(helpers.make_task(quick, full), root=tmp_path / "reference", quick=False, seeds=[0, 1])
    assert _fake_metrics(mine) == _fake_metrics(reference)
    experiment = root / "fake" / experiment_hash("fake", quick, [0, 1], True)
    assert read_json(experiment / "metrics.json")["runs"] == 4


def test_interrupted_runs_resume_identically_with_the_pool(tmp_path: Path, log_dir: Path) -> None:
    """A run whose metrics were lost keeps its checkpoint; the pool resumes it like the serial runner."""
    configs = [FakeConfig("a", steps=5), FakeConfig("b", steps=5)]
    task = helpers.make_task(configs)
    reference = reproduce(task, root=tmp_path / "reference", quick=True, seeds=[0, 1])
    root = tmp_path / "results"
    reproduce(task, root=root, quick=True, seeds=[0, 1])
    for seed in (0, 1):
        run_dir = root / "fake" / config_hash(configs[0]) / f"seed-{seed}"
        (run_dir / "metrics.json").unlink()
        checkpoint = run_dir / "work" / "checkpoint.json"
        assert read_json(checkpoint)["step"] == 5
        checkpoint.write_text(json.dumps({"step": 2, "total": sum(configs[0].build(seed)[:2])}))
    calls = len(helpers.events(log_dir))
    again = reproduce(task, root=root, quick=True, seeds=[0, 1], workers=2)
    assert again.executed == 2
    assert _fake_metrics(again) == _fake_metrics(reference)
    assert [e["start_step"] for e in helpers.events(log_dir)[calls:]] == [2, 2]


# ----------------------------------------------------------------------------- a real task, tiny


def test_a_real_task_heals_a_corrupt_checkpoint_and_then_reads_without_writing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from attnlab.synthetic import ocr
    from attnlab.synthetic.base import Task

    tiny = ocr.OCRConfig(steps=20, eval_every=10, checkpoint_every=10, eval_per_subject=1, device="cpu")
    task = Task(
        name="ocr", configs=lambda quick: [tiny], run=helpers.mixed_run, summarize=ocr.summarize, plot=helpers.no_plot
    )
    reference = reproduce(task, root=tmp_path / "reference", quick=True, seeds=[0, 1])
    root = tmp_path / "results"
    reproduce(task, root=root, quick=True, seeds=[0, 1])
    run_dir = root / "ocr" / config_hash(tiny) / "seed-1"
    (run_dir / "metrics.json").unlink()
    checkpoint = run_dir / "work" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    caplog.set_level(logging.WARNING, logger="attnlab")
    healed = reproduce(task, root=root, quick=True, seeds=[0, 1])
    (message,) = _cache_warnings(caplog)
    assert str(checkpoint) in message and len(_quarantined(checkpoint)) == 1
    assert healed.executed == 1 and _fake_metrics(healed) == _fake_metrics(reference)
    assert healed.summary == reference.summary
    before = _snapshot(root)
    assert reproduce(task, root=root, quick=True, seeds=[0, 1]).summary == reference.summary
    assert _snapshot(root) == before
