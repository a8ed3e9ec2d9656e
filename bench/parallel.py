"""Where parallel work runs: local worker processes, or a Dask cluster.

Only the driver writes results (to the store); workers compute and return.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

#: One thread per worker process: the parallelism is across molecules, and a
#: BLAS or OpenMP pool per process on a busy machine is 3x slower (measured).
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: How many times work whose worker process died is submitted again before it is
#: recorded as failed (oracle calls, dataset molecules). A killed worker (the OOM
#: killer, a preempted node) is usually transient; a molecule that kills every
#: worker it meets must still end, as a failure, after a bounded number of tries.
#: Only local pools need this: Dask reschedules the work of a lost worker itself
#: (``distributed.scheduler.allowed-failures``) and then raises ``KilledWorker``,
#: which is not retried again.
WORKER_RETRIES = 2


@dataclass(frozen=True)
class JobResult:
    """How one job ended: its ``value``, or the ``error`` it ended with, after ``attempts`` tries."""

    key: Hashable
    value: Any = None
    error: BaseException | None = None
    attempts: int = 1


def run_jobs(executor: Executor | None, fn: Callable[..., Any], jobs: Iterable[tuple[Hashable, tuple]],
             window: int | None = None, local: Callable[..., Any] | None = None) -> Iterator[JobResult]:
    """Run ``fn(*args)`` for each ``(key, args)`` and yield each :class:`JobResult` as it ends.

    The one rule for batch work (oracle calls, analysis chains, dataset molecules):
    a job whose worker process died (:class:`concurrent.futures.BrokenExecutor`) is
    submitted again, at most :data:`WORKER_RETRIES` times; any other exception is
    that job's ``error``, never the end of the batch. Callers decide what an error
    means for their records (a failed result, a rejected molecule).

    A dying worker breaks the whole local pool, so every job in flight then fails
    alike and the one that killed it cannot be told apart. Those jobs are therefore
    retried one at a time, with nothing beside them, before any new job starts: a
    molecule that kills every worker it meets uses up only its own retries, and
    the others run to completion.

    Parameters
    ----------
    executor : Executor or None
        None runs the jobs here, in order (``local`` instead of ``fn`` when given:
        work that needs no pickling, e.g. a bound method).
    window : int, optional
        At most this many jobs in flight, taken from ``jobs`` as others end (a
        build then finishes nearly in input order); all at once when None.
    """
    jobs = iter(jobs)
    if executor is None:
        run_here = local or fn
        for key, args in jobs:
            try:
                yield JobResult(key, run_here(*args))
            except Exception as exc:  # noqa: BLE001 - the job's error, reported to the caller
                yield JobResult(key, error=exc)
        return
    in_flight: dict[Future, tuple[Hashable, tuple, int]] = {}
    suspects: deque[tuple[Hashable, tuple, int]] = deque()  # in flight when a worker died: retried alone

    def submit(key: Hashable, args: tuple, attempt: int) -> JobResult | None:
        """Hand one job to the executor; its failure when the executor refuses it (a broken plain pool)."""
        try:
            in_flight[executor.submit(fn, *args)] = (key, args, attempt)
        except BrokenExecutor as exc:
            return JobResult(key, error=exc, attempts=attempt)
        return None

    while True:
        if not in_flight:  # start: the next suspect alone, else a window of new jobs
            starts = [suspects.popleft()] if suspects else \
                [(key, args, 1) for key, args in itertools.islice(jobs, window)]
            if not starts:
                return
            refused = [r for r in (submit(*start) for start in starts) if r is not None]
            yield from refused
            if not in_flight:
                continue
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            key, args, attempt = in_flight.pop(future)
            try:
                result = JobResult(key, future.result(), attempts=attempt)
            except BrokenExecutor as exc:  # a worker died (perhaps killed by another job)
                if attempt <= WORKER_RETRIES:
                    suspects.append((key, args, attempt + 1))
                    continue
                result = JobResult(key, error=exc, attempts=attempt)
            except Exception as exc:  # noqa: BLE001 - a worker that raised: that job's error
                result = JobResult(key, error=exc, attempts=attempt)
            retrying = suspects or any(a > 1 for _, _, a in in_flight.values())  # a suspect runs alone
            if window and not retrying:
                # keep the window full (its successor first, so that a worker never idles)
                for next_key, next_args in itertools.islice(jobs, window - len(in_flight)):
                    refused = submit(next_key, next_args, 1)
                    if refused is not None:
                        yield refused
            yield result


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: on Linux, ask the kernel to SIGTERM this worker when the
    driver dies, so a killed build never leaves orphan workers computing (and exit
    at once if the driver died before this worker got here)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def make_executor(workers: int, dask: str | None) -> Executor:
    """Local processes, or a Dask cluster (``"local"`` or a scheduler address).

    Worker processes start with one BLAS/OpenMP thread each: the variables are
    set in this process's environment, which spawned workers inherit (they must
    be set before numpy is imported, so an initializer would be too late).
    """
    os.environ.update(_SINGLE_THREAD_ENV)
    if dask:
        return DaskExecutor(workers, dask)
    return RespawningProcessPool(workers)


class RespawningProcessPool(Executor):
    """Local worker processes (spawned, dying with the driver) that survive the loss of one.

    A ``ProcessPoolExecutor`` whose worker is killed (the OOM killer, a crash
    inside the quantum-chemistry code) fails every unfinished future with
    ``BrokenProcessPool`` and refuses all further work. This pool starts a
    fresh one at the next :meth:`submit`, so that the caller can submit the
    lost work again (:meth:`bench.oracles.base.Oracle.relax_many` does, a
    bounded number of times).

    Parameters
    ----------
    workers : int
        Number of worker processes.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        #: How many times a broken pool was replaced (shown by tests and logs).
        self.n_respawns = 0
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing as mp

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                   initializer=_die_with_parent, initargs=(os.getpid(),))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False)
                self._pool = self._start()
                self.n_respawns += 1
                return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def terminate_workers(self) -> None:
        """Terminate the worker processes now, in the middle of their work (a stopped build)."""
        for proc in list((self._pool._processes or {}).values()):
            proc.terminate()


class DaskExecutor(Executor):
    """A concurrent.futures executor on a Dask cluster that closes its client (and
    the LocalCluster it started, for ``"local"``) on shutdown. Works unchanged with
    dask-jobqueue: pass the scheduler address of a cluster it started."""

    def __init__(self, workers: int, address: str) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) \
            if address == "local" else None
        self.client = Client(self.cluster if self.cluster is not None else address)
        self._executor = self.client.get_executor()

    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN201 - Executor's signature
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
