"""A Dask worker lost for real (issue 8): the worker process is SIGKILLed in the
middle of a relaxation. Dask's scheduler reschedules its work on another worker
(``distributed.scheduler.allowed-failures``); work that keeps killing workers ends
as ``KilledWorker``, which the oracle records as a failure, not a number, and
does not cache. The other molecules give the numbers of an in-process run.

Slow marker (a LocalCluster and worker restarts take seconds); CI runs it in
``make test-slow``.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

from bench.parallel import DaskExecutor
from bench.store import ResultStore
from tests.bench.oracles.faults import FaultOracle, with_fault
from tests.bench.oracles.test_faults import shifted
from tests.reliability import FAULTS, KILLS, LOST, tally

pytestmark = pytest.mark.slow


def test_a_killed_dask_worker_is_replaced_and_its_work_rescheduled(ethanol, rng, tmp_path):
    good = [shifted(ethanol, rng) for _ in range(3)]
    killed = with_fault(shifted(ethanol, rng), "kill-once", 3, str(tmp_path / "killed"))
    poison = with_fault(shifted(ethanol, rng), "kill", 2)
    molecules = [good[0], killed, good[1], poison, good[2]]
    items = [(a, f"m{i}") for i, a in enumerate(molecules)]
    store = ResultStore(tmp_path / "s.sqlite")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        pool = DaskExecutor(2, "local")
        try:
            results = FaultOracle(store=store, executor=pool).relax_many(items, fmax=0.05)
        finally:
            pool.shutdown()
    assert (tmp_path / "killed").exists()  # the worker really was killed once
    tally(FAULTS, 2)
    tally(KILLS, 1 + 2)  # kill-once, and the poison's two tries (allowed-failures 1)
    survivors = (0, 1, 2, 4)  # (not the poison: in this process it would kill pytest)
    expected = FaultOracle().relax_many([(molecules[i], "here") for i in survivors], fmax=0.05)
    for i, want in zip(survivors, expected):
        assert results[i].status == "converged", (i, results[i].message)
        assert results[i].n_steps == want.n_steps and results[i].energy_ev == want.energy_ev
    tally(LOST, sum(results[i].status != "converged" for i in survivors))
    assert results[3].status == "failed" and np.isnan(results[3].energy_ev)
    assert "KilledWorker" in results[3].message
    assert store.count("relax") == 4  # the poison's failure is not cached: a rerun tries it again
