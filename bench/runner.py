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
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench import metrics, registry
from bench.artifacts import begin_run_folder, end_run_folder, write_table
from bench.baselines import CEILING_SIGMA_ANG, resolve_baseline
from bench.cards import AUTO_MODES, LoadedDenoiser, SamplerSettings, load_denoisers
from bench.columns import Col
from bench.data.dataset import load_dataset, read_manifest, split_content_sha256, write_json_atomic
from bench.errors import InputError
from bench.manifest import make_manifest
from bench.oracles import get_oracle
from bench.parallel import make_executor
from bench.progress import show_progress
from bench.reports import write_report
from bench.reports.analysis import write_analysis_report
from bench.store import ResultStore
from bench.tasks import denoiser_starts, ground_references, make_starts
from bench.tasks.alignment import summarise_alignment
from bench.tasks.spec import RunContext



def check_backend(name: str) -> None:
    """Refuse a ``--backend`` value that is neither ``auto`` (the fastest available
    here) nor one of :data:`edm_core.backends.BACKENDS`."""
    from edm_core.backends import BACKENDS

    if name != "auto" and name not in BACKENDS:
        raise InputError(f"--backend: unknown backend {name!r}; choose from {['auto', *BACKENDS]}")


@dataclass(frozen=True)
class RunSettings:
    """What a run computes; recorded whole in its manifest."""

    dataset: str = "qm9-xtb"
    split: str = "test"
    n_molecules: int = 100
    seed: int = 0
    #: Only molecules with at most this many atoms (DFT cost grows as N^3 to N^4).
    max_atoms: int | None = None
    tasks: tuple[str, ...] = field(default_factory=lambda: tuple(registry.run_task_names()))
    oracle: str = "xtb"
    oracle_settings: dict[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("mmff", "uff", "etkdg", "ceiling")
    denoisers: tuple[str, ...] = ()
    #: Start steps n for every denoiser (ints, ``auto``, ``auto-itp``, ``auto-as``);
    #: None: each card's ``relaxation.n_steps``.
    n_steps: tuple[int | str, ...] | None = None
    #: Strided samplers: the way n -> 0 in k network steps, for each k (and every step
    #: where k >= n); None: each card's ``relaxation.evaluations`` (default every step).
    evaluations: tuple[int, ...] | None = None
    #: Stochastic denoisers run once per seed; metrics pool (molecule, seed) rows.
    denoiser_seeds: tuple[int, ...] = (0, 1, 2)
    fmax_ev_ang: float = 0.03
    optimizer: str = "BFGS"
    max_steps: int = 1000
    workers: int = 1
    dask: str | None = None
    #: Allow entry-point cards, which import and run Python code.
    trust_code: bool = False
    #: How EDM checkpoints' networks run: auto, torch, cpp, triton or onnx.
    backend: str = "auto"
    bootstrap: metrics.Bootstrap = field(default_factory=metrics.Bootstrap)

    def __post_init__(self) -> None:
        if self.n_molecules < 1:
            raise InputError(f"-n/--n-molecules must be >= 1, got {self.n_molecules}")
        if "mmff" not in self.methods:
            raise InputError("--methods must include 'mmff', the reference of every speedup")
        for m in self.methods:
            resolve_baseline(m, self.oracle)
        if self.evaluations is not None and (not self.evaluations or min(self.evaluations) < 1):
            raise InputError(f"--evaluations must be integers >= 1, got {self.evaluations}")
        if self.n_steps is not None and (not self.n_steps or any(
                n not in ("auto", *AUTO_MODES) if isinstance(n, str) else n < 1 for n in self.n_steps)):
            raise InputError(f"--n-steps must be integers >= 1 or auto, auto-itp, auto-as, got {self.n_steps}")
        registry.run_tasks(self.tasks)
        if self.max_atoms is not None and self.max_atoms < 1:
            raise InputError(f"--max-atoms must be >= 1, got {self.max_atoms}")
        if not (math.isfinite(self.fmax_ev_ang) and self.fmax_ev_ang > 0):
            raise InputError(f"--fmax must be a finite number > 0 (eV/A), got {self.fmax_ev_ang}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        check_backend(self.backend)
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
    begin_run_folder(out_dir)
    molecules = load_dataset(settings.dataset, settings.split, verify=True)  # milliseconds: always
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


def strided_plan(start_steps: Sequence[int | str], evaluations: Sequence[int | None]
                 ) -> list[tuple[int | str, int | None]]:
    """(n, k) of each denoiser row: k strided network steps from n, None for every step
    (a k >= n is every step; a learned start takes every step); each pair once, in order."""
    pairs = [(n, k if k is not None and not isinstance(n, str) and k < n else None)
             for n in start_steps for k in evaluations]
    return list(dict.fromkeys(pairs))


def denoiser_plan(denoiser: LoadedDenoiser, settings: RunSettings) -> LoadedDenoiser:
    """The denoiser with the run's sampler settings (``--n-steps``, ``--evaluations``
    over its card's); learned starts given by ``--n-steps`` are left out for a denoiser
    without a time-step predictor (the manifest says so)."""
    plan = denoiser.with_sampler(settings.n_steps, settings.evaluations)
    if not denoiser.model.capabilities.auto_start:
        kept = tuple(n for n in plan.sampler.start_steps if not isinstance(n, str))
        if not kept:
            raise InputError(f"{denoiser.card_path}: --n-steps asks only for learned start steps, and this denoiser "
                             "has no time-step predictor")
        plan = replace(plan, sampler=replace(plan.sampler, start_steps=kept))
    return plan


def plan_manifest(denoiser: LoadedDenoiser, settings: RunSettings) -> dict[str, Any]:
    """What the manifest records of how a run used one denoiser."""
    from edm_core.backends import describe as describe_backend

    sampler = denoiser.sampler
    asked = SamplerSettings.from_card(denoiser.card, settings.n_steps, settings.evaluations).start_steps
    return {"card_path": denoiser.card_path, "card": denoiser.card, "backend": denoiser.backend,
            "backend_details": describe_backend(denoiser.backend), "start_steps": list(sampler.start_steps),
            "start_steps_from": sampler.start_steps_from,
            "start_steps_left_out": {str(n): "no time-step predictor" for n in asked if n not in sampler.start_steps},
            "evaluations": list(sampler.evaluations),
            "seeds": list(settings.denoiser_seeds if sampler.stochastic else settings.denoiser_seeds[:1]),
            "stochastic": sampler.stochastic, "noise_scale": sampler.noise_scale, "add_noise": sampler.add_noise,
            "max_steps": sampler.max_steps, "capabilities": asdict(denoiser.model.capabilities)}


def _run(settings: RunSettings, out_dir: Path, records: list, oracle: Any, t0: float) -> dict[str, Any]:
    denoisers = {key: denoiser_plan(d, settings) for key, d in
                 load_denoisers(settings.denoisers, trust_code=settings.trust_code, backend=settings.backend).items()}
    plans = {key: plan_manifest(d, settings) for key, d in denoisers.items()}
    dataset_manifest = read_manifest(settings.dataset)
    # The dataset's ground states are minima of its own oracle; under another
    # level of theory the reference is that oracle's minimum, relaxed from them.
    same_level = settings.oracle == dataset_manifest["oracle"]["name"] and not settings.oracle_settings
    ground_fmax = None if same_level else settings.fmax_ev_ang
    ids = [r.id for r in records]
    content = split_content_sha256(dataset_manifest, settings.split)
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
        "denoisers": plans,
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
    tasks = registry.run_tasks(settings.tasks)
    keep_paths = any("paths" in task.needs for task in tasks)
    context = RunContext(records, oracle, grounds,
                         make_starts(records, {m: resolve_baseline(m, settings.oracle) for m in settings.methods},
                                     grounds), fmax_ev_ang=settings.fmax_ev_ang, optimizer=settings.optimizer,
                         max_steps=settings.max_steps)
    rows = [(key, n, k, index, seed) for key in denoisers
            for n, k in strided_plan(plans[key]["start_steps"], plans[key]["evaluations"])
            for index, seed in enumerate(plans[key]["seeds"])]
    for key, n, k, index, seed in tqdm(rows, desc="denoiser relaxations", disable=not show_progress(len(rows)),
                                       leave=False):
        plan = plans[key]
        name = f"{key}/n={n}" + (f"/k={k}" if k else "")
        fixed = [m for m in plan["start_steps"] if not isinstance(m, str)]
        keep = keep_paths and index == 0 and fixed and n == max(fixed) and k is None  # first seed, largest n
        seed_key = seed if plan["stochastic"] else None
        context.starts[(name, seed_key)], paths = denoiser_starts(records, denoisers[key], n, seed=seed,
                                                                  keep_path=bool(keep), evaluations=k)
        if keep:
            context.paths[(name, seed_key)] = paths
    tables: dict[str, pd.DataFrame] = {}
    manifest["tasks_skipped"] = {}
    for task in tasks:
        if "denoiser" in task.needs and not denoisers:
            manifest["tasks_skipped"][task.name] = "needs a denoiser; the run has none"
            continue
        produced = task.compute(context)
        task.check_tables(produced)
        tables.update(produced)
    hashes = {name: write_table(df, out_dir / name) for name, df in tables.items()}
    manifest["tables"] = {name: {"sha256": hashes[name], "rows": len(df), "per_molecule": True}
                          for name, df in tables.items()}
    rejected = oracle.store.n_rejected if oracle.store is not None else 0
    manifest["store"] = {"records_failing_checksum_recomputed": rejected}
    if rejected:
        print(f"store: {rejected} record(s) failed their checksum and were recomputed", file=sys.stderr)
    return derive(out_dir, tables, manifest, round(time.perf_counter() - t0, 1))


def derive(out_dir: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any], wall_s: float | None
           ) -> dict[str, Any]:
    """Everything a run folder derives from its per-molecule tables: ``metrics``
    (every metric with its interval), the path and checkpoint summaries,
    ``summary.json``, figures and the report; the manifest gets their sha256.
    Returns the summary."""
    settings = manifest["settings"]
    boot = metrics.Bootstrap(**{k: v for k, v in settings["bootstrap"].items() if k != "unit"})
    tasks = registry.run_tasks(settings["run"]["tasks"])  # the tasks that wrote these tables
    headline = registry.headline(tables, boot, tasks)
    derived = {"metrics": headline}
    if "path" in tables:
        derived["path_summary"] = summarise_alignment(tables["path"])
    series = checkpoint_series(headline, settings["denoisers"])
    if series["epoch"].nunique() > 1:  # more than one checkpoint epoch: the series is a result
        derived["checkpoints"] = series
    for name, df in derived.items():
        manifest["tables"][name] = {"sha256": write_table(df, out_dir / name), "rows": len(df),
                                    "per_molecule": False}
    write_json_atomic(out_dir / "manifest.json", manifest)
    benchmark = {k: v for k, v in settings["benchmark"].items() if k != "label"}
    summary = {
        "task": "run", "label": settings["benchmark"]["label"], "benchmark": benchmark,
        "primary_metric": next((m for m in metrics.PRIMARY if m in headline), None),
        "n_molecules": benchmark["n_molecules"], "wall_s": wall_s,
        "methods": {row.pop(Col.METHOD): {k: _num(v) for k, v in row.items()}
                    for row in headline.to_dict(orient="records")},
    }
    write_json_atomic(out_dir / "summary.json", summary)
    write_report(out_dir, {**tables, **derived}, summary, manifest, registry.figure_functions(tasks))
    end_run_folder(out_dir)
    return summary


def write_run_folder(out_dir: Path, task_name: str, settings: dict[str, Any], tables: dict[str, pd.DataFrame],
                     summary: dict[str, Any], sections: Sequence[tuple[str, str]], intro: str) -> dict[str, Any]:
    """The run folder of an analysis task (``boltzmann``, ``phases``, ``generation``):
    its tables (checked against the task's declared schema), ``manifest.json`` with
    their sha256, ``summary.json`` and the report with the task's figures; marked
    incomplete until written whole. ``sections`` are (table name, title) pairs of
    the report. Returns the manifest."""
    task = registry.registry()[task_name]
    task.check_tables(tables)
    begin_run_folder(out_dir)
    manifest = make_manifest({"task": task_name, **settings})
    manifest["tables"] = {name: {"sha256": write_table(df, out_dir / name), "rows": len(df),
                                 "per_molecule": name in task.tables} for name, df in tables.items()}
    write_json_atomic(out_dir / "manifest.json", manifest)
    write_json_atomic(out_dir / "summary.json", summary)
    write_analysis_report(out_dir, tables, summary, manifest, registry.figure_functions([task]), sections, intro)
    end_run_folder(out_dir)
    return manifest


def rederive(run_dir: Path) -> dict[str, Any]:
    """Recompute a finished run folder's metrics, summary, figures and report from
    its per-molecule tables (checked against their sha256): after a change of a
    metric's definition, no oracle work is redone."""
    from bench.artifacts import read_run_tables

    manifest, tables = read_run_tables(run_dir)
    manifest["tables"] = {k: v for k, v in manifest["tables"].items() if v.get("per_molecule")}
    previous = Path(run_dir) / "summary.json"
    wall_s = json.loads(previous.read_text()).get("wall_s") if previous.is_file() else None
    begin_run_folder(Path(run_dir))
    return derive(Path(run_dir), tables, manifest, wall_s)


def checkpoint_series(headline: pd.DataFrame, denoisers: dict[str, dict]) -> pd.DataFrame:
    """Median speedup, energy ratio and alignment gaps per (checkpoint epoch, sampler, n): the
    study's checkpoint analysis, from the cards' ``training.epochs`` (``denoisers``
    as the manifest records them: card and start steps per card key)."""
    rows = []
    table = headline.set_index(Col.METHOD)
    for key, entry in denoisers.items():
        for n in (m for m in entry["start_steps"] if not isinstance(m, str)):  # learned starts have no fixed n
            name = f"{key}/n={n}"
            row = {"denoiser": key, "epoch": entry["card"]["training"].get("epochs"), Col.START_STEP: n,
                   "sampler": "ancestral" if entry["stochastic"] else "deterministic"}
            for metric in ("median_speedup", "energy_ratio", "alignment_gap", "alignment_gap_fixed_gs"):
                row[metric] = table.at[name, metric] if name in table.index and metric in table else None
            rows.append(row)
    return pd.DataFrame(rows, columns=["denoiser", "epoch", Col.START_STEP, "sampler", "median_speedup",
                                       "energy_ratio", "alignment_gap", "alignment_gap_fixed_gs"])


def _num(x: Any) -> float | int | None:
    """A summary.json number: None for NaN, 4 decimals; an infinite ratio (a method
    at the ground state) stays infinite (``Infinity``, which Python's json reads back)."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(x) if math.isinf(float(x)) else round(float(x), 4)


#: The summary table's columns, most important first: narrow terminals drop from the end.
SUMMARY_COLUMNS = {"speedup": "median_speedup", "ratio": "energy_ratio", "<1kcal": "within_1_kcal_mol",
                   "E": "mean_energy_above_ground_kcal_mol", "rmsd": "mean_rmsd_heavy_ang", "failed": "n_failed",
                   "gap": "alignment_gap", "slower": "fraction_slower", "steps": "median_oracle_steps",
                   "ms/mol": "denoiser_ms_per_molecule"}


def print_summary(summary: dict[str, Any], width: int | None = None) -> None:
    """Print the headline metrics as a table that fits the terminal (or ``width``):
    method names fold, and the least important columns are left out when it is
    narrow (every metric is in ``metrics.csv`` and ``summary.json``)."""
    from bench.terminal import print_fitted

    rows = {m: [("-" if v.get(c) is None else f"{v[c]:.3g}") for c in SUMMARY_COLUMNS.values()]
            for m, v in summary["methods"].items()}
    print_fitted(f"{summary['label']} ({summary['wall_s']} s)", "method", rows, list(SUMMARY_COLUMNS),
                 "speedup: median 1 - BFGS steps / steps from MMFF; ratio: mean E(MMFF) / mean E above the ground "
                 "state; <1kcal: fraction within 1 kcal/mol; E: mean kcal/mol; rmsd: heavy atoms, A", width,
                 "metrics.csv")