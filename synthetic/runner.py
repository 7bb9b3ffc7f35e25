"""Cached, resumable, self-healing sweeps of a synthetic :class:`~attnlab.synthetic.base.Task` over
configs × seeds.

On-disk layout under ``root`` (``results/`` by default)::

    <task>/<config-hash>/config.json               the config (class name + fields)
    <task>/<config-hash>/seed-<s>/metrics.json     one finished (config, seed) run — the cache unit
    <task>/<config-hash>/seed-<s>/work/            the run's private checkpoint folder (resume)
    <task>/<config-hash>/metrics.json              all finished seeds of the config, keyed by seed
    <task>/<experiment-hash>/config.json           the experiment: quick flag, seeds, config hashes
    <task>/<experiment-hash>/metrics.json          the summary (what ``--json`` prints)
    <task>/<experiment-hash>/figures.json          the names of the figure files ``plot`` wrote
    <task>/<experiment-hash>/*.png|svg|json        the figures and their data
    .lock                                          per-run, per-config and per-experiment file locks

**Writes.** Every file is written atomically (temporary file, then ``os.replace``). A run whose
``metrics.json`` reads back as a JSON object is never recomputed; an interrupted sweep therefore resumes
with the missing runs only, and a run interrupted mid-training resumes from the checkpoints in its
``work/`` folder. A file is rewritten only when its content would change, so a fully cached sweep reads
without writing anything and works on a read-only results folder (figures are redrawn only when the
summary changed, a figure is missing, or ``replot`` asks for it).

**Healing.** Temporary files left by a killed writer are deleted the next time the folder is written
(under its lock). A cache file that cannot be read (truncated, empty, garbage) is moved aside to
``<name>.corrupt-<timestamp>`` with a one-line warning on the ``attnlab.cache`` logger and recomputed;
tasks load their own checkpoints through :func:`attnlab.io.load_or_quarantine` for the same behaviour.

**Concurrency.** Each run is claimed with a file lock (``seed-<s>/.lock``, the ``filelock`` package) for
as long as it trains. A second sweep over the same cache (the same experiment or a different one that
shares runs) skips the runs another process holds, trains the others, then waits for the held runs and
reads their results; a run whose holder died without finishing is trained by the waiter. Locks are
``flock`` locks, released by the kernel when their holder dies; they need a file system with working
``flock`` (local disks do; some network file systems do not).

**Backends.** Runs execute in-process (``workers <= 1``), on a local pool of ``spawn``-ed worker
processes (``workers > 1``), or on a Dask distributed cluster given its scheduler address. Metrics files
are written by the calling process as results arrive, so every backend fills the same cache. Pool
workers die with the sweep: they get ``SIGKILL`` from the kernel when the sweep process dies (Linux
``PR_SET_PDEATHSIG``) and, on every platform, a watchdog thread exits as soon as their parent changes.

**Interruption.** ``SIGINT`` (Ctrl-C) or ``SIGTERM`` to the sweep process records every run that has
finished, including results still in transit from pool workers, stops the workers at once and raises
:class:`SweepInterrupted` (a ``KeyboardInterrupt``). Workers ignore ``SIGINT`` themselves, so a Ctrl-C
from the terminal, which reaches the whole process group, is handled by the sweep alone.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from filelock import FileLock, Timeout

from attnlab.io import (
    CacheWriteError,
    atomic_write_text,
    cache_log,
    describe_error,
    json_text,
    one_line,
    quarantine,
    remove_stale_temporaries,
    stale_temporaries,
)
from attnlab.synthetic.base import Progress, Task, config_hash, config_to_dict

Result = tuple[Any, int, dict[str, Any]]
RunFunction = Callable[[Any, int, Progress, Path], dict[str, Any]]

log = logging.getLogger("attnlab.synthetic.runner")

LOCK_NAME = ".lock"
FIGURES_MANIFEST = "figures.json"
#: Seconds between looks at runs held by another process, and between polls of busy workers.
POLL_SECONDS = 0.2
#: Seconds a terminated pool worker gets to exit before it is killed.
TERMINATE_GRACE_SECONDS = 2.0

_SCHEDULER_ADDRESS = re.compile(
    r"^(?P<scheme>tcp|tls|ws|wss|ucx)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)"
    r":(?P<port>[0-9]+)/?$"
)


class CacheMissError(LookupError):
    """``--replot`` was asked for runs that have no cached metrics."""


class SweepArgumentError(ValueError):
    """An argument of :func:`reproduce` is invalid (bad seeds, worker count or scheduler address)."""


class SchedulerUnavailableError(RuntimeError):
    """The Dask scheduler cannot be reached, or ``dask.distributed`` is not installed."""


class WorkerDiedError(RuntimeError):
    """A pool worker process exited while it held a run (killed by the OS, out of memory, ...)."""


class SweepInterrupted(KeyboardInterrupt):
    """The sweep stopped on ``SIGINT`` or ``SIGTERM``; every finished run was recorded.

    Attributes:
        signal_number: ``signal.SIGINT`` or ``signal.SIGTERM``.
        finished: runs this sweep recorded before it stopped.
        remaining: runs still missing (a rerun trains them, resuming from their checkpoints).
    """

    def __init__(self, signal_number: int, finished: int, remaining: int) -> None:
        name = signal.Signals(signal_number).name
        super().__init__(
            f"interrupted by {name}: {finished} run(s) finished and kept, {remaining} still missing; "
            f"rerun the same command to resume"
        )
        self.signal_number, self.finished, self.remaining = signal_number, finished, remaining


class _Terminated(KeyboardInterrupt):
    """Raised in the main thread by the ``SIGTERM`` handler a sweep installs."""

    signal_number = signal.SIGTERM


class Reporter(Protocol):
    """Receives sweep progress (the CLI draws rich progress bars from it)."""

    def sweep_started(self, total: int, cached: int) -> None: ...

    def run_progress(self, key: str, fraction: float, message: str) -> None: ...

    def run_finished(self, key: str) -> None: ...


class SilentReporter:
    """A reporter that ignores every event."""

    def sweep_started(self, total: int, cached: int) -> None:
        pass

    def run_progress(self, key: str, fraction: float, message: str) -> None:
        pass

    def run_finished(self, key: str) -> None:
        pass


@dataclass(frozen=True)
class RunSpec:
    """One ``(config, seed)`` run and where its files live."""

    config: Any
    seed: int
    config_dir: Path

    @property
    def key(self) -> str:
        label = getattr(self.config, "name", type(self.config).__name__)
        return f"{label}[{self.config_dir.name[:6]}]/seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return self.config_dir / f"seed-{self.seed}"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.json"

    @property
    def workdir(self) -> Path:
        return self.run_dir / "work"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / LOCK_NAME


@dataclass
class SweepOutcome:
    """What :func:`reproduce` did: the results, the summary, the figures and the cache statistics.

    ``executed`` counts the runs this call trained, ``cached`` the runs it read (``from_other_sweeps``
    of them were finished by a concurrent sweep while this one waited).
    """

    task: str
    results: list[Result]
    summary: dict[str, Any]
    experiment_dir: Path
    figures: list[Path] = field(default_factory=list)
    executed: int = 0
    cached: int = 0
    from_other_sweeps: int = 0


def experiment_hash(task_name: str, configs: Sequence[Any], seeds: Sequence[int], quick: bool) -> str:
    """12-hex-digit hash of an experiment: the task, its config hashes (in order), the seeds, quick."""
    hashes = [config_hash(c) for c in configs]
    payload = json.dumps({"task": task_name, "configs": hashes, "seeds": list(seeds), "quick": quick})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def plan(task: Task, configs: Sequence[Any], seeds: Sequence[int], root: Path) -> list[RunSpec]:
    """The runs of a sweep (config-major order) with their cache folders."""
    return [RunSpec(c, int(s), root / task.name / config_hash(c)) for c in configs for s in seeds]


def _validate_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values:
        raise SweepArgumentError("seeds must name at least one seed")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in values):
        raise SweepArgumentError(f"seeds must be non-negative integers, got {values}")
    if len(set(values)) != len(values):
        raise SweepArgumentError(f"seeds must be distinct, got {values}")
    return values


def validate_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``tcp://host:port``, also ``tls``/``ws``/``wss``/
    ``ucx``, or an in-process ``inproc://...`` one); :class:`SweepArgumentError` otherwise."""
    if not isinstance(address, str) or not address.strip():
        raise SweepArgumentError(f"scheduler: expected a Dask scheduler address like tcp://host:8786, got {address!r}")
    if address.startswith("inproc://") and len(address) > len("inproc://"):
        return address
    match = _SCHEDULER_ADDRESS.match(address)
    if match is None:
        raise SweepArgumentError(f"scheduler: expected a Dask scheduler address like tcp://host:8786, got {address!r}")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise SweepArgumentError(f"scheduler: port must lie in [1, 65535], got {port} in {address!r}")
    return address


# ----------------------------------------------------------------------------- cache files


@dataclass(frozen=True)
class _Cached:
    """What a run's ``metrics.json`` holds: ``metrics`` when it reads back, else why it does not."""

    metrics: dict[str, Any] | None
    problem: str | None = None  # None: missing (or fine, when metrics is set)


def _inspect_metrics(path: Path) -> _Cached:
    """Read a run's metrics without writing anything."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _Cached(None)
    except OSError as error:
        return _Cached(None, describe_error(error))
    if not data.strip():
        return _Cached(None, "empty file")
    try:
        metrics = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return _Cached(None, describe_error(error))
    if not isinstance(metrics, dict):
        return _Cached(None, f"expected a JSON object, found {type(metrics).__name__}")
    return _Cached(metrics)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        return None


def _parses_as_json(text: str | None) -> bool:
    if text is None:
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _write_error(path: Path, error: OSError) -> CacheWriteError:
    folder = path if path.is_dir() else path.parent
    return CacheWriteError(
        error.errno or errno.EACCES, f"cannot write to the results folder {folder}: {error.strerror or error}"
    )


@contextlib.contextmanager
def _holding(lock_path: Path) -> Iterator[None]:
    """Hold the file lock at ``lock_path`` (blocking), creating its folder; write errors become
    :class:`CacheWriteError`."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path)
        lock.acquire()
    except OSError as error:
        raise _write_error(lock_path.parent, error) from error
    try:
        yield
    finally:
        lock.release()


def _try_claim(lock_path: Path) -> FileLock | None:
    """The acquired lock at ``lock_path``, or ``None`` when another process holds it."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path, timeout=0)
        lock.acquire(timeout=0)
    except Timeout:
        return None
    except OSError as error:
        raise _write_error(lock_path.parent, error) from error
    return lock


def _heal_temporaries(folder: Path, lock_path: Path, *, recursive: bool) -> None:
    """Delete temporaries a killed writer left in ``folder``, if its lock is free and it is writable.

    Nothing is written when there is nothing to delete, so read-only caches stay untouched.
    """
    if not stale_temporaries(folder, recursive=recursive):
        return
    try:
        lock = _try_claim(lock_path)
    except CacheWriteError:
        return
    if lock is None:
        return
    try:
        for path in remove_stale_temporaries(folder, recursive=recursive):
            log.info("removed %s, left by an interrupted write", path)
    finally:
        lock.release()


def _sync(path: Path, text: str) -> None:
    """Make ``path`` hold ``text``, writing only if it does not already; a file that is not JSON is
    quarantined first. Call with the folder's lock held."""
    current = _read_text(path)
    if current == text:
        return
    if path.exists() and not _parses_as_json(current):
        quarantine(path, "not valid JSON" if current is not None else "not UTF-8 text")
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise _write_error(path, error) from error


def _config_text(config: Any) -> str:
    return json_text(config_to_dict(config))


def _sync_config_files(specs: Sequence[RunSpec]) -> None:
    for config_dir, config in {s.config_dir: s.config for s in specs}.items():
        path = config_dir / "config.json"
        expected = _config_text(config)
        current = _read_text(path)
        if current == expected:
            continue
        if _parses_as_json(current):
            if json.loads(current or "null") == json.loads(expected):
                continue  # the same config, written by another version's formatting: leave it
            cache_log.warning("%s describes another config than its folder's hash; rewriting it", path)
        with _holding(config_dir / LOCK_NAME):
            remove_stale_temporaries(config_dir, recursive=False)
            _sync(path, expected)


def _config_metrics_text(config_dir: Path) -> str:
    seeds: dict[str, Any] = {}
    for path in sorted(config_dir.glob("seed-*/metrics.json")):
        cached = _inspect_metrics(path)
        if cached.metrics is not None:
            seeds[path.parent.name.removeprefix("seed-")] = cached.metrics
    return json_text({"seeds": seeds})


def _sync_config_metrics(specs: Sequence[RunSpec]) -> None:
    for config_dir in {s.config_dir for s in specs}:
        if not config_dir.is_dir():
            continue
        if _read_text(config_dir / "metrics.json") == _config_metrics_text(config_dir):
            continue
        with _holding(config_dir / LOCK_NAME):
            _sync(config_dir / "metrics.json", _config_metrics_text(config_dir))


# ----------------------------------------------------------------------------- execution backends


def _execute(run: RunFunction, config: Any, seed: int, progress: Progress, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = run(config, seed, progress, workdir)
    if not isinstance(metrics, dict):
        raise TypeError(f"a task's run must return a dict of metrics, got {type(metrics).__name__}")
    return metrics


class _Backend(Protocol):
    slots: int

    @property
    def busy(self) -> bool: ...

    def submit(self, spec: RunSpec) -> None: ...

    def collect(self, timeout: float) -> list[tuple[RunSpec, dict[str, Any]]]: ...

    def abort(self) -> list[tuple[RunSpec, dict[str, Any]]]: ...

    def close(self) -> None: ...


class _SerialBackend:
    """Runs each submitted run at once, in this process."""

    slots = 1
    busy = False

    def __init__(self, run: RunFunction, reporter: Reporter) -> None:
        self.run, self.reporter = run, reporter
        self.finished: list[tuple[RunSpec, dict[str, Any]]] = []

    def submit(self, spec: RunSpec) -> None:
        def progress(fraction: float, message: str) -> None:
            self.reporter.run_progress(spec.key, fraction, message)

        self.finished.append((spec, _execute(self.run, spec.config, spec.seed, progress, spec.workdir)))

    def collect(self, timeout: float) -> list[tuple[RunSpec, dict[str, Any]]]:
        finished, self.finished = self.finished, []
        return finished

    def abort(self) -> list[tuple[RunSpec, dict[str, Any]]]:
        return self.collect(0)

    def close(self) -> None:
        pass


def _die_with_parent(parent_pid: int, *, kernel_signal: bool = True) -> None:
    """Make this process exit when ``parent_pid`` dies: the kernel's parent-death signal on Linux (unless
    ``kernel_signal`` is false) and a watchdog thread everywhere, which also covers a parent that died
    before the signal was armed."""
    if kernel_signal and sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="attnlab-parent-watchdog", daemon=True).start()


class _ConnectionLogHandler(logging.Handler):
    """Forwards a pool worker's ``attnlab`` log records to the sweep process."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__(logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.send(("log", record.levelno, record.getMessage()))


def _portable_error(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _pool_worker(run: RunFunction, connection: mp_connection.Connection, parent_pid: int) -> None:
    """A pool worker's main loop: receive ``(index, config, seed, workdir)``, send events back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(parent_pid)
    sending = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with sending:
            connection.send(message)

    attnlab_log = logging.getLogger("attnlab")
    attnlab_log.addHandler(_ConnectionLogHandler(send))
    attnlab_log.setLevel(logging.INFO)
    attnlab_log.propagate = False
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        index, config, seed, workdir = job

        def progress(fraction: float, message: str, index: int = index) -> None:
            send(("progress", index, float(fraction), str(message)))

        try:
            metrics = _execute(run, config, seed, progress, workdir)
        except BaseException as error:
            send(("failed", index, _portable_error(error), traceback.format_exc()))
        else:
            send(("done", index, metrics))


@dataclass
class _Worker:
    process: Any
    connection: mp_connection.Connection
    job: int | None = None


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while starting a worker, so the worker inherits the blocked mask and
    a Ctrl-C cannot reach it before it ignores SIGINT."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _PoolBackend:
    """A pool of ``spawn``-ed worker processes, one pipe each; see the module docstring."""

    def __init__(self, run: RunFunction, workers: int, reporter: Reporter) -> None:
        try:
            pickle.dumps(run)
        except Exception as error:
            raise SweepArgumentError(
                f"workers > 1 needs a task whose run function can be pickled (a module-level function): "
                f"{describe_error(error)}"
            ) from error
        self.reporter, self.slots = reporter, workers
        self.specs: dict[int, RunSpec] = {}
        self.workers: list[_Worker] = []
        # Results received but not yet handed to the sweep; kept here so an error or interrupt raised
        # while reading another worker's messages does not lose them.
        self.finished: list[tuple[RunSpec, dict[str, Any]]] = []
        context = multiprocessing.get_context("spawn")
        try:
            for _ in range(workers):
                parent_end, child_end = context.Pipe(duplex=True)
                process = context.Process(
                    target=_pool_worker, args=(run, child_end, os.getpid()), daemon=True, name="attnlab-sweep-worker"
                )
                self.workers.append(_Worker(process, parent_end))
                with _sigint_blocked():
                    process.start()
                child_end.close()
        except BaseException:
            self.abort()
            raise

    @property
    def busy(self) -> bool:
        return any(w.job is not None for w in self.workers)

    def submit(self, spec: RunSpec) -> None:
        worker = next(w for w in self.workers if w.job is None)
        index = len(self.specs)
        self.specs[index] = spec
        worker.job = index
        worker.connection.send((index, spec.config, spec.seed, spec.workdir))

    def _receive(self, worker: _Worker, report: bool = True) -> None:
        while worker.connection.poll():
            message = worker.connection.recv()
            kind = message[0]
            if kind == "progress" and not report:
                continue
            if kind == "progress":
                _, index, fraction, text = message
                self.reporter.run_progress(self.specs[index].key, fraction, text)
            elif kind == "log":
                logging.getLogger("attnlab.synthetic.worker").log(message[1], "%s", message[2])
            elif kind == "done":
                self.finished.append((self.specs[message[1]], message[2]))
                worker.job = None
            elif kind == "failed":
                _, index, error, remote = message
                worker.job = None
                if hasattr(error, "add_note"):
                    error.add_note(f"in run {self.specs[index].key} on pool worker {worker.process.pid}:\n{remote}")
                raise error

    def collect(self, timeout: float) -> list[tuple[RunSpec, dict[str, Any]]]:
        watched: list[Any] = [w.connection for w in self.workers] + [w.process.sentinel for w in self.workers]
        mp_connection.wait(watched, timeout=timeout)
        for worker in self.workers:
            try:
                self._receive(worker)
            except (EOFError, OSError):
                pass
            if not worker.process.is_alive():
                holding = f" while running {self.specs[worker.job].key}" if worker.job is not None else ""
                raise WorkerDiedError(
                    f"pool worker {worker.process.pid} exited with code {worker.process.exitcode}{holding}; "
                    f"its checkpoints are kept, rerun to resume"
                )
        finished, self.finished = self.finished, []
        return finished

    def abort(self) -> list[tuple[RunSpec, dict[str, Any]]]:
        """Collect the results already sent, then stop every worker at once."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                self._receive(worker, report=False)
        for worker in self.workers:
            if worker.process.pid is not None and worker.process.is_alive():
                worker.process.terminate()
        self._reap()
        finished, self.finished = self.finished, []
        return finished

    def _reap(self) -> None:
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        for worker in self.workers:
            if worker.process.pid is None:
                worker.connection.close()
                continue
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        self._reap()


class _DaskBackend:
    """Submits runs to a Dask distributed scheduler; per-step progress stays on the workers."""

    def __init__(self, run: RunFunction, address: str) -> None:
        try:
            from distributed import Client
        except ImportError as error:
            raise SchedulerUnavailableError(
                "--scheduler needs dask.distributed: pip install 'dask[distributed]'"
            ) from error
        try:
            self.client = Client(address)
        except (OSError, TimeoutError, ValueError) as error:
            raise SchedulerUnavailableError(
                f"cannot reach the Dask scheduler at {address}: {one_line(error)}"
            ) from error
        self.run = run
        self.slots = max(1, sum(self.client.nthreads().values()))
        self.running: dict[Any, RunSpec] = {}
        self.finished: list[tuple[RunSpec, dict[str, Any]]] = []

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def submit(self, spec: RunSpec) -> None:
        future = self.client.submit(
            _execute, self.run, spec.config, spec.seed, _dask_progress, spec.workdir, pure=False
        )
        self.running[future] = spec

    def _finished(self) -> list[tuple[RunSpec, dict[str, Any]]]:
        done = [f for f in self.running if f.done()]
        # Successful results first, kept on the backend, so a failed run raised below loses none of them.
        for future in [f for f in done if f.status == "finished"]:
            self.finished.append((self.running.pop(future), future.result()))
        for future in [f for f in done if f.status != "finished"]:
            self.running.pop(future)
            future.result()  # raises the run's own error (or CancelledError)
        finished, self.finished = self.finished, []
        return finished

    def collect(self, timeout: float) -> list[tuple[RunSpec, dict[str, Any]]]:
        from distributed import wait

        if self.running and not any(f.done() for f in self.running):
            with contextlib.suppress(TimeoutError, cf.TimeoutError):
                wait(list(self.running), timeout=timeout, return_when="FIRST_COMPLETED")
        return self._finished()

    def abort(self) -> list[tuple[RunSpec, dict[str, Any]]]:
        finished, self.finished = self.finished, []
        for future in [f for f in self.running if f.done() and f.status == "finished"]:
            finished.append((self.running.pop(future), future.result()))
        with contextlib.suppress(Exception):
            self.client.cancel(list(self.running))
        self.running.clear()
        self.close()
        return finished

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _dask_progress(fraction: float, message: str) -> None:
    """Per-step progress stays on the Dask worker (the dashboard shows it); the sweep bar advances per run."""


# ----------------------------------------------------------------------------- the sweep


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into an exception in the main thread for the duration of a sweep."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while an interrupted sweep cleans up (a second Ctrl-C changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Sweep:
    """Claims, runs and records the pending runs of one sweep (see the module docstring)."""

    def __init__(self, pending: list[RunSpec], reporter: Reporter) -> None:
        self.waiting = list(pending)
        self.total = len(pending)
        self.reporter = reporter
        self.locks: dict[str, FileLock] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.executed = 0
        self.from_others = 0
        self.announced_wait = False

    def _finish_elsewhere(self, spec: RunSpec, metrics: dict[str, Any]) -> None:
        self.results[spec.key] = metrics
        self.from_others += 1
        self.reporter.run_finished(spec.key)

    def _claim(self, backend: _Backend) -> bool:
        """Submit every waiting run this process can lock, up to the free slots; returns whether any was."""
        claimed = False
        for spec in list(self.waiting):
            if len(self.locks) >= backend.slots:
                break
            cached = _inspect_metrics(spec.metrics_path)
            if cached.metrics is not None:
                self.waiting.remove(spec)
                self._finish_elsewhere(spec, cached.metrics)
                continue
            lock = _try_claim(spec.lock_path)
            if lock is None:
                continue
            self.waiting.remove(spec)
            cached = _inspect_metrics(spec.metrics_path)
            if cached.metrics is not None:
                lock.release()
                self._finish_elsewhere(spec, cached.metrics)
                continue
            self.locks[spec.key] = lock
            try:
                if cached.problem is not None:
                    quarantine(spec.metrics_path, cached.problem)
                for path in remove_stale_temporaries(spec.run_dir, recursive=True):
                    log.info("removed %s, left by an interrupted write", path)
                backend.submit(spec)
            except BaseException:
                self._release(spec)
                raise
            claimed = True
        return claimed

    def _release(self, spec: RunSpec) -> None:
        lock = self.locks.pop(spec.key, None)
        if lock is not None:
            lock.release()

    def _record(self, spec: RunSpec, metrics: dict[str, Any]) -> None:
        try:
            text = json_text(metrics)
            try:
                atomic_write_text(spec.metrics_path, text)
            except OSError as error:
                raise _write_error(spec.metrics_path, error) from error
            self.results[spec.key] = json.loads(text)
            self.executed += 1
        finally:
            self._release(spec)
        self.reporter.run_finished(spec.key)

    def run(self, backend: _Backend, on_start: Callable[[], None]) -> None:
        try:
            on_start()
            while self.waiting or backend.busy:
                claimed = self._claim(backend)
                finished = backend.collect(POLL_SECONDS if backend.busy else 0.0)
                for spec, metrics in finished:
                    self._record(spec, metrics)
                if self.waiting and not claimed and not finished and not backend.busy:
                    if not self.announced_wait:
                        log.info("waiting for %d run(s) that another process is computing", len(self.waiting))
                        self.announced_wait = True
                    time.sleep(POLL_SECONDS)
        except BaseException as error:
            with _signals_deferred():
                self._abort(backend)
            if isinstance(error, KeyboardInterrupt) and not isinstance(error, SweepInterrupted):
                raise self.interrupted(error) from error
            raise
        else:
            backend.close()

    def interrupted(self, error: KeyboardInterrupt) -> SweepInterrupted:
        remaining = self.total - self.executed - self.from_others
        return SweepInterrupted(getattr(error, "signal_number", signal.SIGINT), self.executed, remaining)

    def _abort(self, backend: _Backend) -> None:
        try:
            leftovers = backend.abort()
        except Exception as error:
            log.warning("could not stop the workers cleanly: %s", one_line(error))
            leftovers = []
        for spec, metrics in leftovers:
            try:
                self._record(spec, metrics)
            except Exception as error:
                log.warning("could not record the finished run %s: %s", spec.key, one_line(error))
        for key in list(self.locks):
            self.locks.pop(key).release()


def _figures_from_manifest(experiment_dir: Path) -> list[Path] | None:
    """The figure files recorded for the experiment, or ``None`` when the record or a figure is missing."""
    text = _read_text(experiment_dir / FIGURES_MANIFEST)
    if not _parses_as_json(text):
        return None
    names = json.loads(text or "null")
    if not isinstance(names, dict) or not isinstance(names.get("figures"), list):
        return None
    paths = [experiment_dir / str(name) for name in names["figures"]]
    return paths if all(p.is_file() for p in paths) else None


def _writable(folder: Path) -> OSError | None:
    """``None`` if a file can be created in ``folder`` (made if missing), else the error that stopped it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}.tmp"
        probe.touch()
        probe.unlink()
    except OSError as error:
        return error
    return None


def _summarize_and_plot(
    task: Task, results: list[Result], experiment_dir: Path, experiment: dict[str, Any], replot: bool
) -> tuple[dict[str, Any], list[Path]]:
    summary = task.summarize(results)
    files = {"config.json": json_text(experiment), "metrics.json": json_text(summary)}
    unchanged = all(_read_text(experiment_dir / name) == text for name, text in files.items())
    figures = _figures_from_manifest(experiment_dir)
    if unchanged and figures is not None and not replot:
        _heal_temporaries(experiment_dir, experiment_dir / LOCK_NAME, recursive=False)
        return summary, figures
    problem = _writable(experiment_dir)
    if problem is not None:
        cache_log.warning(
            "cannot write the summary or figures to %s (%s); results were read from the cache",
            experiment_dir,
            problem.strerror or problem,
        )
        return summary, figures or []
    with _holding(experiment_dir / LOCK_NAME):
        remove_stale_temporaries(experiment_dir, recursive=False)
        for name, text in files.items():
            _sync(experiment_dir / name, text)
        if figures is None or replot or not unchanged:
            figures = list(task.plot(results, summary, experiment_dir))
            names = [
                p.resolve().relative_to(experiment_dir.resolve()).as_posix()
                for p in figures
                if p.resolve().is_relative_to(experiment_dir.resolve())
            ]
            _sync(experiment_dir / FIGURES_MANIFEST, json_text({"figures": names}))
    return summary, figures


def load_results(specs: Sequence[RunSpec]) -> list[Result]:
    """The cached ``(config, seed, metrics)`` of every run, in plan order (read-only)."""
    cached = {s.key: _inspect_metrics(s.metrics_path) for s in specs}
    missing = [s.key for s in specs if cached[s.key].metrics is None]
    if missing:
        raise CacheMissError(f"no cached metrics for {len(missing)} run(s): {', '.join(missing[:5])}")
    return [(s.config, s.seed, cached[s.key].metrics or {}) for s in specs]


def _cache_miss_message(task: Task, specs: Sequence[RunSpec], inspected: dict[str, _Cached]) -> str:
    missing = [s for s in specs if inspected[s.key].metrics is None]
    first = missing[0]
    problem = inspected[first.key].problem
    detail = f"{first.key}: corrupt {first.metrics_path} ({problem})" if problem else first.key
    return (
        f"--replot needs cached metrics, but {len(missing)} of {len(specs)} run(s) of {task.name!r} are "
        f"missing or unreadable (first: {detail}); run without --replot first"
    )


def reproduce(
    task: Task,
    *,
    root: Path,
    quick: bool = False,
    seeds: Sequence[int] = (0,),
    workers: int = 1,
    scheduler: str | None = None,
    replot: bool = False,
    reporter: Reporter | None = None,
) -> SweepOutcome:
    """Run (or reuse) every ``(config, seed)`` of ``task.configs(quick)``, then summarise and plot.

    Args:
        task: the task to reproduce.
        root: the results root (``results/`` by default in the CLI).
        quick: use the task's quick experiment.
        seeds: the seeds, run for every config.
        workers: ``<= 1`` runs in this process; more uses a local process pool of that size.
        scheduler: a Dask scheduler address (``tcp://host:port``); overrides ``workers``.
        replot: never train; summarise and redraw from cached metrics (raises
            :class:`CacheMissError` if a run is missing, :class:`~attnlab.io.CacheWriteError` if the
            experiment folder is read-only).
        reporter: receives progress events.

    Raises:
        SweepArgumentError: bad ``seeds``, ``workers`` or ``scheduler``.
        SchedulerUnavailableError: the scheduler cannot be reached (only asked when a run must train).
        CacheWriteError: a run must train, or a corrupt file be moved aside, in a read-only folder.
        SweepInterrupted: SIGINT or SIGTERM; finished runs are kept.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    seed_list = _validate_seeds(seeds)
    if scheduler is not None:
        validate_scheduler_address(scheduler)
    reporter = reporter or SilentReporter()
    configs = task.configs(quick)
    if not configs:
        raise SweepArgumentError(f"task {task.name!r} declares no configs")
    root = Path(root)
    specs = plan(task, configs, seed_list, root)
    inspected = {s.key: _inspect_metrics(s.metrics_path) for s in specs}
    pending = [s for s in specs if inspected[s.key].metrics is None]
    if replot and pending:
        raise CacheMissError(_cache_miss_message(task, specs, inspected))
    experiment_dir = root / task.name / experiment_hash(task.name, configs, seed_list, quick)
    if replot and (problem := _writable(experiment_dir)) is not None:
        raise CacheWriteError(
            problem.errno or errno.EACCES,
            f"--replot cannot write figures: {experiment_dir} is not writable ({problem.strerror or problem}); "
            f"nothing was changed",
        )
    if pending and (problem := _writable(root / task.name)) is not None:
        corrupt = [s for s in pending if inspected[s.key].problem is not None]
        unreadable = f", {len(corrupt)} of them unreadable (first: {corrupt[0].metrics_path})" if corrupt else ""
        raise CacheWriteError(
            problem.errno or errno.EACCES,
            f"cannot write to the results folder {root / task.name} ({problem.strerror or problem}); "
            f"{len(pending)} run(s) need computing{unreadable}",
        )
    try:
        _sync_config_files(specs)
    except CacheWriteError:
        if pending:
            raise
        cache_log.warning(
            "cannot write the config files under %s (read-only); the cached runs are read as they are", root / task.name
        )
    pending_keys = {p.key for p in pending}
    for spec in specs:
        if spec.key not in pending_keys:
            _heal_temporaries(spec.run_dir, spec.lock_path, recursive=True)
    for config_dir in {s.config_dir for s in specs}:
        _heal_temporaries(config_dir, config_dir / LOCK_NAME, recursive=False)
    sweep = _Sweep(pending, reporter)
    if pending:
        backend: _Backend
        with _sigterm_interrupts():
            try:
                try:
                    if scheduler is not None:
                        backend = _DaskBackend(task.run, scheduler)
                    elif workers > 1 and len(pending) > 1:
                        backend = _PoolBackend(task.run, min(workers, len(pending)), reporter)
                    else:
                        backend = _SerialBackend(task.run, reporter)
                except KeyboardInterrupt as error:
                    raise sweep.interrupted(error) from error
                # Announced once the backend is up, so a scheduler that cannot be reached is one error
                # line with no progress display before it.
                sweep.run(backend, on_start=lambda: reporter.sweep_started(len(specs), len(specs) - len(pending)))
            finally:
                with contextlib.suppress(CacheWriteError):
                    _sync_config_metrics(specs)
    else:
        reporter.sweep_started(len(specs), len(specs))
        try:
            _sync_config_metrics(specs)
        except CacheWriteError as error:
            cache_log.warning("%s; the per-config metrics files were left as they are", error)
    metrics_by_key = {key: c.metrics for key, c in inspected.items() if c.metrics is not None} | sweep.results
    results = [(s.config, s.seed, metrics_by_key[s.key]) for s in specs]
    experiment = {
        "task": task.name,
        "quick": quick,
        "seeds": seed_list,
        "configs": {config_hash(c): config_to_dict(c) for c in configs},
    }
    summary, figures = _summarize_and_plot(task, results, experiment_dir, experiment, replot)
    return SweepOutcome(
        task=task.name,
        results=results,
        summary=summary,
        experiment_dir=experiment_dir,
        figures=list(figures),
        executed=sweep.executed,
        cached=len(specs) - sweep.executed,
        from_other_sweeps=sweep.from_others,
    )
