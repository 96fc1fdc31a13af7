"""Background work: named periodic tasks, each run in its own unit of work.

A domain with background work offers ``periodic_tasks(settings) -> list[PeriodicTask]`` in its
``tasks.py`` and adds that module to ``TASK_MODULES``. The worker runs every task in a thread
of its own (a slow task never delays another), each run in its own transaction
(``citygrid.kit.db.unit_of_work``): it commits when the function returns and rolls back when
it raises. A failed run is logged (the exception's type only: its text may hold personal data)
and the task runs again at its next tick. ``stop()`` lets runs in progress finish.

    from citygrid.kit.worker import PeriodicTask, Worker

    def deliver(session: Session) -> int:          # returns how much it did
        ...

    worker = Worker([PeriodicTask("exchange.outbox", 0.5, deliver, drain=True)],
                    database_url=settings.database_url)
    worker.start()                     # or: with worker: ...
    worker.wake("exchange.outbox")     # run now instead of at the next tick
    worker.stop()

The same tasks run embedded in ``citygrid serve`` (the app's lifespan; off with
``CITYGRID_EMBEDDED_WORKER=false``) and alone as ``citygrid worker``. Several workers may run
at once, in one process or many: tasks must claim their work in the database (advisory locks,
``FOR UPDATE SKIP LOCKED``), never through memory.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from types import FrameType, TracebackType

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citygrid.kit.db import unit_of_work
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings

logger = logging.getLogger("citygrid.worker")

#: Modules whose ``periodic_tasks(settings)`` every worker runs.
TASK_MODULES: tuple[str, ...] = (
    "citygrid.audit.tasks",
    "citygrid.exchange.tasks",
    "citygrid.exchange.webhooks.tasks",
    "citygrid.cases.tasks",
    "citygrid.demo.tasks",
)

#: A task's work: gets the run's session, returns how much it did (None or 0: nothing).
TaskFunction = Callable[[Session], int | None]

# A draining task runs at once again at most this often before it waits for its tick.
MAX_DRAIN_RUNS = 1000


@dataclass(frozen=True)
class PeriodicTask:
    """A named piece of work that runs every ``interval`` seconds.

    With ``drain``, a run that reports work done (a result above 0) is followed at once by
    another, until one finds nothing to do: a backlog empties without waiting for ticks.
    """

    name: str
    interval: float
    run: TaskFunction
    drain: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a periodic task needs a name")
        if not self.interval > 0:
            raise ValueError(f"task {self.name}: the interval must be positive")


@dataclass(frozen=True)
class TaskStatus:
    """What a task has done so far in this worker (for tests, health checks and logs)."""

    name: str
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None  # the exception's type, never its text
    last_result: int | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None


def _error_name(exc: BaseException) -> str:
    """The exception's type, with the driver's for database errors (their text names values)."""
    name = type(exc).__name__
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        name = f"{name}({type(exc.orig).__name__})"
    return name


class Worker:
    """Runs periodic tasks in background threads until ``stop()``."""

    def __init__(self, tasks: Sequence[PeriodicTask], *, database_url: str | None = None) -> None:
        names = [task.name for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"periodic tasks named twice: {', '.join(duplicates)}")
        self.database_url = database_url
        self.tasks: dict[str, PeriodicTask] = {task.name: task for task in tasks}
        self._status = {name: TaskStatus(name) for name in self.tasks}
        self._wakeups = {name: threading.Event() for name in self.tasks}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ running

    def run_once(self, name: str) -> int | None:
        """Run one task now in the caller's thread, in its own unit of work; None if it failed."""
        task = self.tasks[name]
        self._update(name, last_started_at=utcnow())
        try:
            with unit_of_work(self.database_url) as session:
                result = task.run(session)
        except Exception as exc:
            self._failed(task, exc)
            return None
        with self._lock:
            status = self._status[name]
            if status.consecutive_failures:
                logger.info(
                    "task %s recovered after %d failed runs", name, status.consecutive_failures
                )
            self._status[name] = replace(
                status,
                runs=status.runs + 1,
                consecutive_failures=0,
                last_result=result,
                last_finished_at=utcnow(),
            )
        if result:
            logger.debug("task %s did %d", name, result)
        return result

    def _failed(self, task: PeriodicTask, exc: Exception) -> None:
        error = _error_name(exc)
        with self._lock:
            status = self._status[task.name]
            failures = status.consecutive_failures + 1
            self._status[task.name] = replace(
                status,
                runs=status.runs + 1,
                failures=status.failures + 1,
                consecutive_failures=failures,
                last_error=error,
                last_result=None,
                last_finished_at=utcnow(),
            )
        # The 1st, 2nd, 4th, 8th ... failure in a row: a lasting outage does not flood the log.
        if failures & (failures - 1) == 0:
            logger.warning(
                "task %s failed with %s (%d in a row); retrying in %.1f s",
                task.name,
                error,
                failures,
                task.interval,
            )

    def _update(self, name: str, **changes: object) -> None:
        with self._lock:
            self._status[name] = replace(self._status[name], **changes)  # type: ignore[arg-type]

    def _loop(self, task: PeriodicTask) -> None:
        wakeup = self._wakeups[task.name]
        while not self._stopping.is_set():
            result = self.run_once(task.name)
            drained = 1
            while (
                task.drain
                and result
                and result > 0
                and drained < MAX_DRAIN_RUNS
                and not self._stopping.is_set()
            ):
                result = self.run_once(task.name)
                drained += 1
            wakeup.wait(task.interval)
            wakeup.clear()

    def start(self) -> None:
        """Start one background thread per task (returns at once)."""
        if self._threads:
            raise RuntimeError("the worker is already running")
        self._stopping.clear()
        for task in self.tasks.values():
            thread = threading.Thread(
                target=self._loop, args=(task,), name=f"citygrid-worker:{task.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        logger.info("worker started: %s", ", ".join(self.tasks) or "no tasks")

    def wake(self, name: str | None = None) -> None:
        """Run a task (every task when ``name`` is None) now instead of at its next tick."""
        for task_name in [name] if name is not None else list(self.tasks):
            self._wakeups[task_name].set()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Ask the tasks to stop and wait for runs in progress; False if one outlasted timeout."""
        self._stopping.set()
        self.wake()
        if not self._threads:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                logger.warning("worker: %s still running at shutdown", thread.name)
                stopped = False
        self._threads = []
        logger.info("worker stopped")
        return stopped

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return bool(self._threads) and not self._stopping.is_set()

    def status(self) -> dict[str, TaskStatus]:
        """A snapshot of every task's status, by name."""
        with self._lock:
            return dict(self._status)

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ foreground

    def run_forever(self, *, handle_signals: bool = True) -> None:
        """Run until SIGINT/SIGTERM (or ``stop()`` from another thread), then stop cleanly."""
        with self._signals_stop_worker(handle_signals):
            self.start()
            try:
                while not self._stopping.wait(1.0):
                    pass
            finally:
                self.stop()

    @contextmanager
    def _signals_stop_worker(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("worker: %s received, stopping", signal.Signals(signum).name)
            self._stopping.set()
            self.wake()

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def collect_tasks(settings: Settings) -> list[PeriodicTask]:
    """The periodic tasks of every module in ``TASK_MODULES``, for these settings."""
    tasks: list[PeriodicTask] = []
    for module_name in TASK_MODULES:
        module = importlib.import_module(module_name)
        tasks.extend(module.periodic_tasks(settings))
    return tasks


def worker_for(settings: Settings) -> Worker:
    """A worker running every registered task against the settings' database."""
    return Worker(collect_tasks(settings), database_url=settings.database_url)


def run_worker(settings: Settings) -> None:
    """Run every registered task in the foreground until SIGINT or SIGTERM (``citygrid worker``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = worker_for(settings)
    worker.run_forever()
