"""The results store: round trips, keys, durability under kills, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time

import numpy as np
import pytest

from bench.errors import StoreError
from bench.store import ResultStore, geometry_hash


def test_round_trip_replace_and_listing(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    store.put("relax", "a", {"energy_ev": -1.5, "positions_ang": np.eye(3), "n": np.int64(3)})
    assert store.get("relax", "a") == {"energy_ev": -1.5, "positions_ang": np.eye(3).tolist(), "n": 3}
    assert store.get("relax", "missing") is None and store.get("single_point", "a") is None
    store.put("relax", "a", {"energy_ev": -2.0})
    store.put_many("relax", [("b", {"x": 1}), ("c", {"x": 2})])
    assert store.get("relax", "a") == {"energy_ev": -2.0}
    assert store.keys("relax") == {"a", "b", "c"} and store.count("relax") == 3 and store.count() == 3
    assert [k for k, _ in store.items("relax")] == ["a", "b", "c"]
    store.close()
    assert ResultStore(tmp_path / "s.sqlite").get("relax", "b") == {"x": 1}


def test_failed_batch_writes_nothing(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    with pytest.raises(TypeError, match="cannot store"):
        store.put_many("k", [("a", {"x": 1}), ("b", {"x": object()})])
    assert store.count() == 0


def test_geometry_hash_rounds_to_a_micro_angstrom(rng):
    numbers = np.array([8, 1, 1])
    pos = rng.normal(size=(3, 3))
    ref = geometry_hash(numbers, pos)
    assert geometry_hash(numbers, pos + 1e-9) == ref
    assert geometry_hash(numbers, pos + np.array([[3e-6, 0, 0], [0, 0, 0], [0, 0, 0]])) != ref
    assert geometry_hash(numbers, pos, charge=1) != ref
    assert geometry_hash(numbers, pos, multiplicity=3) != ref
    assert geometry_hash(np.array([8, 1, 9]), pos) != ref


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable edm-bench results store"):
        ResultStore(bad)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        ResultStore(other)


def _writer(path: str, prefix: str, n: int) -> None:
    store = ResultStore(path)
    for i in range(n):
        store.put("w", f"{prefix}-{i}", {"i": i, "payload": list(range(50))})


def test_concurrent_writers_lose_no_write(tmp_path):
    path = str(tmp_path / "s.sqlite")
    ResultStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"p{k}", 150)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = ResultStore(path)
    assert store.count("w") == 450
    assert store.integrity_check() == "ok"


def _endless_writer(path: str) -> None:
    store = ResultStore(path)
    i = 0
    while True:
        store.put("w", f"k-{i:08d}", {"i": i, "blob": "x" * 2000})
        i += 1


@pytest.mark.parametrize("delay_s", [0.3, 0.7, 1.1])
def test_sigkill_mid_write_leaves_a_consistent_store(tmp_path, delay_s):
    path = str(tmp_path / "s.sqlite")
    ResultStore(path).close()
    proc = mp.get_context("spawn").Process(target=_endless_writer, args=(path,))
    proc.start()
    deadline = time.time() + 60
    while ResultStore(path).count("w") < 5 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    store = ResultStore(path)
    assert store.integrity_check() == "ok"
    n = store.count("w")
    assert n >= 5
    # every committed document is whole, and the keys are a gap-free prefix
    keys = sorted(store.keys("w"))
    assert keys == [f"k-{i:08d}" for i in range(n)]
    assert all(doc["blob"] == "x" * 2000 for _, doc in store.items("w"))


def test_an_edited_record_is_not_used_and_is_counted(tmp_path):
    import sqlite3

    store = ResultStore(tmp_path / "s.sqlite")
    store.put("relax", "a", {"energy_ev": -1.5})
    store.put("relax", "b", {"energy_ev": -2.5})
    store.close()
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:  # someone edits a number in place
        (value,) = conn.execute("SELECT value FROM results WHERE key='a'").fetchone()
        conn.execute("UPDATE results SET value=? WHERE key='a'", (value.replace("-1.5", "-9.5"),))
    store = ResultStore(tmp_path / "s.sqlite")
    assert store.get("relax", "a") is None and store.n_rejected == 1  # recomputed by its caller, never used
    assert store.get("relax", "b") == {"energy_ev": -2.5}
    assert store.keys("relax") == {"b"} and dict(store.items("relax")) == {"b": {"energy_ev": -2.5}}


def test_a_store_from_before_checksums_is_sealed_once_as_it_is(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE results (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
                     "created REAL NOT NULL, PRIMARY KEY (kind, key))")
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO results VALUES ('relax', 'a', '{\"energy_ev\": -1.5}', 0)")
    store = ResultStore(path)
    assert store.get("relax", "a") == {"energy_ev": -1.5} and store.n_rejected == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == "2"
