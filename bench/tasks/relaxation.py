"""The relaxation tasks: energy above the ground state, and oracle steps saved.

Definitions (PROTOCOLS.md):

* energy above ground state of a start ``x``: ``E(x) - E(ground)`` with the same
  oracle, kcal/mol. The ground state is the dataset's (a GFN2-xTB minimum); under
  another oracle (DFT) it is first relaxed with that oracle, so the reference is
  the oracle's own minimum (see :func:`ground_references`).
* speedup of a method over the reference (the MMFF start):
  ``1 - steps_method / steps_reference``, steps counted as ASE's
  ``get_number_of_steps()`` for BFGS with ``fmax`` (0.03 eV/A).
* energy delta: ``E(relaxed from reference) - E(relaxed from method)``, kcal/mol;
  positive when the reference-started relaxation ended higher.

Failures are rows with ``status`` other than ``"ok"`` and NaN numbers, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.columns import Col
from bench.data.records import MoleculeRecord
from bench.errors import EdmBenchError
from bench.oracles.base import Oracle
from bench.units import EV_TO_KCAL_MOL

#: The method every speedup and energy delta is measured against.
REFERENCE = "mmff"


@dataclass(frozen=True)
class Start:
    """A method's start geometry for one record, or why there is none."""

    positions: np.ndarray | None
    message: str = ""


Starts = dict[str, list[Start]]


def make_starts(records: Sequence[MoleculeRecord], methods: dict[str, Callable[[MoleculeRecord], np.ndarray]],
                progress: bool = True) -> Starts:
    """Apply every per-molecule method to every record; a failing record gets a
    message, not an exception."""
    out: Starts = {}
    for name, fn in methods.items():
        starts = []
        for rec in tqdm(records, desc=f"starts {name}", disable=not progress, leave=False):
            try:
                starts.append(Start(np.asarray(fn(rec), dtype=float)))
            except (EdmBenchError, ValueError) as exc:
                starts.append(Start(None, str(exc)))
        out[name] = starts
    return out


def denoiser_starts(records: Sequence[MoleculeRecord], denoiser: Any, n_steps: int, seed: int = 0,
                    batch_size: int = 64, keep_path: bool = False, noise_scale: float = 1.0,
                    add_noise: bool = False) -> tuple[list[Start], float, list[np.ndarray | None]]:
    """Relax every record's MMFF start with ``denoiser`` from step ``n_steps`` (batched).

    ``noise_scale`` 1 is the study's ancestral sampler, 0 a deterministic one;
    ``add_noise`` noises the start to step n first (the study did not).

    Molecules the model cannot take (an element it lacks, too many atoms) get a
    message instead of positions; the rest run in one batched call.

    Returns
    -------
    starts : list of Start, aligned with ``records``
    wall_s : float
        The denoiser's own wall time for the whole set.
    paths : list
        Per record, the (n_steps + 2, n_atoms, 3) path when ``keep_path`` (else None).
    """
    import time

    starts: list[Start] = [Start(None)] * len(records)
    paths: list[np.ndarray | None] = [None] * len(records)
    ok = []
    for i, rec in enumerate(records):
        try:
            denoiser.check(rec.numbers, rec.start_positions, rec.id)
            ok.append(i)
        except ValueError as exc:
            starts[i] = Start(None, str(exc))
    t0 = time.perf_counter()
    if ok:
        out = denoiser.relax([(records[i].numbers, records[i].start_positions) for i in ok], n_steps, seed=seed,
                             batch_size=batch_size, names=[records[i].id for i in ok], keep_path=keep_path,
                             noise_scale=noise_scale, add_noise=add_noise)
        for k, i in enumerate(ok):
            starts[i] = Start(out.positions[k])
            if keep_path:
                paths[i] = out.paths[k]
    return starts, time.perf_counter() - t0, paths


def _with_positions(record: MoleculeRecord, positions: np.ndarray):
    atoms = record.to_atoms("start")
    atoms.positions = positions
    return atoms


@dataclass(frozen=True)
class GroundReference:
    """The oracle energy of a molecule's ground state, or why there is none."""

    energy_ev: float
    ok: bool
    message: str = ""


def ground_references(records: Sequence[MoleculeRecord], oracle: Oracle, relax_fmax: float | None = None
                      ) -> list[GroundReference]:
    """The reference energy of every record's ground state under ``oracle`` (cached).

    With ``relax_fmax`` None the dataset's ground geometry is taken as it is (right
    when the oracle is the one that made it); otherwise it is relaxed with the
    oracle to ``relax_fmax`` eV/A first, and a relaxation that does not converge
    gives no reference.
    """
    items = [(rec.to_atoms("ground"), rec.id) for rec in records]
    if relax_fmax is None:
        return [GroundReference(r.energy_ev, r.ok, r.message) for r in oracle.single_point_many(items)]
    return [GroundReference(r.energy_ev, r.converged, r.message or r.status)
            for r in oracle.relax_many(items, fmax=relax_fmax)]


def energy_above_ground(records: Sequence[MoleculeRecord], starts: Starts, oracle: Oracle,
                        progress: bool = True, ground_fmax: float | None = None) -> pd.DataFrame:
    """Oracle energy of each start above the record's ground state (kcal/mol).

    The ground-state energy is recomputed with ``oracle`` (cached; relaxed first
    when ``ground_fmax`` is given, see :func:`ground_references`), so the
    difference is always taken within one level of theory. All single points go
    to the oracle in one batch (parallel when it has an executor).
    """
    methods = list(starts)
    items, where = [], []
    for i, rec in enumerate(records):
        for method in methods:
            if starts[method][i].positions is not None:
                items.append((_with_positions(rec, starts[method][i].positions), rec.id))
                where.append((i, method))
    grounds = ground_references(records, oracle, ground_fmax)
    computed = dict(zip(where, oracle.single_point_many(items)))
    rows = []
    for i, rec in enumerate(tqdm(records, desc="energy above ground", disable=not progress, leave=False)):
        for method in methods:
            row = {Col.ID: rec.id, Col.METHOD: method, Col.N_ATOMS: rec.n_atoms,
                   Col.ENERGY_ABOVE_GROUND: np.nan, Col.STATUS: "ok", Col.MESSAGE: ""}
            sp = computed.get((i, method))
            if sp is None:
                row.update({Col.STATUS: "no_start", Col.MESSAGE: starts[method][i].message})
            elif not grounds[i].ok:
                row.update({Col.STATUS: "oracle_failed", Col.MESSAGE: f"ground state: {grounds[i].message}"})
            elif not sp.ok:
                row.update({Col.STATUS: "oracle_failed", Col.MESSAGE: sp.message})
            else:
                row[Col.ENERGY_ABOVE_GROUND] = (sp.energy_ev - grounds[i].energy_ev) * EV_TO_KCAL_MOL
            rows.append(row)
    return pd.DataFrame(rows)


def relax_from_starts(records: Sequence[MoleculeRecord], starts: Starts, oracle: Oracle, fmax: float = 0.03,
                      optimizer: str = "BFGS", max_steps: int = 1000, progress: bool = True) -> pd.DataFrame:
    """Relax every start with the oracle; steps, cost and final energies per (molecule, method).

    Adds ``speedup`` and ``delta_e_kcal_mol`` against the :data:`REFERENCE` method
    when it is among ``starts``. All relaxations go to the oracle in one batch.
    """
    methods = list(starts)
    items, where = [], []
    for i, rec in enumerate(records):
        for method in methods:
            if starts[method][i].positions is not None:
                items.append((_with_positions(rec, starts[method][i].positions), rec.id))
                where.append((i, method))
    computed = dict(zip(where, oracle.relax_many(items, fmax=fmax, optimizer=optimizer, max_steps=max_steps)))
    rows = []
    for i, rec in enumerate(tqdm(records, desc="oracle relaxations", disable=not progress, leave=False)):
        for method in methods:
            row = {Col.ID: rec.id, Col.METHOD: method, Col.N_ATOMS: rec.n_atoms, Col.N_STEPS: np.nan,
                   Col.N_FORCE_CALLS: np.nan, Col.WALL_S: np.nan, Col.RELAXED_ENERGY: np.nan,
                   Col.CONVERGED: False, Col.STATUS: "ok", Col.MESSAGE: ""}
            res = computed.get((i, method))
            if res is None:
                row.update({Col.STATUS: "no_start", Col.MESSAGE: starts[method][i].message})
            else:
                row.update({Col.N_STEPS: res.n_steps, Col.N_FORCE_CALLS: res.n_force_calls, Col.WALL_S: res.wall_s,
                            Col.RELAXED_ENERGY: res.energy_ev, Col.CONVERGED: res.converged,
                            Col.STATUS: "ok" if res.converged else res.status, Col.MESSAGE: res.message})
            rows.append(row)
    return add_speedup(pd.DataFrame(rows))


def add_speedup(df: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per-molecule speedup and energy delta against the ``reference`` method's row."""
    df = df.copy()
    if reference not in set(df[Col.METHOD]):
        df[Col.SPEEDUP] = np.nan
        df[Col.DELTA_E] = np.nan
        df[Col.REFERENCE_N_STEPS] = np.nan
        return df
    ref = df[df[Col.METHOD] == reference].set_index(Col.ID)
    ok_ref = ref[Col.STATUS] == "ok"
    ref_steps = df[Col.ID].map(ref[Col.N_STEPS].where(ok_ref))
    ref_energy = df[Col.ID].map(ref[Col.RELAXED_ENERGY].where(ok_ref))
    ok = df[Col.STATUS] == "ok"
    df[Col.REFERENCE_N_STEPS] = ref_steps
    # A reference that took 0 steps leaves nothing to speed up: undefined, not infinite.
    df[Col.SPEEDUP] = np.where(ok & (ref_steps > 0), 1.0 - df[Col.N_STEPS] / ref_steps, np.nan)
    df[Col.DELTA_E] = np.where(ok, (ref_energy - df[Col.RELAXED_ENERGY]) * EV_TO_KCAL_MOL, np.nan)
    return df


def summarise_energy(df: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per method: mean and median energy above ground, the ratio reference/method
    of medians, and failure counts."""
    out = []
    ref_median = df.loc[(df[Col.METHOD] == reference) & (df[Col.STATUS] == "ok"), Col.ENERGY_ABOVE_GROUND].median()
    for method, g in df.groupby(Col.METHOD, sort=False):
        e = g.loc[g[Col.STATUS] == "ok", Col.ENERGY_ABOVE_GROUND]
        out.append({Col.METHOD: method, "n": len(g), "n_failed": int((g[Col.STATUS] != "ok").sum()),
                    "mean_kcal_mol": e.mean(), "median_kcal_mol": e.median(),
                    "energy_ratio": ref_median / e.median() if len(e) and e.median() > 0 else np.nan})
    return pd.DataFrame(out)


def bootstrap_median_ci(values: np.ndarray, n_resamples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (resampling molecules; seeded)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(n_resamples, len(values)), replace=True), axis=1)
    lo, hi = np.quantile(medians, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summarise_relax(df: pd.DataFrame, delta_cut_kcal_mol: float = 0.2) -> pd.DataFrame:
    """Per method: median speedup with its 95% bootstrap interval, 25th and 75th
    percentile (all molecules, and excluding ``abs(delta_e) > delta_cut``),
    fraction slower, steps, force calls, oracle time, and failure counts."""
    out = []
    for method, g in df.groupby(Col.METHOD, sort=False):
        s = g[Col.SPEEDUP].dropna()
        same_basin = g.loc[g[Col.DELTA_E].abs() <= delta_cut_kcal_mol, Col.SPEEDUP].dropna()
        lo, hi = bootstrap_median_ci(s.to_numpy())
        per_seed = g.groupby("seed")[Col.SPEEDUP].median() if "seed" in g and g["seed"].notna().any() else None
        out.append({
            Col.METHOD: method, "n": len(g), "n_failed": int((g[Col.STATUS] != "ok").sum()),
            "median_speedup": s.median(), "median_speedup_ci_low": lo, "median_speedup_ci_high": hi,
            "median_speedup_seed_std": per_seed.std() if per_seed is not None and len(per_seed) > 1 else np.nan,
            "p25_speedup": s.quantile(0.25), "p75_speedup": s.quantile(0.75),
            "median_speedup_same_basin": same_basin.median(), "n_same_basin": len(same_basin),
            "fraction_slower": float((s < 0).mean()) if len(s) else np.nan,
            "median_steps": g[Col.N_STEPS].median(), "total_force_calls": g[Col.N_FORCE_CALLS].sum(),
            "total_oracle_s": g[Col.WALL_S].sum(), "median_delta_e_kcal_mol": g[Col.DELTA_E].median(),
        })
    return pd.DataFrame(out)
