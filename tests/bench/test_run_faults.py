"""Killed and concurrent runs: `edm-bench run` SIGKILLed at random points
several times resumes to the tables of an uninterrupted run, and two runs writing
one store at once lose no result. Slow (several runs as subprocesses): CI runs them
with `make test-slow`, with a small count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.store import ResultStore
from tests.bench.test_runner import RUN, tiny_dataset  # noqa: F401 - the module's dataset fixture
from tests.reliability import KILLS, LOST, tally

N_MOLECULES = 6
N_RELAX = 2 * N_MOLECULES  # mmff and uff starts
N_KILLS = 3


def run_args(dataset: Path, out: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", *RUN, "--dataset", str(dataset), "--split", "train",
            "-n", str(N_MOLECULES), "--methods", "mmff,uff", "--out", str(out), "--store", str(store),
            "--workers", "1"]


def relax_table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "relax.csv").drop(columns=["wall_s", "denoiser_s"])


@pytest.fixture(scope="module")
def clean_run(tiny_dataset, tmp_path_factory):  # noqa: F811 - the imported fixture
    root = tmp_path_factory.mktemp("clean")
    subprocess.run(run_args(tiny_dataset, root / "out", root / "store.sqlite"), check=True, capture_output=True)
    return relax_table(root / "out")


def count_relax(store: Path) -> int:
    return ResultStore(store).count("relax") if store.exists() else 0


@pytest.mark.slow
def test_a_run_killed_several_times_resumes_to_the_uninterrupted_tables(tiny_dataset, clean_run, tmp_path):  # noqa: F811
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    rng = np.random.default_rng(8)
    done: dict[str, float] = {}
    for _ in range(N_KILLS):
        target = len(done) + int(rng.integers(1, 3))  # a random point: after one or two more relaxations
        proc = subprocess.Popen(run_args(tiny_dataset, out, store), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and count_relax(store) < target:
            time.sleep(0.005)
        if proc.poll() is not None:
            break  # finished before the kill: nothing left to interrupt
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        tally(KILLS)
        assert ResultStore(store).integrity_check() == "ok"
        created = ResultStore(store).created("relax")
        assert {k: created[k] for k in done} == done  # nothing finished was computed again
        done = created
    subprocess.run(run_args(tiny_dataset, out, store), check=True, capture_output=True)
    pd.testing.assert_frame_equal(relax_table(out), clean_run)
    final = ResultStore(store).created("relax")
    assert {k: final[k] for k in done} == done
    tally(LOST, N_RELAX - len(final))
    assert len(final) == N_RELAX and ResultStore(store).integrity_check() == "ok"


@pytest.mark.slow
def test_two_simultaneous_runs_on_one_store_lose_no_result(tiny_dataset, clean_run, tmp_path):  # noqa: F811
    store = tmp_path / "store.sqlite"
    procs = [subprocess.Popen(run_args(tiny_dataset, tmp_path / f"out{i}", store), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    for i in range(2):
        pd.testing.assert_frame_equal(relax_table(tmp_path / f"out{i}"), clean_run)
    stored = ResultStore(store)
    tally(LOST, N_RELAX - stored.count("relax"))
    assert stored.count("relax") == N_RELAX and stored.integrity_check() == "ok"
