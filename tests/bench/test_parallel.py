"""The one rule for batch work (bench.parallel.run_jobs): a lost worker is retried a
bounded number of times, any other error is that job's, never the batch's."""

from __future__ import annotations

import os
from concurrent.futures import Future

import pytest

from bench.parallel import WORKER_RETRIES, RespawningProcessPool, run_jobs
from tests.reliability import KILLS, tally


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def die_if(x: int, marker: str) -> int:
    """Kill this worker process for x == 0 (always) or, once, for x == 1."""
    if x == 0 or (x == 1 and not os.path.exists(marker)):
        open(marker, "w").close()
        os._exit(1)
    return x


def test_in_process_errors_are_the_jobs_own_and_the_others_finish():
    results = {r.key: r for r in run_jobs(None, square_or_fail, [(x, (x,)) for x in range(5)])}
    assert {k: r.value for k, r in results.items() if r.error is None} == {0: 0, 1: 1, 2: 4, 4: 16}
    assert isinstance(results[3].error, ValueError) and results[3].attempts == 1


def test_local_replaces_fn_in_process_only():
    got = [r.value for r in run_jobs(None, square_or_fail, [(0, (2,))], local=lambda x: -x)]
    assert got == [-2]


def test_a_lost_worker_is_retried_then_the_job_fails_alone(tmp_path):
    marker = str(tmp_path / "died")
    with RespawningProcessPool(1) as pool:
        results = {r.key: r for r in run_jobs(pool, die_if, [(x, (x, marker)) for x in (2, 1, 0, 3)], window=1)}
    assert results[2].value == 2 and results[2].error is None and results[2].attempts == 1
    assert results[1].value == 1 and results[1].attempts == 2  # died once, then ran
    assert results[0].error is not None and results[0].attempts == WORKER_RETRIES + 1
    assert results[3].value == 3 and results[3].error is None
    tally(KILLS, WORKER_RETRIES + 2)


def test_a_worker_killer_never_takes_the_jobs_beside_it_down(tmp_path):
    """Every job in flight when a worker dies fails alike; retried alone, only the
    one that kills its worker every time uses up its retries."""
    marker = str(tmp_path / "unused")
    open(marker, "w").close()
    keys = [0, 5, 6, 7, 8, 9]
    with RespawningProcessPool(2) as pool:
        for window in (None, 2):
            results = {r.key: r for r in run_jobs(pool, die_if, [(x, (x, marker)) for x in keys], window=window)}
            assert sorted(results) == keys
            assert {k: r.value for k, r in results.items() if k} == {k: k for k in keys if k}
            assert all(r.error is None and r.attempts <= 2 for k, r in results.items() if k)
            assert results[0].error is not None and results[0].attempts == WORKER_RETRIES + 1
    tally(KILLS, 2 * (WORKER_RETRIES + 1))


class CountingExecutor:
    """Runs each job at submit time; counts the jobs submitted."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn, *args):
        future: Future = Future()
        self.submitted += 1
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


@pytest.mark.parametrize("window", [1, 3])
def test_window_bounds_the_jobs_in_flight(window):
    """At most ``window`` jobs wait to be handed out, besides the one being handed
    out (its successor is submitted first, so that a worker never idles)."""
    executor = CountingExecutor()
    keys, most = [], 0
    for handed, result in enumerate(run_jobs(executor, square_or_fail, [(x, (x,)) for x in range(10)],
                                             window=window)):
        most = max(most, executor.submitted - handed)
        keys.append(result.key)
    assert sorted(keys) == list(range(10)) and most <= window + 1
    assert isinstance(next(r for r in run_jobs(executor, square_or_fail, [(3, (3,))], window=1)).error, ValueError)
