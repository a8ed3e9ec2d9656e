"""What the analysis tasks share: denoiser cards, the low-noise warning, and
cached oracle work on an executor. Their run folders are written by
:func:`bench.runner.write_run_folder`, the writer of every run folder.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.errors import EdmBenchError
from bench.parallel import run_jobs
from bench.progress import show_progress
from bench.store import ResultStore, settings_hash

#: What an analysis run promises about units (written into its manifest).
ANALYSIS_UNITS = {"energy": "kcal/mol above the oracle ground state (1 eV = 23.0605 kcal/mol)", "temperature": "K",
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
