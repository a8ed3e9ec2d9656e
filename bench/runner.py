"""``edm-bench run``: run the relaxation tasks on a dataset split and write a run folder.

A run folder holds ``manifest.json`` (versions, git revision, hardware, every
setting), per-molecule tables (``energy.csv``/``.parquet``, ``relax.csv``/``.parquet``),
per-method summaries, ``summary.json`` (headline metrics) and ``report.md``.
All oracle work goes through the results store, so a rerun, or a run killed and
started again, only computes what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import metrics
from bench.artifacts import write_table
from bench.baselines import CEILING_SIGMA_ANG, resolve_baseline
from bench.cards import load_denoisers
from bench.columns import Col
from bench.data.dataset import load_dataset, read_manifest, write_json_atomic
from bench.errors import InputError
from bench.manifest import make_manifest
from bench.oracles import get_oracle
from bench.parallel import make_executor
from bench.reports import write_report
from bench.store import ResultStore
from bench.tasks import denoiser_starts, energy_above_ground, ground_references, make_starts, relax_from_starts
from bench.tasks.alignment import along_path, summarise_alignment

#: The tasks of a run (PROTOCOLS.md); force-alignment needs a denoiser.
TASKS = ("energy-ratio", "relax-speedup", "force-alignment")
#: The per-molecule tables a run writes, by task.
TASK_TABLES = {"energy-ratio": "energy", "relax-speedup": "relax", "force-alignment": "path"}


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
    methods: tuple[str, ...] = ("mmff", "uff", "etkdg", "ceiling")
    denoisers: tuple[str, ...] = ()
    #: Start steps n for every denoiser; None: each card's ``relaxation.n_steps``.
    n_steps: tuple[int, ...] | None = None
    #: Stochastic denoisers run once per seed; metrics pool (molecule, seed) rows.
    denoiser_seeds: tuple[int, ...] = (0, 1, 2)
    fmax_ev_ang: float = 0.03
    optimizer: str = "BFGS"
    max_steps: int = 1000
    workers: int = 1
    dask: str | None = None
    bootstrap: metrics.Bootstrap = field(default_factory=metrics.Bootstrap)

    def __post_init__(self) -> None:
        if self.n_molecules < 1:
            raise InputError(f"-n/--n-molecules must be >= 1, got {self.n_molecules}")
        if "mmff" not in self.methods:
            raise InputError("--methods must include 'mmff', the reference of every speedup")
        for m in self.methods:
            resolve_baseline(m, self.oracle)
        if self.n_steps is not None and (not self.n_steps or any(n < 1 for n in self.n_steps)):
            raise InputError(f"--n-steps must be integers >= 1, got {self.n_steps}")
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise InputError(f"--tasks: unknown task(s) {unknown}; choose from {list(TASKS)}")
        if self.max_atoms is not None and self.max_atoms < 1:
            raise InputError(f"--max-atoms must be >= 1, got {self.max_atoms}")
        if not (math.isfinite(self.fmax_ev_ang) and self.fmax_ev_ang > 0):
            raise InputError(f"--fmax must be a finite number > 0 (eV/A), got {self.fmax_ev_ang}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.denoisers and not self.denoiser_seeds:
            raise InputError("--seeds is empty: a denoiser needs at least one seed")


def select(n_total: int, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded random choice of ``n`` of ``n_total`` molecules, sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def subset_hash(content_sha256: str, ids: list[str]) -> str:
    """Identity of a molecule subset: the split's content hash and the chosen ids."""
    return hashlib.sha256((content_sha256 + "\n" + "\n".join(ids)).encode()).hexdigest()


def benchmark_label(benchmark: dict[str, Any]) -> str:
    """The name every number of a run carries: dataset/split/oracle (versions and
    settings)/fmax/subset; only rows with the same label are ranked together."""
    versions = ",".join(f"{k} {v}" for k, v in benchmark["oracle_versions"].items())
    return (f"{benchmark['dataset']}/{benchmark['split']}/{benchmark['oracle']}[{versions}; "
            f"settings {benchmark['oracle_settings_sha256'][:8]}]/fmax={benchmark['fmax_ev_ang']}/"
            f"subset {benchmark['subset_sha256'][:12]} ({benchmark['n_molecules']} molecules)")


def run(settings: RunSettings, out_dir: Path, store_path: Path | None = None) -> dict[str, Any]:
    """Run the tasks and write the run folder; return the summary."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    molecules = load_dataset(settings.dataset, settings.split)
    if settings.max_atoms is not None:
        molecules = [r for r in molecules if r.n_atoms <= settings.max_atoms]
        if not molecules:
            raise InputError(f"--max-atoms: no molecule of {settings.dataset}/{settings.split} has <= "
                             f"{settings.max_atoms} atoms")
    records = [molecules[int(i)] for i in select(len(molecules), settings.n_molecules, settings.seed)]
    store = ResultStore(store_path or out_dir / "store.sqlite")
    with contextlib.ExitStack() as stack:
        executor = None
        if settings.dask or settings.workers > 1:
            executor = stack.enter_context(make_executor(settings.workers, settings.dask))
        oracle = get_oracle(settings.oracle, store=store, executor=executor, **settings.oracle_settings)
        summary = _run(settings, out_dir, records, oracle, t0)
    store.close()
    return summary


def denoiser_plan(denoiser: Any, settings: RunSettings) -> dict[str, Any]:
    """How a run uses one denoiser: start steps (the card's unless ``--n-steps``),
    seeds (one for a deterministic sampler) and the sampler settings."""
    relax = denoiser.card["relaxation"]
    noise_scale = float(relax.get("noise_scale", 1.0))
    return {"start_steps": list(settings.n_steps or relax["n_steps"]),
            "start_steps_from": "--n-steps" if settings.n_steps else "card relaxation.n_steps",
            "seeds": list(settings.denoiser_seeds if noise_scale > 0 else settings.denoiser_seeds[:1]),
            "stochastic": noise_scale > 0, "noise_scale": noise_scale,
            "add_noise": bool(relax.get("add_noise", False))}


def _run(settings: RunSettings, out_dir: Path, records: list, oracle: Any, t0: float) -> dict[str, Any]:
    denoisers = load_denoisers(settings.denoisers)
    plans = {key: denoiser_plan(d, settings) for key, d in denoisers.items()}
    dataset_manifest = read_manifest(settings.dataset)
    # The dataset's ground states are minima of its own oracle; under another
    # level of theory the reference is that oracle's minimum, relaxed from them.
    same_level = settings.oracle == dataset_manifest["oracle"]["name"] and not settings.oracle_settings
    ground_fmax = None if same_level else settings.fmax_ev_ang
    ids = [r.id for r in records]
    content = dataset_manifest["splits"][settings.split]["content_sha256"]
    described = oracle.describe()
    benchmark = {"dataset": settings.dataset, "split": settings.split, "oracle": oracle.name,
                 "oracle_versions": described["versions"],
                 "oracle_settings_sha256": hashlib.sha256(json.dumps(described["settings"], sort_keys=True,
                                                                     default=str).encode()).hexdigest(),
                 "fmax_ev_ang": settings.fmax_ev_ang, "subset_sha256": subset_hash(content, ids),
                 "n_molecules": len(records)}
    run_settings = {**asdict(settings), "methods": list(settings.methods), "tasks": list(settings.tasks)}
    manifest = make_manifest({
        "run": run_settings,
        "benchmark": {**benchmark, "label": benchmark_label(benchmark)},
        "denoisers": {key: {"card_path": path, "card": d.card, "backend": d.backend, **plans[key]}
                      for (key, d), path in zip(denoisers.items(), settings.denoisers)},
        "dataset": {"name": settings.dataset, "split": settings.split, "content_sha256": content, "ids": ids},
        "oracle": described,
        "ground_state": ("the dataset's ground geometry, single point" if ground_fmax is None else
                         f"the dataset's ground geometry relaxed with the oracle to fmax {ground_fmax} eV/A"),
        "ceiling": f"the oracle ground state + N(0, {CEILING_SIGMA_ANG}^2) per coordinate, seeded by molecule id",
        "failure_rule": metrics.FAILURE_RULE,
        "bootstrap": asdict(settings.bootstrap) | {"unit": "molecules (each with all its seeds)"},
        "units": {"energy": "kcal/mol (tables), eV (relaxed_energy_ev)", "fmax": "eV/A", "rmsd": "Angstrom",
                  "time": "s"},
        "step_counting": "ASE Optimizer.get_number_of_steps()",
        "optimizer": {"name": settings.optimizer, "fmax_ev_ang": settings.fmax_ev_ang,
                      "max_steps": settings.max_steps},
    })
    write_json_atomic(out_dir / "manifest.json", manifest)

    grounds = ground_references(records, oracle, ground_fmax)
    starts = make_starts(records, {m: resolve_baseline(m, settings.oracle) for m in settings.methods}, grounds)
    path_tables = []
    for key, denoiser in denoisers.items():
        plan = plans[key]
        for n in plan["start_steps"]:
            name = f"{key}/n={n}"
            for k, seed in enumerate(plan["seeds"]):
                # the path analysis: first seed, largest n
                keep = "force-alignment" in settings.tasks and k == 0 and n == max(plan["start_steps"])
                seed_key = seed if plan["stochastic"] else None
                starts[(name, seed_key)], paths = denoiser_starts(
                    records, denoiser, n, seed=seed, keep_path=keep, noise_scale=plan["noise_scale"],
                    add_noise=plan["add_noise"])
                if keep:
                    path_tables.append(along_path(records, paths, oracle, grounds, fmax=settings.fmax_ev_ang,
                                                  method=name, seed=seed_key))
    tables: dict[str, pd.DataFrame] = {}
    if "energy-ratio" in settings.tasks:
        tables["energy"] = energy_above_ground(records, starts, oracle, grounds)
    if "relax-speedup" in settings.tasks:
        tables["relax"] = relax_from_starts(records, starts, oracle, grounds, fmax=settings.fmax_ev_ang,
                                            optimizer=settings.optimizer, max_steps=settings.max_steps)
    if path_tables:
        tables["path"] = pd.concat(path_tables, ignore_index=True)
    headline = metrics.summarise(tables, settings.bootstrap)
    derived = {"metrics": headline}
    if "path" in tables:
        derived["path_summary"] = summarise_alignment(tables["path"])
    series = checkpoint_series(headline, denoisers, plans)
    if series["epoch"].nunique() > 1:  # more than one checkpoint epoch: the series is a result
        derived["checkpoints"] = series
    hashes = {name: write_table(df, out_dir / name) for name, df in {**tables, **derived}.items()}
    manifest["tables"] = {name: {"sha256": hashes[name], "rows": len(df), "per_molecule": name in tables}
                          for name, df in {**tables, **derived}.items()}
    write_json_atomic(out_dir / "manifest.json", manifest)

    primary = next((m for m in metrics.PRIMARY if m in headline), None)
    summary = {
        "task": "run", "label": manifest["settings"]["benchmark"]["label"], "benchmark": benchmark,
        "primary_metric": primary, "n_molecules": len(records), "wall_s": round(time.perf_counter() - t0, 1),
        "methods": {row.pop(Col.METHOD): {k: _num(v) for k, v in row.items()}
                    for row in headline.to_dict(orient="records")},
    }
    write_json_atomic(out_dir / "summary.json", summary)
    write_report(out_dir, {**tables, **derived}, summary, manifest)
    return summary


def checkpoint_series(headline: pd.DataFrame, denoisers: dict[str, Any], plans: dict[str, dict]) -> pd.DataFrame:
    """Median speedup, energy ratio and alignment gap per (checkpoint epoch, n): the
    study's checkpoint analysis, from the cards' ``training.epochs``."""
    rows = []
    table = headline.set_index(Col.METHOD)
    for key, d in denoisers.items():
        for n in plans[key]["start_steps"]:
            name = f"{key}/n={n}"
            row = {"denoiser": key, "epoch": d.card["training"].get("epochs"), Col.START_STEP: n}
            for metric in ("median_speedup", "energy_ratio", "alignment_gap", "alignment_gap_fixed_gs"):
                row[metric] = table.at[name, metric] if name in table.index and metric in table else None
            rows.append(row)
    return pd.DataFrame(rows, columns=["denoiser", "epoch", Col.START_STEP, "median_speedup", "energy_ratio",
                                       "alignment_gap", "alignment_gap_fixed_gs"])


def _num(x: Any) -> float | int | None:
    """A summary.json number: None for NaN, 4 decimals; an infinite ratio (a method
    at the ground state) stays infinite (``Infinity``, which Python's json reads back)."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(x) if math.isinf(float(x)) else round(float(x), 4)


def print_summary(summary: dict[str, Any]) -> None:
    """Print the headline metrics as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['label']} ({summary['wall_s']} s)",
                  caption="ratio: mean E(MMFF)/mean E (energy above the ground state, kcal/mol); <1: fraction "
                          "within 1 kcal/mol; rmsd: heavy-atom RMSD to the ground state (A); speedup: median "
                          "1 - steps/steps(MMFF); gap: cos(Δ10, gs) - cos(Δ10, f)")
    cols = {"E": "mean_energy_above_ground_kcal_mol", "ratio": "energy_ratio", "<1": "within_1_kcal_mol",
            "rmsd": "mean_rmsd_heavy_ang", "steps": "median_oracle_steps", "speedup": "median_speedup",
            "slower": "fraction_slower", "gap": "alignment_gap", "ms/mol": "denoiser_ms_per_molecule",
            "failed": "n_failed"}
    table.add_column("method", no_wrap=True)
    for header in cols:
        table.add_column(header, justify="right")
    for method, vals in summary["methods"].items():
        table.add_row(method, *("-" if vals.get(c) is None else f"{vals[c]:.3g}" for c in cols.values()))
    Console(width=max(100, Console().width)).print(table)


def load_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())
