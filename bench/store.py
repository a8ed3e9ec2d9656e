"""The results store: every expensive result, cached in one SQLite file.

One table ``results(kind, key, value)`` holds JSON documents: oracle single points
and relaxations (``kind`` = ``"single_point"`` / ``"relax"``), dataset-builder
records, task rows. Keys are content hashes (oracle settings + geometry, see
:func:`geometry_hash`), so a repeated computation is a lookup and an interrupted
run resumes where it stopped.

Integrity: each value is stored with the sha256 of its JSON text. A record whose
text no longer matches its checksum (edited, or written by a version of edm-bench
without checksums into a store that has them) is not used: :meth:`get` returns
``None``, so the work is recomputed, and :attr:`ResultStore.n_rejected` counts
it (runs report the count). A store written before checksums existed (schema 1)
is checksummed once, as it is, when this version first opens it.

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

SCHEMA_VERSION = 2
#: Prefix of a stored value: ``sha256:<hex of the JSON text>\n<JSON text>``.
_CHECKSUM = "sha256:"
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


def _seal(text: str) -> str:
    return f"{_CHECKSUM}{hashlib.sha256(text.encode()).hexdigest()}\n{text}"


def _unseal(stored: str) -> str | None:
    """The JSON text of a stored value, or None when its checksum is missing or wrong."""
    head, sep, text = stored.partition("\n")
    if not sep or not head.startswith(_CHECKSUM):
        return None
    return text if hashlib.sha256(text.encode()).hexdigest() == head[len(_CHECKSUM):] else None


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
        #: Records read from this store whose checksum failed (not used; recomputed).
        self.n_rejected = 0
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
                if int(version) == 1:
                    version = self._checksum_legacy(conn)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: not a usable edm-bench results store ({exc})") from exc
            if int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version}, this edm-bench reads {SCHEMA_VERSION}"
                )
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @staticmethod
    def _checksum_legacy(conn: sqlite3.Connection) -> int:
        """Seal every record of a schema-1 store (written before checksums) as it is."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT kind, key, value FROM results").fetchall()
            conn.executemany("UPDATE results SET value=? WHERE kind=? AND key=?",
                             [(_seal(value), kind, key) for kind, key, value in rows if _unseal(value) is None])
            conn.execute("UPDATE meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    def _decode(self, stored: str) -> dict | None:
        text = _unseal(stored)
        if text is None:
            self.n_rejected += 1
            return None
        return json.loads(text)

    def get(self, kind: str, key: str) -> dict | None:
        """Return the stored document, or ``None`` if absent or if its checksum fails."""
        row = self._connect().execute("SELECT value FROM results WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else self._decode(row[0])

    def put(self, kind: str, key: str, value: dict) -> None:
        """Store ``value`` under ``(kind, key)`` atomically, replacing any previous one."""
        text = _seal(json.dumps(value, default=_json_default, allow_nan=True))
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
        rows = [(kind, k, _seal(json.dumps(v, default=_json_default)), time.time()) for k, v in items]
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def keys(self, kind: str) -> set[str]:
        """The keys of ``kind`` whose records pass their checksum (what is done)."""
        return {key for key, _ in self.items(kind)}

    def items(self, kind: str) -> Iterator[tuple[str, dict]]:
        """Iterate over ``(key, document)`` of one kind, in key order (records whose
        checksum fails are left out and counted)."""
        cur = self._connect().execute("SELECT key, value FROM results WHERE kind=? ORDER BY key", (kind,))
        for key, stored in cur.fetchall():
            doc = self._decode(stored)
            if doc is not None:
                yield key, doc

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
