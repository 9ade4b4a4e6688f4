"""Executors: run ``run_worker`` N times - inline, in a local process pool, or on Dask.

Each returns the workers' reports and the errors of workers that died (a killed process,
a lost Dask worker): those never stop the round's other workers, and the partitions a dead
worker held are taken over once their lease is released or expires. Local worker processes
die with the command that started them, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial

from chariot.aggregate.declared import Declared
from chariot.aggregate.worker import WorkerReport, run_worker
from chariot.config import Settings
from chariot.errors import ConfigError, ConnectionFailed

EXECUTORS = ("inline", "process", "dask")
POLL_SECONDS = 0.5
DASK_CONNECT_SECONDS = 15
PARENT_WATCH_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Round:
    reports: list[WorkerReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


Tick = Callable[[], None]  # called every POLL_SECONDS while workers run (progress, reaping)


def choose_executor(executor: str | None, workers: int) -> str:
    if executor is None or executor == "auto":
        return "inline" if workers == 1 else "process"
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    return executor


def run_round(
    executor: str,
    settings: Settings,
    run_id: int,
    workers: int,
    scheduler: str | None,
    tick: Tick,
    snapshot: str | None = None,
    declared: Sequence[Declared] = (),
    pool: ProcessPoolExecutor | None = None,
) -> Round:
    """One round of workers computing the ``declared`` aggregations; each reads the sink
    through ``snapshot`` (exported by the command), so every partition of the run sees the
    same state of the tables. ``pool``: processes already started (``warm_pool``)."""
    worker = partial(run_worker, snapshot=snapshot, declared=tuple(declared))
    if executor == "inline":
        return _inline(worker, settings, run_id, tick)
    if executor == "process":
        return _process_pool(worker, settings, run_id, workers, tick, pool)
    return _dask(worker, settings, run_id, workers, scheduler, tick)


@contextmanager
def warm_pool(executor: str, workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """Start the local worker processes now, so that they start Python and import while
    the command takes its snapshot and plans the run (seconds on a busy machine); None
    for the other executors. Shut down (idle workers just exit) when the block ends."""
    if executor != "process":
        yield None
        return
    pool = _new_pool(workers)
    try:
        for _ in range(workers):  # one task per process: the pool spawns them on demand
            pool.submit(_ready)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """A warm-up task: unpickling it imports the worker's modules."""


Worker = Callable[..., WorkerReport]


def _inline(worker: Worker, settings: Settings, run_id: int, tick: Tick) -> Round:
    return Round(reports=[worker(settings, run_id, after_partition=tick)])


def _process_pool(
    worker: Worker,
    settings: Settings,
    run_id: int,
    workers: int,
    tick: Tick,
    warm: ProcessPoolExecutor | None = None,
) -> Round:
    result = Round()
    with ExitStack() as owned:
        pool = warm if warm is not None else owned.enter_context(_new_pool(workers))
        futures = [
            pool.submit(worker, settings, run_id, parent_pid=os.getpid()) for _ in range(workers)
        ]
        _collect(futures, result, tick)
    return result


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the caller may have threads (progress display) whose locks a fork
    # would copy in a held state.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker process when its parent does. Otherwise a killed
    command leaves its workers behind, blocked forever on the pool's queue.

    Linux delivers SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); a watchdog thread
    polling the parent pid covers other systems. The pool is started and used by one thread
    of the parent, which outlives it (the death signal follows the creating thread).
    """
    _arm_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="chariot-parent-watch", daemon=True
    ).start()


def _arm_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no usable libc: the watchdog still covers it
        pass


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def _collect(futures: list[Future[WorkerReport]], result: Round, tick: Tick) -> None:
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        for future in finished:
            error = future.exception()
            if error is None:
                result.reports.append(future.result())
            else:  # keep the first failures, let the other workers finish
                result.errors.append(f"{type(error).__name__}: {error}")
        tick()


def check_executor(executor: str, scheduler: str | None) -> None:
    """Fail before any work when the chosen executor cannot run."""
    if executor != "dask":
        return
    if not scheduler:
        raise ConfigError(
            "--executor dask needs the address of a running Dask scheduler",
            hint="pass --scheduler tcp://HOST:8786 (or set CHARIOT_RUN__SCHEDULER)",
        )
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the dask executor needs the optional dependency dask[distributed]",
            hint="pip install 'chariot[dask]'",
        ) from None


def _dask(
    worker: Worker,
    settings: Settings,
    run_id: int,
    workers: int,
    scheduler: str | None,
    tick: Tick,
) -> Round:
    check_executor("dask", scheduler)
    from distributed import Client

    try:
        client = Client(scheduler, timeout=DASK_CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ConnectionFailed(
            f"Dask scheduler at {scheduler}: {error}",
            hint="is the scheduler running and reachable?",
        ) from None
    result = Round()
    try:
        futures = [
            client.submit(
                worker,
                settings,
                run_id,
                pure=False,
                key=f"chariot-agg-{run_id}-{uuid.uuid4().hex}",
            )
            for index in range(workers)
        ]
        pending = futures
        while pending:
            time.sleep(POLL_SECONDS)
            for future in [f for f in pending if f.done()]:
                if future.status == "finished":
                    result.reports.append(future.result())
                else:  # a task that errored, or lost its worker more often than allowed
                    failure = future.exception()
                    result.errors.append(f"{type(failure).__name__}: {failure}")
            pending = [f for f in pending if not f.done()]
            tick()
    finally:
        client.close()
    return result
