"""Per-molecule tables on disk: written atomically with their sha256 (recorded in
the run's manifest), read back only when the hash still matches.

Every headline number is recomputed from these files (:mod:`bench.metrics`), so
a table edited or truncated after its run is refused rather than ranked.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pandas as pd

from bench.errors import InputError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_table(df: pd.DataFrame, stem: Path) -> str:
    """A tidy table as ``stem.csv`` and ``stem.parquet``, each through a temporary
    file and an atomic rename; returns the sha256 of the Parquet file."""
    for suffix in (".csv", ".parquet"):
        tmp = stem.with_name(f"{stem.name}.tmp{suffix}")
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(stem.with_suffix(suffix))
    return sha256_file(stem.with_suffix(".parquet"))


def read_table(run_dir: Path, name: str, sha256: str) -> pd.DataFrame:
    """The Parquet table ``name`` of a run folder, after checking its sha256."""
    path = Path(run_dir) / f"{name}.parquet"
    if not path.is_file():
        raise InputError(f"{run_dir}: table {name}.parquet named in manifest.json is missing")
    if sha256_file(path) != sha256:
        raise InputError(f"{path}: sha256 does not match the run's manifest.json (edited after the run?)")
    return pd.read_parquet(path)


#: Marker file of a run folder being written; removed when the folder is complete.
INCOMPLETE = "INCOMPLETE"

#: Files derived from a run's tables, removed when a new run starts in the folder
#: so that none is left beside a manifest it does not belong to.
DERIVED_FILES = ("summary.json", "report.md", "report.html")


def begin_run_folder(out_dir: Path) -> None:
    """Mark ``out_dir`` incomplete (created if needed) and remove a previous run's
    derived files: until :func:`end_run_folder`, readers refuse the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{INCOMPLETE}.tmp"
    tmp.write_text(f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by process {os.getpid()}\n")
    tmp.replace(out_dir / INCOMPLETE)
    for name in DERIVED_FILES:
        (out_dir / name).unlink(missing_ok=True)


def end_run_folder(out_dir: Path) -> None:
    """The folder is complete: remove its marker."""
    (out_dir / INCOMPLETE).unlink(missing_ok=True)


def check_complete(run_dir: Path) -> None:
    """Refuse a run folder whose run has not finished (crashed, killed or still running)."""
    marker = Path(run_dir) / INCOMPLETE
    if marker.exists():
        raise InputError(f"{run_dir}: incomplete run folder ({marker.read_text().strip()}, never finished); "
                         "rerun it to complete it (finished oracle work is reused from the store)")


def read_json(path: Path) -> dict:
    """A run folder's JSON file, or a clear error naming the folder."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{Path(path).parent}: not a finished run folder ({Path(path).name}: {exc})") from exc


def read_run_tables(run_dir: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The manifest and the per-molecule tables of an ``edm-bench run`` folder,
    each table checked against the sha256 in the manifest; an incomplete folder is refused."""
    check_complete(run_dir)
    manifest = read_json(Path(run_dir) / "manifest.json")
    listed = manifest.get("tables")
    if not listed:
        raise InputError(f"{run_dir}: manifest.json lists no tables (an unfinished run, or one from an older "
                         "version of edm-bench)")
    return manifest, {name: read_table(run_dir, name, meta["sha256"]) for name, meta in listed.items()
                      if meta.get("per_molecule")}
