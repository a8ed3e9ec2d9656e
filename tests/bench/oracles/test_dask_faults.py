"""A Dask worker lost for real: the worker process is SIGKILLed in the
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
    """Two batches: one whose worker dies once, then a molecule that kills every worker.

    They are separate calls because Dask counts a lost worker against every task
    assigned to it, queued ones included: a good molecule queued behind the poison
    on the same worker would share its fate at ``allowed-failures`` 1 (Dask's
    default of 3 leaves room for that; the test keeps 1 to stay fast).
    """
    good = [shifted(ethanol, rng) for _ in range(3)]
    killed = with_fault(shifted(ethanol, rng), "kill-once", 3, str(tmp_path / "killed"))
    poison = with_fault(shifted(ethanol, rng), "kill", 2)
    molecules = [good[0], killed, good[1], good[2]]
    store = ResultStore(tmp_path / "s.sqlite")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        pool = DaskExecutor(2, "local")
        try:
            oracle = FaultOracle(store=store, executor=pool)
            results = oracle.relax_many([(a, f"m{i}") for i, a in enumerate(molecules)], fmax=0.05)
            (lost,) = oracle.relax_many([(poison, "poison")], fmax=0.05)
        finally:
            pool.shutdown()
    assert (tmp_path / "killed").exists()  # the worker really was killed once
    tally(FAULTS, 2)
    tally(KILLS, 1 + 2)  # kill-once, and the poison's two tries (allowed-failures 1)
    expected = FaultOracle().relax_many([(a, "here") for a in molecules], fmax=0.05)
    for i, (got, want) in enumerate(zip(results, expected)):
        assert got.status == "converged", (i, got.message)
        assert got.n_steps == want.n_steps and got.energy_ev == want.energy_ev
    tally(LOST, sum(r.status != "converged" for r in results))
    assert lost.status == "failed" and np.isnan(lost.energy_ev)
    assert "KilledWorker" in lost.message
    assert store.count("relax") == 4  # the poison's failure is not cached: a rerun tries it again
