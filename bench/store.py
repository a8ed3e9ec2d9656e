"""The results store: every expensive result, cached in one SQLite file.

One table ``results(kind, key, value)`` holds JSON documents: oracle single points
and relaxations (``kind`` = ``"single_point"`` / ``"relax"``), dataset-builder
records, task rows. Keys are content hashes (oracle settings + geometry, see
:func:`geometry_hash`), so a repeated computation is a lookup and an interrupted
run resumes where it stopped.

Durability: the database runs in write-ahead-log mode and every :meth:`put` is
its own transaction, so a process killed at any point leaves the file consistent
(SQLite's atomic commit); at most the result being written is lost. Several
processes may read and write the same file (writes are serialised by SQLite's
lock, with a busy timeout); runners still do all writes from the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import StoreError

SCHEMA_VERSION = 1
#: Positions are rounded to this many decimals of an Angstrom before hashing.
POSITION_DECIMALS = 6


def geometry_hash(numbers: np.ndarray, positions: np.ndarray, charge: int = 0, multiplicity: int = 1) -> str:
    """Content hash of a molecule: atomic numbers, positions rounded to 1e-6 A,
    charge and multiplicity (sha256 hex)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
    fixed = np.rint(np.asarray(positions, dtype=np.float64) * 10**POSITION_DECIMALS).astype(np.int64)
    h.update(np.ascontiguousarray(fixed).tobytes())
    h.update(f"{int(charge)}/{int(multiplicity)}".encode())
    return h.hexdigest()


def settings_hash(settings: Any) -> str:
    """Stable hash of a JSON-serialisable settings object (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=_json_default).encode()).hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in the results store")


class ResultStore:
    """A key-value store of JSON documents in one SQLite file (WAL mode).

    Parameters
    ----------
    path : str or Path
        The database file; created with its parent folder if missing.
    timeout_s : float
        How long a writer waits for another process's lock before failing.

    Examples
    --------
    >>> store = ResultStore(":memory:")
    >>> store.put("relax", "abc", {"energy_ev": -1.5})
    >>> store.get("relax", "abc")
    {'energy_ev': -1.5}
    """

    def __init__(self, path: str | Path, timeout_s: float = 120.0) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS results (kind TEXT NOT NULL, key TEXT NOT NULL, "
                    "value TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (kind, key))"
                )
                conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                (version,) = conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: not a usable edm-bench results store ({exc})") from exc
            if int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version}, this edm-bench reads {SCHEMA_VERSION}"
                )
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get(self, kind: str, key: str) -> dict | None:
        """Return the stored document, or ``None`` if absent."""
        row = self._connect().execute("SELECT value FROM results WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, kind: str, key: str, value: dict) -> None:
        """Store ``value`` under ``(kind, key)`` atomically, replacing any previous one."""
        text = json.dumps(value, default=_json_default, allow_nan=True)
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", (kind, key, text, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put_many(self, kind: str, items: Iterable[tuple[str, dict]]) -> None:
        """Store several documents in one transaction (all or none)."""
        rows = [(kind, k, json.dumps(v, default=_json_default), time.time()) for k, v in items]
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def keys(self, kind: str) -> set[str]:
        """All keys stored under ``kind``."""
        return {k for (k,) in self._connect().execute("SELECT key FROM results WHERE kind=?", (kind,))}

    def items(self, kind: str) -> Iterator[tuple[str, dict]]:
        """Iterate over ``(key, document)`` of one kind, in key order."""
        cur = self._connect().execute("SELECT key, value FROM results WHERE kind=? ORDER BY key", (kind,))
        for key, text in cur:
            yield key, json.loads(text)

    def created(self, kind: str) -> dict[str, float]:
        """When each document of ``kind`` was written (Unix time): shows what a resume recomputed."""
        cur = self._connect().execute("SELECT key, created FROM results WHERE kind=?", (kind,))
        return dict(cur.fetchall())

    def count(self, kind: str | None = None) -> int:
        """Number of stored documents (of one kind, or all)."""
        if kind is None:
            return self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._connect().execute("SELECT COUNT(*) FROM results WHERE kind=?", (kind,)).fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ('ok' for a sound file)."""
        return self._connect().execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Close this process's connection (checkpointing the WAL)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
