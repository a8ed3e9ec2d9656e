"""``edm-bench run``: run the relaxation tasks on a dataset split and write a run folder.

A run folder holds ``manifest.json`` (versions, git revision, hardware, every
setting), per-molecule tables (``energy.csv``/``.parquet``, ``relax.csv``/``.parquet``),
per-method summaries, ``summary.json`` (headline metrics) and ``report.md``.
All oracle work goes through the results store, so a rerun, or a run killed and
started again, only computes what is missing.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.baselines import resolve_baseline
from bench.cards import load_denoiser
from bench.data.dataset import load_dataset, read_manifest, write_json_atomic
from bench.manifest import make_manifest
from bench.oracles import get_oracle
from bench.parallel import make_executor
from bench.reports import write_report
from bench.store import ResultStore
from bench.tasks.alignment import alignment_gap, along_path, summarise_alignment
from bench.tasks import (
    denoiser_starts,
    energy_above_ground,
    make_starts,
    relax_from_starts,
    summarise_energy,
    summarise_relax,
)


#: The tasks of a run (PROTOCOLS.md); force-alignment needs a denoiser.
TASKS = ("energy-ratio", "relax-speedup", "force-alignment")


@dataclass(frozen=True)
class RunSettings:
    """What a run computes; recorded whole in its manifest."""

    dataset: str = "qm9-xtb"
    split: str = "test"
    n_molecules: int = 100
    seed: int = 0
    #: Only molecules with at most this many atoms (DFT cost grows as N^3 to N^4).
    max_atoms: int | None = None
    tasks: tuple[str, ...] = TASKS
    oracle: str = "xtb"
    oracle_settings: dict[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("mmff", "uff", "etkdg")
    denoisers: tuple[str, ...] = ()
    n_steps: tuple[int, ...] = (20, 30, 50)
    #: Stochastic denoisers run once per seed; metrics pool (molecule, seed) rows.
    denoiser_seeds: tuple[int, ...] = (0, 1, 2)
    fmax_ev_ang: float = 0.03
    optimizer: str = "BFGS"
    max_steps: int = 1000
    workers: int = 1
    dask: str | None = None

    def __post_init__(self) -> None:
        if self.n_molecules < 1:
            raise ValueError(f"n_molecules must be >= 1, got {self.n_molecules}")
        if "mmff" not in self.methods:
            raise ValueError("methods must include 'mmff', the reference of every speedup")
        for m in self.methods:
            resolve_baseline(m)
        if any(n < 1 for n in self.n_steps):
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
        if self.max_atoms is not None and self.max_atoms < 1:
            raise ValueError(f"max_atoms must be >= 1, got {self.max_atoms}")


def select(n_total: int, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded random choice of ``n`` of ``n_total`` molecules, sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def run(settings: RunSettings, out_dir: Path, store_path: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the tasks and write the run folder; return the summary."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    molecules = load_dataset(settings.dataset, settings.split)
    if settings.max_atoms is not None:
        molecules = [r for r in molecules if r.n_atoms <= settings.max_atoms]
        if not molecules:
            raise ValueError(f"no molecule of {settings.dataset}/{settings.split} has <= {settings.max_atoms} atoms")
    records = [molecules[int(i)] for i in select(len(molecules), settings.n_molecules, settings.seed)]
    store = ResultStore(store_path or out_dir / "store.sqlite")
    with contextlib.ExitStack() as stack:
        executor = None
        if settings.dask or settings.workers > 1:
            executor = stack.enter_context(make_executor(settings.workers, settings.dask))
        oracle = get_oracle(settings.oracle, store=store, executor=executor, **settings.oracle_settings)
        summary = _run(settings, out_dir, records, oracle, progress, t0)
    store.close()
    return summary


def _run(settings: RunSettings, out_dir: Path, records: list, oracle: Any, progress: bool, t0: float
         ) -> dict[str, Any]:
    denoisers = {path: load_denoiser(path) for path in settings.denoisers}
    dataset_manifest = read_manifest(settings.dataset)
    # The dataset's ground states are minima of its own oracle; under another
    # level of theory the reference is that oracle's minimum, relaxed from them.
    same_level = settings.oracle == dataset_manifest["oracle"]["name"] and not settings.oracle_settings
    ground_fmax = None if same_level else settings.fmax_ev_ang
    manifest = make_manifest({
        "run": {**settings.__dict__, "methods": list(settings.methods), "tasks": list(settings.tasks)},
        "denoisers": {path: {"card": d.card, "backend": d.backend} for path, d in denoisers.items()},
        "dataset": {"name": settings.dataset, "split": settings.split,
                    "content_sha256": dataset_manifest["splits"][settings.split]["content_sha256"],
                    "ids": [r.id for r in records]},
        "oracle": oracle.describe(),
        "ground_state": ("the dataset's ground geometry, single point" if ground_fmax is None else
                         f"the dataset's ground geometry relaxed with the oracle to fmax {ground_fmax} eV/A"),
        "units": {"energy": "kcal/mol (tables), eV (relaxed_energy_ev)", "fmax": "eV/A"},
        "step_counting": "ASE Optimizer.get_number_of_steps()",
    })
    write_json_atomic(out_dir / "manifest.json", manifest)

    starts = make_starts(records, {m: resolve_baseline(m) for m in settings.methods}, progress=progress)
    denoiser_s: dict[str, float] = {}
    path_tables = []
    for denoiser in denoisers.values():
        # a card's sampler: noise_scale 1 (the study's ancestral sampler) or 0 (deterministic: one seed is enough)
        noise_scale = float(denoiser.card["relaxation"].get("noise_scale", 1.0))
        add_noise = bool(denoiser.card["relaxation"].get("add_noise", False))
        seeds = settings.denoiser_seeds if noise_scale > 0 else settings.denoiser_seeds[:1]
        for n in settings.n_steps:
            name = f"{denoiser.card['key']}/n={n}"
            denoiser_s[name] = 0.0
            for k, seed in enumerate(seeds):
                # the path analysis: first seed, largest n
                keep = "force-alignment" in settings.tasks and k == 0 and n == max(settings.n_steps)
                starts[f"{name}{SEED_TAG}{seed}"], wall_s, paths = denoiser_starts(
                    records, denoiser, n, seed=seed, keep_path=keep, noise_scale=noise_scale, add_noise=add_noise)
                denoiser_s[name] += wall_s / len(seeds)
                if keep:
                    path_tables.append(along_path(records, paths, oracle, fmax=settings.fmax_ev_ang, method=name,
                                                  ground_fmax=ground_fmax))
    tables: dict[str, pd.DataFrame] = {}
    if "energy-ratio" in settings.tasks:
        tables["energy"] = split_seeds(energy_above_ground(records, starts, oracle, progress=progress,
                                                           ground_fmax=ground_fmax))
        tables["energy_summary"] = summarise_energy(tables["energy"])
    if "relax-speedup" in settings.tasks:
        tables["relax"] = split_seeds(relax_from_starts(records, starts, oracle, fmax=settings.fmax_ev_ang,
                                                        optimizer=settings.optimizer, max_steps=settings.max_steps,
                                                        progress=progress))
        tables["relax_summary"] = summarise_relax(tables["relax"])
    gaps: dict[str, float] = {}
    if path_tables:
        tables["path"] = pd.concat(path_tables, ignore_index=True)
        tables["path_summary"] = summarise_alignment(tables["path"])
        gaps = alignment_gap(tables["path"])
    if "relax_summary" in tables:
        series = checkpoint_series(tables["relax_summary"], denoisers.values(), settings.n_steps, gaps)
        if len(series) > len(settings.n_steps):  # more than one checkpoint: the series is a result
            tables["checkpoints"] = series
    for name, df in tables.items():
        _write_table(df, out_dir / name)

    summary = {
        "label": f"{settings.dataset}/{settings.split}/{oracle.name}/fmax={settings.fmax_ev_ang}",
        "n_molecules": len(records),
        "wall_s": round(time.perf_counter() - t0, 1),
        "methods": {m.split(SEED_TAG)[0]: {} for m in starts},
    }
    if "energy_summary" in tables:
        esum = tables["energy_summary"].set_index("method")
        for m, row in summary["methods"].items():
            row.update({
                "energy_ratio": _num(esum.loc[m, "energy_ratio"]),
                "median_energy_above_ground_kcal_mol": _num(esum.loc[m, "median_kcal_mol"]),
                "mean_energy_above_ground_kcal_mol": _num(esum.loc[m, "mean_kcal_mol"]),
                "n_failed": int(esum.loc[m, "n_failed"]),
            })
    if "relax_summary" in tables:
        rsum = tables["relax_summary"].set_index("method")
        ref_oracle_s = rsum.loc["mmff", "total_oracle_s"]
        for m, row in summary["methods"].items():
            denoiser_ms = 1000 * denoiser_s.get(m, 0.0) / len(records)
            n_runs = int((tables["relax"]["method"] == m).sum()) / len(records)  # seeds
            saved_s = (ref_oracle_s - rsum.loc[m, "total_oracle_s"] / n_runs) / len(records)
            row.update({
                "median_speedup": _num(rsum.loc[m, "median_speedup"]),
                "median_speedup_ci95": [_num(rsum.loc[m, "median_speedup_ci_low"]),
                                        _num(rsum.loc[m, "median_speedup_ci_high"])],
                "p25_speedup": _num(rsum.loc[m, "p25_speedup"]),
                "p75_speedup": _num(rsum.loc[m, "p75_speedup"]),
                "fraction_slower": _num(rsum.loc[m, "fraction_slower"]),
                "median_steps": _num(rsum.loc[m, "median_steps"]),
                "n_failed": row.get("n_failed", 0) + int(rsum.loc[m, "n_failed"]),
                "total_oracle_s": _num(rsum.loc[m, "total_oracle_s"]),
                "median_speedup_seed_std": _num(rsum.loc[m, "median_speedup_seed_std"]),
                # oracle time saved per molecule minus the denoiser's own time, on this hardware
                "net_saving_s_per_molecule": _num(saved_s - denoiser_ms / 1000),
            })
    for m, row in summary["methods"].items():
        row["alignment_gap"] = _num(gaps.get(m, float("nan")))
        row["denoiser_ms_per_molecule"] = _num(1000 * denoiser_s[m] / len(records)) if m in denoiser_s else None
    write_json_atomic(out_dir / "summary.json", summary)
    write_report(out_dir, tables, summary, manifest)
    return summary


#: Joins a denoiser's method name and the seed of one of its runs in the start keys.
SEED_TAG = "@seed="


def split_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Split ``method@seed=s`` keys into the method and a ``seed`` column (None for
    deterministic methods), so that metrics pool a denoiser's seeds."""
    parts = df["method"].str.split(SEED_TAG, n=1, expand=True)
    df = df.copy()
    df["method"] = parts[0]
    df["seed"] = pd.to_numeric(parts[1], errors="coerce").astype("Int64") if parts.shape[1] > 1 else pd.NA
    return df


def checkpoint_series(relax_summary: pd.DataFrame, denoisers: Any, n_steps: tuple[int, ...],
                      gaps: dict[str, float]) -> pd.DataFrame:
    """Median speedup and alignment gap per (checkpoint epoch, n): the study's
    checkpoint analysis, from the cards' ``training.epochs``."""
    rsum = relax_summary.set_index("method")
    rows = []
    for d in denoisers:
        for n in n_steps:
            name = f"{d.card['key']}/n={n}"
            rows.append({"denoiser": d.card["key"], "epoch": d.card["training"].get("epochs"), "n_steps": n,
                         "median_speedup": rsum.loc[name, "median_speedup"] if name in rsum.index else None,
                         "alignment_gap": gaps.get(name)})
    return pd.DataFrame(rows, columns=["denoiser", "epoch", "n_steps", "median_speedup", "alignment_gap"])


def _num(x: Any) -> float | None:
    return None if pd.isna(x) else round(float(x), 4)


def _write_table(df: pd.DataFrame, stem: Path) -> None:
    df.to_csv(stem.with_suffix(".csv"), index=False)
    df.to_parquet(stem.with_suffix(".parquet"), index=False)


def print_summary(summary: dict[str, Any]) -> None:
    """Print the headline metrics as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['label']} ({summary['n_molecules']} molecules, {summary['wall_s']} s)",
                  caption="E: median oracle energy above the ground state (kcal/mol); ratio: E(MMFF)/E; "
                          "speedup: 1 - steps/steps(MMFF); gap: cos(Δ10, gs) - cos(Δ10, f)")
    cols = {"E": "median_energy_above_ground_kcal_mol", "ratio": "energy_ratio", "steps": "median_steps",
            "speedup": "median_speedup", "p25": "p25_speedup", "p75": "p75_speedup", "slower": "fraction_slower",
            "gap": "alignment_gap", "ms/mol": "denoiser_ms_per_molecule", "failed": "n_failed"}
    table.add_column("method", no_wrap=True)
    for header in cols:
        table.add_column(header, justify="right")
    for method, vals in summary["methods"].items():
        table.add_row(method, *("-" if vals.get(c) is None else f"{vals[c]:.3g}" for c in cols.values()))
    Console(width=max(100, Console().width)).print(table)


def load_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())
