"""Inputs shared by the asv benchmarks: molecules of QM9 and DRUGS size from the
shipped data, networks per backend, the shipped checkpoint's card.

asv imports the suite from the working tree but the project from its own
environment, where ``bench.data``'s shipped-set root points into site-packages;
so the shipped sets and the card are located from this file (the repository).
Nothing here probes CUDA at import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The repository this suite lives in (bench/asv_suite/ -> the root).
REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"
#: Molecules per batch for each size: a ragged batch of real QM9 test molecules, and
#: DRUGS-sized ones (fewer: each is ~3x the atoms, ~10x the pairs).
BATCH = {"qm9": 16, "drugs": 4}
SIZES = list(BATCH)
#: Backends timed on every machine; triton joins where CUDA is (see :func:`backends`).
CPU_BACKENDS = ["torch", "cpp", "onnx"]
BACKENDS = CPU_BACKENDS + ["triton"]


def shipped(name: str) -> Path:
    """A shipped dataset's folder in this repository."""
    return DATASETS / name


def molecules(size: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first molecules of a shipped test split as (numbers, MMFF start positions, A).

    DRUGS molecules go through the QM9 network: only the atom count matters for
    speed, so elements outside the QM9 types are timed as carbon (as ``bench.perf``).
    """
    from bench.data import load_dataset

    records = load_dataset(shipped("qm9-xtb" if size == "qm9" else "drugs-xtb"), "test")[: BATCH[size]]
    qm9_types = np.array([1, 6, 7, 8, 9])
    return [(np.where(np.isin(r.numbers, qm9_types), r.numbers, 6), r.start_positions) for r in records]


def network(backend: str, n_layers: int = 9) -> Any:
    """EDM's QM9 network (nf 256, random weights: speed does not depend on them) on
    ``backend``; on the GPU for ``triton``.

    Raises
    ------
    NotImplementedError
        The backend cannot run here, or ``triton`` without CUDA (the interpreter
        is for tests, not timings): asv then records the benchmark as skipped.
    """
    import torch

    from edm_core import EDMConfig, EDMDenoiser

    if backend == "triton" and not torch.cuda.is_available():
        raise NotImplementedError("triton is timed on CUDA devices only")
    torch.manual_seed(0)
    model = EDMDenoiser(EDMConfig(n_layers=n_layers)).eval().to("cuda" if backend == "triton" else "cpu")
    try:
        model.use_backend(backend)
    except ValueError as exc:  # not built or not installed here
        raise NotImplementedError(str(exc)) from exc
    return model


def network_inputs(model: Any, mols: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Any, Any, Any]:
    """The padded, normalised (z, t, node_mask) of one network evaluation at t = 0.05, on the model's device."""
    import torch

    device = next(model.parameters()).device
    x, one_hot, charges, mask = model.pack(mols, device=device)
    z = model.normalize(x, one_hot, charges, mask)
    return z, torch.full((len(mols), 1), 0.05, device=device), mask


def evaluate(model: Any, z: Any, t: Any, mask: Any) -> Any:
    """One no-grad network evaluation, finished (CUDA work is asynchronous)."""
    import torch

    with torch.no_grad():
        out = model.model.predict_noise(z, t, mask)
    if out.is_cuda:
        torch.cuda.synchronize()
    return out


def best_seconds(fn: Callable[[], object], min_time_s: float = 1.0) -> float:
    """Seconds per call: the best of the calls that fit in ``min_time_s`` after a warm-up.

    The best, not the mean, because other processes' load only adds time. (The
    suite keeps its own copy rather than ``bench.perf``'s: it runs against older
    commits of the project too.)
    """
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_time_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def default_card() -> Path:
    """The shipped checkpoint's card in this repository.

    Raises
    ------
    NotImplementedError
        The card does not exist yet, or the commit under test predates
        ``bench.cards.DEFAULT_CARD`` (asv records the benchmark as skipped).
    """
    try:
        from bench.cards import DEFAULT_CARD
    except ImportError as exc:
        raise NotImplementedError(f"this commit has no shipped checkpoint ({exc})") from exc
    card = REPO / DEFAULT_CARD
    if not card.is_file():
        raise NotImplementedError(f"the shipped checkpoint's card {DEFAULT_CARD} does not exist yet")
    return card
