"""Independent tasks with dependencies, run in this process, a process pool or on Ray.

A :class:`Task` names a module-level function and its arguments; the values of
the tasks it ``needs`` are appended to those arguments when it runs, so a task
runs only after the tasks it needs. Every backend runs the same tasks through
the same function (:func:`execute`), which turns an exception into a failed
:class:`Outcome` that names the task: one bad task never stops the others, and
a task whose input failed is reported as not run, naming that input.

Backends (pick one with :func:`make_backend`):

- :class:`SerialBackend`: in this process, in the given order (the reference).
- :class:`PoolBackend`: a pool of spawned processes; a worker that dies (killed,
  out of memory) breaks the pool, which is started again; the tasks it was
  running are rerun one at a time, and a task whose worker dies while it runs
  alone is retried up to ``max_retries`` times before it counts as failed.
- :class:`RayBackend`: Ray tasks on a local instance or on a cluster
  (``address``). A needed value travels through Ray's object store straight to
  the tasks that need it (zero-copy for numpy arrays on one node), and Ray's
  own retries handle a worker that dies.

Values a task returns cross process boundaries by pickle: task functions live
at module level in an importable module (on a cluster: installed on every node).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from deeptrack.errors import ConfigError

__all__ = [
    "Backend", "Missing", "Outcome", "PoolBackend", "Progress", "RayBackend", "SerialBackend",
    "Task", "execute", "make_backend", "ray_available", "run_tasks",
]

logger = logging.getLogger(__name__)

#: Attempts after the first for a task whose worker process died.
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        name: unique within a run; failures are reported under it.
        fn: a module-level function (picklable by reference).
        args: its first positional arguments.
        needs: names of earlier tasks whose values are appended to ``args``, in order.
        keep: whether the value is returned to the caller; false for
            intermediate values (RoI maps), which are dropped once every task
            that needs them has run.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    needs: tuple[str, ...] = ()
    keep: bool = True


@dataclass(frozen=True)
class Outcome:
    """What became of one task.

    Attributes:
        name: the task's name.
        ok: whether it ran to the end.
        value: what it returned (None when failed or not kept).
        error: one line on why it failed ("" when ok).
        seconds: time spent in the task's function (0 when it never started).
        attempts: how many times it was started (more than 1 after a worker died).
        node: the host (and pid) it ran on.
    """

    name: str
    ok: bool
    value: Any = None
    error: str = ""
    seconds: float = 0.0
    attempts: int = 1
    node: str = ""


@dataclass(frozen=True)
class Missing:
    """Stands in for the value of a task that failed, so what needs it is not run."""

    name: str


#: Called after each task with its outcome, the tasks finished so far and the total.
Progress = Callable[[Outcome, int, int], None]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def execute(name: str, fn: Callable[..., Any], args: Sequence[Any],
            needed: Sequence[Any]) -> tuple[Outcome, Any]:
    """Run one task where it was sent; return its outcome (without value) and its value.

    Exceptions become a failed outcome (logged with their traceback); a
    :class:`Missing` input means the task is not run. The value of a failed
    task is a :class:`Missing`, so the tasks that need it are not run either.
    """
    node = f"{os.uname().nodename}:{os.getpid()}"
    missing = [v.name for v in needed if isinstance(v, Missing)]
    if missing:
        return (Outcome(name, False, error=f"not run: needs {', '.join(missing)}, which failed",
                        node=node), Missing(name))
    start = time.perf_counter()
    try:
        value = fn(*args, *needed)
    except Exception as e:  # noqa: BLE001 - reported by name; the other tasks go on
        logger.debug("task %s failed:\n%s", name, traceback.format_exc())
        return (Outcome(name, False, error=_one_line(e), seconds=time.perf_counter() - start,
                        node=node), Missing(name))
    return Outcome(name, True, seconds=time.perf_counter() - start, node=node), value


def _check(tasks: Sequence[Task]) -> None:
    """Raise unless names are unique and every task needs only earlier ones."""
    seen: set[str] = set()
    for t in tasks:
        if t.name in seen:
            raise ConfigError(f"two tasks are named {t.name!r}")
        unknown = [n for n in t.needs if n not in seen]
        if unknown:
            raise ConfigError(f"task {t.name!r} needs {unknown[0]!r}, which is not an earlier task")
        seen.add(t.name)


class _Tally:
    """Outcomes in, progress out; drops a value once every task that needs it has finished."""

    def __init__(self, tasks: Sequence[Task], progress: Progress | None) -> None:
        self.tasks = {t.name: t for t in tasks}
        self.progress = progress
        self.outcomes: dict[str, Outcome] = {}
        self.values: dict[str, Any] = {}
        self.waiting = {t.name: 0 for t in tasks}  # tasks still to finish that need it
        for t in tasks:
            for n in t.needs:
                self.waiting[n] += 1

    def record(self, outcome: Outcome, value: Any) -> list[str]:
        """Store one finished task; return the names whose values are no longer needed."""
        task = self.tasks[outcome.name]
        self.values[outcome.name] = value
        if outcome.ok and task.keep:
            outcome = replace(outcome, value=value)
        self.outcomes[outcome.name] = outcome
        released = [outcome.name] if self.waiting[outcome.name] == 0 else []
        for n in task.needs:
            self.waiting[n] -= 1
            if self.waiting[n] == 0:
                released.append(n)
        for n in released:
            self.values.pop(n, None)
        if self.progress is not None:
            self.progress(outcome, len(self.outcomes), len(self.tasks))
        return released

    def ordered(self, tasks: Sequence[Task]) -> list[Outcome]:
        return [self.outcomes[t.name] for t in tasks]


class Backend(Protocol):
    """Runs a list of tasks (each after the tasks it needs) and returns their outcomes."""

    workers: int

    def run(self, tasks: Sequence[Task], progress: Progress | None = None) -> list[Outcome]:
        """Return one :class:`Outcome` per task, in the order of ``tasks``."""
        ...

    def close(self) -> None:
        """Release what the backend started (processes, a local Ray instance)."""
        ...


def run_tasks(tasks: Sequence[Task], backend: Backend | None = None,
              progress: Progress | None = None) -> list[Outcome]:
    """Run ``tasks`` on ``backend`` (default: serially, in this process).

    Raises:
        ConfigError: duplicate names, or a task that needs a later or unknown one.
    """
    tasks = list(tasks)
    _check(tasks)
    return (backend or SerialBackend()).run(tasks, progress)


# ---------------------------------------------------------------- serial


class SerialBackend:
    """Every task in this process, in order: the reference the parallel backends must equal."""

    workers = 1

    def run(self, tasks: Sequence[Task], progress: Progress | None = None) -> list[Outcome]:
        tally = _Tally(tasks, progress)
        for t in tasks:
            outcome, value = execute(t.name, t.fn, t.args, [tally.values[n] for n in t.needs])
            tally.record(outcome, value)
        return tally.ordered(tasks)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- process pool


def _init_worker() -> None:
    # One thread per worker, as Ray gives its one-CPU tasks: workers side by side would
    # otherwise each start a thread per core. torch reads this when a task first imports
    # it; BLAS may be loaded already (the tracker limits it itself, blas_threads).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


@dataclass
class PoolBackend:
    """A pool of ``workers`` spawned processes (the fallback when Ray is not installed).

    Args:
        workers: processes; each runs one task at a time on one thread.
        max_retries: attempts after the first for a task whose worker died. A worker
            death breaks the whole pool; a task that was in it with others is rerun
            alone first, and only a death while alone counts against it.
    """

    workers: int = 2
    max_retries: int = DEFAULT_MAX_RETRIES
    _pool: Any = field(default=None, init=False, repr=False)

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            # spawn, not fork: the parent may hold torch's or BLAS's threads
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker)
        return self._pool

    def run(self, tasks: Sequence[Task], progress: Progress | None = None) -> list[Outcome]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        tally = _Tally(tasks, progress)
        position = {t.name: i for i, t in enumerate(tasks)}
        attempts = {t.name: 0 for t in tasks}
        deaths = {t.name: 0 for t in tasks}  # worker deaths while the task ran alone
        todo = list(tasks)  # not yet submitted, in order
        # In the pool when it broke with others: the culprit is unknown, so each of these
        # runs again alone before anything else, and only a death alone counts against it.
        isolate: list[Task] = []
        running: dict[Any, Task] = {}

        def submit(t: Task) -> None:
            attempts[t.name] += 1
            needed = [tally.values[n] for n in t.needs]
            running[self._start().submit(execute, t.name, t.fn, t.args, needed)] = t

        def submit_ready() -> None:
            if isolate:
                if not running:
                    submit(isolate.pop(0))
                return
            for t in list(todo):
                if all(n in tally.outcomes for n in t.needs):
                    todo.remove(t)
                    submit(t)

        submit_ready()
        while running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = []
            for future in done:
                t = running.pop(future)
                try:
                    outcome, value = future.result()
                except BrokenProcessPool:
                    broken.append(t)
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. a value that cannot be pickled
                    outcome, value = Outcome(t.name, False, error=_one_line(e)), Missing(t.name)
                tally.record(replace(outcome, attempts=attempts[t.name]), value)
            if broken:
                # A dead worker breaks the whole pool: every task still in it fails the
                # same way. Start a new pool; a task alone in it is the culprit and is
                # retried up to max_retries times, the others are suspects (see isolate).
                broken += [running.pop(f) for f in list(running)]
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if len(broken) > 1:
                    logger.warning("tasks %s: a worker process died; rerunning each alone",
                                   ", ".join(t.name for t in broken))
                    isolate.extend(sorted(broken, key=lambda t: position[t.name]))
                else:
                    (t,) = broken
                    deaths[t.name] += 1
                    if deaths[t.name] > self.max_retries:
                        tally.record(Outcome(t.name, False, attempts=attempts[t.name],
                                             error=f"worker process died "
                                                   f"({attempts[t.name]} attempts)"),
                                     Missing(t.name))
                    else:
                        logger.warning("task %s: worker process died; retrying", t.name)
                        isolate.append(t)
            submit_ready()
        return tally.ordered(tasks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ---------------------------------------------------------------- Ray


def ray_available() -> bool:
    """Return whether Ray can be imported (the optional extra ``deeptrack[ray]``)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _ray_execute(name: str, fn: Callable[..., Any], args: Sequence[Any], *needed: Any):
    import ray

    outcome, value = execute(name, fn, args, needed)
    node = ray.get_runtime_context().get_node_id()[:12]
    return replace(outcome, node=f"{outcome.node} (Ray node {node})"), value


def _token_mode_for_clusters() -> None:
    """Send Ray's authentication token to a cluster, as ``ray.init`` does for a local instance.

    ``ray start`` turns token authentication on by default, but a driver that
    connects to it sends the token only when ``RAY_AUTH_MODE=token``, read when
    Ray is first imported. Set it here, before that import, if a token exists.
    """
    if "RAY_AUTH_MODE" in os.environ or "ray" in sys.modules:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(path):
        os.environ["RAY_AUTH_MODE"] = "token"


@dataclass
class RayBackend:
    """Ray tasks: a local instance (``address`` None) or a cluster.

    Connects on first use; a local instance this backend started is shut
    down by :meth:`close`, a cluster is only disconnected from. When Ray is
    already initialised in this process, that connection is used as it is.

    Args:
        address: None for a new local instance with ``workers`` CPUs, else a
            cluster address (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``).
        workers: CPUs of the local instance (ignored with ``address``).
        max_retries: Ray's retries of a task whose worker died.
        init_kwargs: more arguments of ``ray.init``.
    """

    address: str | None = None
    workers: int = 2
    max_retries: int = DEFAULT_MAX_RETRIES
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    _started: bool = field(default=False, init=False, repr=False)

    def connect(self):
        """Return the ``ray`` module, connected (started locally when no address was given)."""
        if self.address is not None:
            _token_mode_for_clusters()
        try:
            import ray
        except ImportError:
            raise ConfigError("Ray is not installed: pip install 'deeptrack[ray]'") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                                      **self.init_kwargs}
            if self.address is None:
                kwargs.setdefault("num_cpus", self.workers)
                kwargs.setdefault("include_dashboard", False)
            else:
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise ConfigError(f"cannot connect to the Ray cluster at {self.address}: "
                                  f"{_one_line(e)}") from None
            self._started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return ray

    def run(self, tasks: Sequence[Task], progress: Progress | None = None) -> list[Outcome]:
        ray = self.connect()
        remote = ray.remote(_ray_execute)
        options = {"num_returns": 2, "max_retries": self.max_retries, "retry_exceptions": False}
        tally = _Tally(tasks, progress)
        values: dict[str, Any] = {}  # name -> ref of its value, while a task may need it
        statuses: dict[str, Any] = {}
        pending: dict[Any, Task] = {}
        for t in tasks:
            status, value = remote.options(name=t.name, **options).remote(
                t.name, t.fn, t.args, *[values[n] for n in t.needs])
            values[t.name], statuses[t.name] = value, status
            pending[status] = t
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            t = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
                value = ray.get(values[t.name]) if outcome.ok and t.keep else None
            except ray.exceptions.RayError as e:
                outcome, value = self._failure(ray, t, statuses, e), None
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(values[t.name])  # seen: Ray need not log it as unhandled
            for n in tally.record(outcome, value):
                values.pop(n, None)  # the object store may free it
        return tally.ordered(tasks)

    def _failure(self, ray, task: Task, statuses: dict[str, Any], error: Exception) -> Outcome:
        """Describe a task Ray could not run: its worker died, or an input's did."""
        for n in task.needs:
            try:
                failed = not ray.get(statuses[n]).ok
            except ray.exceptions.RayError:
                failed = True
            if failed:
                return Outcome(task.name, False, error=f"not run: needs {n}, which failed")
        if isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
            why = (f"worker process died ({self.max_retries + 1} attempts)"
                   if isinstance(error, ray.exceptions.WorkerCrashedError)
                   else "its node died")
            return Outcome(task.name, False, error=why, attempts=self.max_retries + 1)
        return Outcome(task.name, False, error=_one_line(error))

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_backend(workers: int | None = None, address: str | None = None, *,
                 engine: str = "auto") -> Backend:
    """Return the backend for ``workers`` local processes, or for the Ray cluster at ``address``.

    Args:
        workers: local workers; None or 1 with no address runs serially here.
        address: a Ray cluster address; ``workers`` is then ignored.
        engine: ``auto`` (Ray when installed, else a process pool), ``ray`` or ``pool``.

    Raises:
        ConfigError: ``workers`` < 1, an unknown engine, or Ray asked for and absent.
    """
    if engine not in ("auto", "ray", "pool"):
        raise ConfigError(f"engine {engine!r}: expected auto, ray or pool")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers = {workers}: expected an integer >= 1")
    if address is not None:
        if engine == "pool":
            raise ConfigError("a Ray address needs the ray engine, not the process pool")
        return RayBackend(address=address)
    if workers is None or (workers == 1 and engine == "auto"):
        return SerialBackend()
    if engine == "ray" or (engine == "auto" and ray_available()):
        if not ray_available():
            raise ConfigError("Ray is not installed: pip install 'deeptrack[ray]'")
        return RayBackend(workers=workers)
    return PoolBackend(workers=workers)


def describe(backend: Backend) -> str:
    """Say in a few words where tasks run (for logs and result files)."""
    if isinstance(backend, RayBackend):
        where = backend.address or "a local instance"
        return f"Ray ({where}, {backend.workers} CPUs)"
    if isinstance(backend, PoolBackend):
        return f"process pool ({backend.workers} workers)"
    return "serial (this process)"


def failures(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Return the failed outcomes."""
    return [o for o in outcomes if not o.ok]
