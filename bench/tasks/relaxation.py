"""The relaxation tasks: energy above the ground state, and oracle steps saved.

Per (molecule, method, seed) these functions write one row of a tidy table;
every headline number is computed from those rows by :mod:`bench.metrics`,
which also applies the failure rule. Definitions (the study's):

* energy above ground state of a start ``x``: ``E(x) - E(ground)`` with the same
  oracle, kcal/mol. The ground state is the dataset's (a GFN2-xTB minimum); under
  another oracle (DFT) it is first relaxed with that oracle, so the reference is
  the oracle's own minimum (see :func:`ground_references`).
* oracle steps: ASE's ``get_number_of_steps()`` for BFGS to ``fmax`` (0.03 eV/A).
* RMSD to the ground state: symmetry-aware, aligned (:mod:`bench.tasks.structure`).

A method's output that fails (an exception, NaN or inf, a wrong shape, coincident
atoms) is a row with status ``output_failed`` and no oracle work; an oracle that
fails on a structure gives ``oracle_failed``. Rows are never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.columns import Col, Status
from bench.data.records import MoleculeRecord
from bench.errors import EdmBenchError
from bench.oracles.base import Oracle
from bench.tasks.spec import RunContext, Task
from bench.tasks.structure import best_rmsd
from bench.units import EV_TO_KCAL_MOL
from edm_core.geometry import geometry_problem

#: The method every speedup, energy ratio and failure substitution is measured against.
REFERENCE = "mmff"


@dataclass(frozen=True)
class Start:
    """A method's start geometry for one record, or why it has none.

    ``network_evaluations`` and ``denoiser_s`` are what producing it cost a
    denoiser (0 for baselines); they are spent even when the output failed.
    """

    positions: np.ndarray | None
    message: str = ""
    start_step: int | None = None
    network_evaluations: int = 0
    denoiser_s: float = 0.0


#: A method's starts: one per record, under the key (method name, seed); the seed
#: is None for deterministic methods (baselines, a deterministic sampler).
StartKey = tuple[str, int | None]
Starts = dict[StartKey, list[Start]]


def output_problem(positions: Any, n_atoms: int) -> str | None:
    """Why ``positions`` is not a usable structure of ``n_atoms`` atoms, or None."""
    try:
        pos = np.asarray(positions, dtype=float)
    except (TypeError, ValueError) as exc:
        return f"output is not an array of numbers ({exc})"
    if pos.shape != (n_atoms, 3):
        return f"output has shape {pos.shape}, expected ({n_atoms}, 3)"
    if not np.all(np.isfinite(pos)):
        return f"output has {int(np.sum(~np.isfinite(pos)))} NaN or infinite coordinate(s)"
    return geometry_problem(pos)


@dataclass(frozen=True)
class GroundReference:
    """The oracle ground state of a molecule (energy, geometry), or why there is none."""

    energy_ev: float
    positions: np.ndarray | None
    ok: bool
    message: str = ""


def ground_references(records: Sequence[MoleculeRecord], oracle: Oracle, relax_fmax: float | None = None
                      ) -> list[GroundReference]:
    """The reference ground state of every record under ``oracle`` (cached).

    With ``relax_fmax`` None the dataset's ground geometry is taken as it is (right
    when the oracle is the one that made it); otherwise it is relaxed with the
    oracle to ``relax_fmax`` eV/A first, and a relaxation that does not converge
    gives no reference.
    """
    items = [(rec.to_atoms("ground"), rec.id) for rec in records]
    if relax_fmax is None:
        return [GroundReference(r.energy_ev, rec.ground_positions, r.ok, r.message)
                for rec, r in zip(records, oracle.single_point_many(items))]
    return [GroundReference(r.energy_ev, r.positions_ang, r.converged, r.message or r.status)
            for r in oracle.relax_many(items, fmax=relax_fmax)]


def make_starts(records: Sequence[MoleculeRecord],
                methods: dict[str, Callable[[MoleculeRecord, np.ndarray], np.ndarray]],
                grounds: Sequence[GroundReference]) -> Starts:
    """Apply every baseline (record, ground-state positions -> positions) to every
    record; a failing record gets a message (its row fails), not an exception.
    The baseline's own time (a UFF or xTB pre-relaxation) is its cost, as a
    denoiser's evaluations are; the reference start's is 0 (every method starts
    from it, so its cost is common to all)."""
    out: Starts = {}
    for name, fn in methods.items():
        starts = []
        for rec, ground in zip(records, grounds):
            t0 = time.perf_counter()
            try:
                pos = fn(rec, ground.positions if ground.positions is not None else rec.ground_positions)
                problem = output_problem(pos, rec.n_atoms)
                cost = 0.0 if name == REFERENCE else time.perf_counter() - t0
                starts.append(Start(None, problem, denoiser_s=cost) if problem else
                              Start(np.asarray(pos, dtype=float), denoiser_s=cost))
            except (EdmBenchError, ValueError) as exc:
                starts.append(Start(None, str(exc), denoiser_s=time.perf_counter() - t0))
        out[(name, None)] = starts
    return out


def denoiser_starts(records: Sequence[MoleculeRecord], denoiser: Any, n_steps: int | str, seed: int = 0,
                    batch_size: int = 64, keep_path: bool = False, evaluations: int | None = None
                    ) -> tuple[list[Start], list[np.ndarray | None]]:
    """Relax every record's MMFF start with ``denoiser`` (a
    :class:`~bench.cards.LoadedDenoiser`) from step ``n_steps`` (batched), with its
    sampler settings: noise scale (1 the study's ancestral sampler, 0
    deterministic), ``add_noise``, and for a learned start (``auto-itp``,
    ``auto-as``) the most steps; ``evaluations`` = k covers the steps n -> 0 in k
    strided steps.

    Molecules the model cannot take (an element it lacks, too many atoms) fail with
    its message. A batch whose call raises (``SystemExit`` included: outside code
    cannot end the run) is run again molecule by molecule, so only the molecules
    that raise fail; an output with NaN, inf, a wrong shape or
    coincident atoms fails that molecule only. Each molecule records its start
    step (the predictor's reading for a learned start) and its network evaluations
    (reverse steps and the final decode); the denoiser's measured wall time is
    spread over the evaluations.

    Returns
    -------
    starts : list of Start, aligned with ``records``
    paths : list
        Per record, the (n_steps + 2, n_atoms, 3) path when ``keep_path`` (else None).
    """
    model, sampler = denoiser.model, denoiser.sampler
    fixed = None if isinstance(n_steps, str) else n_steps
    starts: list[Start] = [Start(None, start_step=fixed)] * len(records)
    paths: list[np.ndarray | None] = [None] * len(records)
    ok = []
    for i, rec in enumerate(records):
        try:
            model.check(rec.numbers, rec.start_positions, rec.id)
            ok.append(i)
        except ValueError as exc:
            starts[i] = Start(None, str(exc), start_step=fixed)
    options = {"seed": seed, "batch_size": batch_size, "noise_scale": sampler.noise_scale}
    if fixed is None:
        options["max_steps"] = sampler.max_steps
    else:
        options |= {"keep_path": keep_path, "add_noise": sampler.add_noise, "evaluations": evaluations}

    def call(idx: list[int]) -> Any:
        return model.relax([(records[i].numbers, records[i].start_positions) for i in idx], n_steps,
                           names=[records[i].id for i in idx], **options)

    def unpack(out: Any, k: int) -> tuple[np.ndarray, np.ndarray | None, int, int]:
        first, spent = getattr(out, "start_steps", None), getattr(out, "network_evaluations", None)
        steps = fixed if first is None else int(first[k])
        n_eval = (evaluations or fixed) + 1 if spent is None else int(spent[k])
        return out.positions[k], out.paths[k] if keep_path else None, steps, n_eval

    t0 = time.perf_counter()
    results: dict[int, tuple[np.ndarray, np.ndarray | None, int, int] | str] = {}
    try:
        out = call(ok) if ok else None
        for k, i in enumerate(ok):
            results[i] = unpack(out, k)
    except (Exception, SystemExit):  # noqa: BLE001 - a denoiser is outside code; find the molecules that fail
        for i in ok:
            try:
                results[i] = unpack(call([i]), 0)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - this molecule's failure (sys.exit too)
                results[i] = f"denoiser raised {type(exc).__name__}: {exc}"
    spent = sum(r[3] for r in results.values() if not isinstance(r, str))
    per_eval_s = (time.perf_counter() - t0) / max(1, spent)
    for i in ok:
        result = results[i]
        if isinstance(result, str):
            starts[i] = Start(None, result, start_step=fixed)
            continue
        positions, path, start_step, n_eval = result
        cost = {"start_step": start_step, "network_evaluations": n_eval, "denoiser_s": n_eval * per_eval_s}
        problem = output_problem(positions, records[i].n_atoms)
        starts[i] = Start(None, problem, **cost) if problem else Start(np.asarray(positions, dtype=float), **cost)
        paths[i] = None if problem else path
    return starts, paths


def _with_positions(record: MoleculeRecord, positions: np.ndarray):
    atoms = record.to_atoms("start")
    atoms.positions = positions
    return atoms


def _base_row(rec: MoleculeRecord, key: StartKey, start: Start) -> dict[str, Any]:
    method, seed = key
    return {Col.ID: rec.id, Col.METHOD: method, Col.SEED: seed, Col.START_STEP: start.start_step,
            Col.N_ATOMS: rec.n_atoms, Col.NETWORK_EVALUATIONS: start.network_evaluations,
            Col.DENOISER_S: start.denoiser_s, Col.STATUS: Status.OK, Col.MESSAGE: ""}


def _rmsd(rec: MoleculeRecord, positions: np.ndarray, ground: GroundReference) -> tuple[float, float]:
    if ground.positions is None:
        return float("nan"), float("nan")
    return best_rmsd(rec.smiles, rec.numbers, positions, ground.positions)


def _oracle_items(records: Sequence[MoleculeRecord], starts: Starts) -> tuple[list, list[tuple[int, StartKey]]]:
    items, where = [], []
    for i, rec in enumerate(records):
        for key, method_starts in starts.items():
            if method_starts[i].positions is not None:
                items.append((_with_positions(rec, method_starts[i].positions), rec.id))
                where.append((i, key))
    return items, where


def _failure(start: Start, ground: GroundReference) -> dict[str, Any] | None:
    """The status and message of a row that has no oracle value of its own."""
    if not ground.ok:
        return {Col.STATUS: Status.REFERENCE_FAILED, Col.MESSAGE: f"ground state: {ground.message}"}
    if start.positions is None:
        return {Col.STATUS: Status.OUTPUT_FAILED, Col.MESSAGE: start.message}
    return None


def energy_above_ground(records: Sequence[MoleculeRecord], starts: Starts, oracle: Oracle,
                        grounds: Sequence[GroundReference]) -> pd.DataFrame:
    """Oracle energy of each start above the record's ground state (kcal/mol) and
    its RMSD to the ground state (heavy atoms and all atoms, Angstrom).

    ``grounds`` are the records' references from :func:`ground_references` (same
    oracle), so the difference is always taken within one level of theory. All
    single points go to the oracle in one batch (parallel when it has an executor).
    """
    items, where = _oracle_items(records, starts)
    computed = dict(zip(where, oracle.single_point_many(items)))
    rows = []
    for i, rec in enumerate(records):
        for key, method_starts in starts.items():
            start, ground = method_starts[i], grounds[i]
            row = {**_base_row(rec, key, start), Col.ENERGY_ABOVE_GROUND: np.nan, Col.RMSD_HEAVY: np.nan,
                   Col.RMSD_ALL: np.nan}
            failure = _failure(start, ground)
            sp = computed.get((i, key))
            if failure is not None:
                row.update(failure)
            elif not sp.ok:
                row.update({Col.STATUS: Status.ORACLE_FAILED, Col.MESSAGE: sp.message})
            else:
                row[Col.ENERGY_ABOVE_GROUND] = (sp.energy_ev - ground.energy_ev) * EV_TO_KCAL_MOL
                row[Col.RMSD_HEAVY], row[Col.RMSD_ALL] = _rmsd(rec, start.positions, ground)
            rows.append(row)
    return pd.DataFrame(rows)


def relax_from_starts(records: Sequence[MoleculeRecord], starts: Starts, oracle: Oracle,
                      grounds: Sequence[GroundReference], fmax: float = 0.03, optimizer: str = "BFGS",
                      max_steps: int = 1000) -> pd.DataFrame:
    """Relax every start with the oracle: steps, force calls, wall time, final energy
    and the relaxed structure's RMSD to the ground state, per (molecule, method, seed).

    A relaxation that stops at ``max_steps`` is ``unconverged`` and keeps the steps
    it used. All relaxations go to the oracle in one batch.
    """
    items, where = _oracle_items(records, starts)
    computed = dict(zip(where, oracle.relax_many(items, fmax=fmax, optimizer=optimizer, max_steps=max_steps)))
    rows = []
    for i, rec in enumerate(records):
        for key, method_starts in starts.items():
            start, ground = method_starts[i], grounds[i]
            row = {**_base_row(rec, key, start), Col.ORACLE_STEPS: np.nan, Col.N_FORCE_CALLS: np.nan,
                   Col.WALL_S: np.nan, Col.RELAXED_ENERGY: np.nan, Col.CONVERGED: False,
                   Col.RELAXED_RMSD_HEAVY: np.nan, Col.RELAXED_RMSD_ALL: np.nan}
            failure = _failure(start, ground)
            res = computed.get((i, key))
            if failure is not None:
                row.update(failure)
                rows.append(row)
                continue
            row.update({Col.ORACLE_STEPS: res.n_steps, Col.N_FORCE_CALLS: res.n_force_calls, Col.WALL_S: res.wall_s,
                        Col.RELAXED_ENERGY: res.energy_ev, Col.CONVERGED: res.converged, Col.MESSAGE: res.message})
            if res.converged:
                row[Col.STATUS] = Status.OK
            elif res.status == "not_converged":
                row[Col.STATUS] = Status.UNCONVERGED
            else:
                row[Col.STATUS] = Status.ORACLE_FAILED
            if row[Col.STATUS] != Status.ORACLE_FAILED:
                row[Col.RELAXED_RMSD_HEAVY], row[Col.RELAXED_RMSD_ALL] = _rmsd(rec, res.positions_ang, ground)
            rows.append(row)
    return pd.DataFrame(rows)


def _energy_tables(ctx: RunContext) -> dict[str, pd.DataFrame]:
    return {"energy": energy_above_ground(ctx.records, ctx.starts, ctx.oracle, ctx.grounds)}


def _relax_tables(ctx: RunContext) -> dict[str, pd.DataFrame]:
    return {"relax": relax_from_starts(ctx.records, ctx.starts, ctx.oracle, ctx.grounds, fmax=ctx.fmax_ev_ang,
                                       optimizer=ctx.optimizer, max_steps=ctx.max_steps)}


_ROW = (Col.ID, Col.METHOD, Col.SEED, Col.START_STEP, Col.N_ATOMS, Col.NETWORK_EVALUATIONS, Col.DENOISER_S,
        Col.STATUS, Col.MESSAGE)

ENERGY_RATIO = Task(
    "energy-ratio", "oracle energy of each start above the ground state, and its RMSD to it",
    tables={"energy": (*_ROW, Col.ENERGY_ABOVE_GROUND, Col.RMSD_HEAVY, Col.RMSD_ALL)},
    metrics=("energy_ratio", "excess_removed", "energy_ratio_of_medians", "mean_energy_above_ground_kcal_mol",
             "median_energy_above_ground_kcal_mol", "within_1_kcal_mol", "mean_rmsd_heavy_ang", "mean_rmsd_all_ang"),
    gated=("energy_ratio", "within_1_kcal_mol", "mean_rmsd_heavy_ang"),
    compute=_energy_tables)

RELAX_SPEEDUP = Task(
    "relax-speedup", "oracle relaxation (BFGS to fmax) from each start: steps saved against the MMFF start",
    needs=frozenset({"forces", "relaxations"}),
    tables={"relax": (*_ROW, Col.ORACLE_STEPS, Col.N_FORCE_CALLS, Col.WALL_S, Col.CONVERGED, Col.RELAXED_ENERGY,
                      Col.RELAXED_RMSD_HEAVY, Col.RELAXED_RMSD_ALL)},
    metrics=("median_speedup", "p25_speedup", "p75_speedup", "fraction_slower", "median_speedup_same_basin",
             "median_oracle_steps", "median_delta_e_kcal_mol", "mean_relaxed_rmsd_heavy_ang",
             "oracle_calls_saved_per_molecule", "net_saving_s_per_molecule"),
    gated=("median_speedup", "fraction_slower"),
    figures=("steps_scatter", "speedup_epoch"),
    compute=_relax_tables)
