"""What the analysis tasks share: denoiser cards, cached oracle work on an
executor, and the run folder (tables, ``summary.json``, report, manifest).

A run folder of an analysis looks like one of ``edm-bench run``: ``manifest.json``
(settings, seeds, units, versions, hardware), tidy tables as CSV and Parquet,
``summary.json`` (``task``, ``label``, ``n_molecules``, ``wall_s`` and one entry
per denoiser under ``methods``, so the leaderboard reads it), ``figures/`` (PNG
and SVG) and ``report.md`` / ``report.html``.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.artifacts import begin_run_folder, end_run_folder, write_table
from bench.cards import load_denoisers
from bench.data.dataset import write_json_atomic
from bench.errors import EdmBenchError
from bench.manifest import make_manifest
from bench.parallel import run_jobs
from bench.progress import show_progress
from bench.reports.analysis import write_analysis_report
from bench.store import ResultStore, settings_hash

#: What an analysis run promises about units (written into every manifest).
UNITS = {"energy": "kcal/mol above the oracle ground state (1 eV = 23.0605 kcal/mol)", "temperature": "K",
         "length": "Angstrom", "step size": "Angstrom (per-atom displacement norm, averaged over atoms)"}


def card_t_max(card: dict[str, Any]) -> float:
    """The largest training time t of a card's model (``training.t_max``; a card
    without it, e.g. of an original checkpoint, was trained on the whole schedule)."""
    return float(card.get("training", {}).get("t_max", 1.0))


def low_noise_warnings(denoisers: dict[str, Any], task: str) -> list[str]:
    """Warn (and return the messages) for each denoiser trained only on low noise:
    it can relax and repeat steps but has never seen the noise it generates from."""
    messages = []
    for key, d in denoisers.items():
        t_max = card_t_max(d.card)
        if t_max < 1:
            messages.append(f"{key}: trained on t <= {t_max} only; '{task}' generates from pure noise (t = 1), "
                            "which this model never saw, so its samples say little about it")
            warnings.warn(messages[-1], UserWarning, stacklevel=2)
    return messages


def array_hash(*arrays: np.ndarray) -> str:
    """Content hash of arrays (shape and bytes): the store key of work on them."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:32]


def cached_jobs(store: ResultStore | None, kind: str, jobs: Sequence[tuple[str, Callable[..., dict], tuple]],
                executor: Executor | None) -> list[dict]:
    """Run ``fn(*args)`` of each ``(key, fn, args)`` not yet in the store, on the
    executor when there is one (each job is a whole chain: one calculator, one
    store entry), and return the documents in order.

    Each document is stored as soon as its job ends, so a run stopped midway keeps
    the finished chains and a rerun computes only the rest. A job that raises does
    not stop the others: they are all finished and stored first, then
    :class:`~bench.errors.EdmBenchError` says how many failed and why.
    """
    docs: list[dict | None] = [store.get(kind, key) if store is not None else None for key, _, _ in jobs]
    missing = [i for i, doc in enumerate(docs) if doc is None]
    errors: list[BaseException] = []
    calls = ((i, (jobs[i][1], *jobs[i][2])) for i in missing)  # each job its own function, applied by _call
    with tqdm(total=len(missing), desc=f"{kind} jobs", disable=not show_progress(len(missing)), leave=False) as bar:
        for job in run_jobs(executor, _call, calls):
            if job.error is not None:
                errors.append(job.error)
                continue
            if store is not None:
                store.put(kind, jobs[job.key][0], job.value)
            docs[job.key] = job.value
            bar.update()
    if errors:
        raise EdmBenchError(f"{len(errors)} of {len(missing)} {kind} jobs failed (the other {len(missing) - len(errors)}"
                            f" are stored; a rerun computes only the failed ones); first: "
                            f"{type(errors[0]).__name__}: {errors[0]}") from errors[0]
    return docs  # type: ignore[return-value]


def _call(fn: Callable[..., dict], *args: Any) -> dict:
    """``fn(*args)``: lets one batch carry jobs of different functions."""
    return fn(*args)


def job_key(oracle_key: str, settings: dict[str, Any], content: str) -> str:
    """Store key of one job: oracle identity, job settings, content hash."""
    return f"{oracle_key}/{settings_hash(settings)}/{content}"


def write_run(out_dir: Path, settings: dict[str, Any], tables: dict[str, pd.DataFrame], summary: dict[str, Any],
              figures: dict[str, Callable], sections: Sequence[tuple[str, str]], intro: str) -> dict[str, Any]:
    """Write manifest, tables, ``summary.json``, figures and the report; return the
    manifest. ``sections`` are (table name, title) pairs shown in the report."""
    begin_run_folder(out_dir)
    manifest = make_manifest({**settings, "units": UNITS})
    write_json_atomic(out_dir / "manifest.json", manifest)
    for name, df in tables.items():
        write_table(df, out_dir / name)
    write_json_atomic(out_dir / "summary.json", summary)
    write_analysis_report(out_dir, tables, summary, manifest, figures, sections, intro)
    end_run_folder(out_dir)
    return manifest
