"""``edm-bench boltzmann``: does the diffusion chain sample a Boltzmann-like
distribution? (The study's section 4.4, figures 7-9.)

Per selected molecule: Metropolis-Hastings with the oracle at each temperature,
and per denoiser the single reverse step n repeated from the oracle ground state
for each n; the control chain of repeated isotropic Gaussian perturbations (with
the noise of the step at the largest n, no denoiser) shows what happens without
the denoiser's pull. Each chain is one unit of oracle work, cached in the store
and run on the executor's workers (one calculator per chain).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analyses.common import ANALYSIS_UNITS, array_hash, cached_jobs, job_key
from bench.cards import load_denoisers
from bench.columns import Col
from bench.data.dataset import load_dataset, read_manifest
from bench.errors import InputError
from bench.oracles import get_oracle
from bench.parallel import make_executor
from bench.runner import check_backend, write_run_folder
from bench.store import ResultStore, geometry_hash
from bench.tasks.boltzmann import (
    frame_energies_doc,
    gaussian_walk,
    reverse_step_std,
    sample_chain_doc,
    select_flexible,
)
from bench.tasks.boltzmann_stats import (
    apply_shift,
    constant_shift,
    divergence,
    energy_moments,
    fit_quadratic_scale,
    matched_distances,
)
from bench.units import EV_TO_KCAL_MOL

E = str(Col.ENERGY_ABOVE_GROUND)
#: The study's 18 temperatures between 10 K and 400 K (evenly spaced: ours).
STUDY_TEMPERATURES_K = tuple(float(t) for t in np.round(np.linspace(10, 400, 18), 1))
#: The study's 14 values of n between 1 and 40 (which 14: ours, denser at small n).
STUDY_N = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40)


@dataclass(frozen=True)
class BoltzmannSettings:
    """What a Boltzmann run computes (defaults: the study's profile); recorded
    whole in its manifest."""

    dataset: str = "qm9-xtb"
    split: str = "valid"
    n_molecules: int = 10
    seed: int = 0
    max_atoms: int | None = None
    oracle: str = "xtb"
    temperatures_k: tuple[float, ...] = STUDY_TEMPERATURES_K
    mcmc_steps: int = 24_000
    mcmc_burn_in: int = 5_000
    #: Proposal step (Angstrom); None tunes it per chain to ~40 % acceptance.
    step_ang: float | None = None
    tune_steps: int = 200
    n_values: tuple[int, ...] = STUDY_N
    repeats: int = 20_000
    repeat_burn_in: int = 1_000
    #: Oracle energies of the control chain at this many log-spaced repeats.
    control_points: int = 12
    denoisers: tuple[str, ...] = ()
    #: Allow entry-point cards, which import and run Python code.
    trust_code: bool = False
    #: How EDM checkpoints' networks run (``--backend``).
    backend: str = "auto"
    workers: int = 1
    dask: str | None = None

    def __post_init__(self) -> None:
        check_backend(self.backend)
        if self.n_molecules < 1:
            raise InputError(f"n_molecules must be >= 1, got {self.n_molecules}")
        if not self.temperatures_k or min(self.temperatures_k) <= 0:
            raise InputError(f"temperatures must be > 0 K, got {self.temperatures_k}")
        if not self.n_values or min(self.n_values) < 1:
            raise InputError(f"diffusion steps n must be >= 1, got {self.n_values}")
        if not 0 <= self.mcmc_burn_in < self.mcmc_steps or not 0 <= self.repeat_burn_in < self.repeats:
            raise InputError("burn-in must be smaller than the chain: "
                             f"MCMC {self.mcmc_burn_in} of {self.mcmc_steps}, "
                             f"diffusion {self.repeat_burn_in} of {self.repeats}")
        if self.step_ang is not None and self.step_ang <= 0:
            raise InputError(f"step_ang must be > 0 Angstrom, got {self.step_ang}")


#: ``--quick``: two molecules, three temperatures and three n, chains of a few
#: hundred states (CI and the README; about 15 s of GFN2-xTB on one core).
PROFILES = {
    "study": BoltzmannSettings(),
    "quick": BoltzmannSettings(n_molecules=2, temperatures_k=(50.0, 150.0, 300.0), mcmc_steps=250, mcmc_burn_in=50,
                               tune_steps=40, n_values=(1, 3, 6), repeats=120, repeat_burn_in=20, control_points=6),
}


def run_boltzmann(settings: BoltzmannSettings, out_dir: Path, store_path: Path | None = None) -> dict[str, Any]:
    """Run the Boltzmann analysis and write its run folder; return the summary."""
    t0 = time.perf_counter()
    records = load_dataset(settings.dataset, settings.split)
    if settings.max_atoms is not None:
        records = [r for r in records if r.n_atoms <= settings.max_atoms]
    records = select_flexible(records, settings.n_molecules, settings.seed,
                              source=f"{settings.dataset}/{settings.split}"
                                     + (f" (<= {settings.max_atoms} atoms)" if settings.max_atoms else ""))
    denoisers = load_denoisers(settings.denoisers, trust_code=settings.trust_code, backend=settings.backend)
    for d in denoisers.values():
        d.require("repeat_step", "boltzmann")
    store = ResultStore(store_path or out_dir / "store.sqlite")
    with contextlib.ExitStack() as stack:
        # Oracle work always runs in worker processes started with one OpenMP
        # thread: tblite in a process that shares its cores is 100x slower.
        executor = stack.enter_context(make_executor(max(settings.workers, 1), settings.dask))
        oracle = get_oracle(settings.oracle, store=store)
        tables, cost = _compute(settings, records, denoisers, oracle, store, executor)
    store.close()
    summary = _summary(settings, tables, denoisers, cost, len(records), time.perf_counter() - t0)
    doc = {"run": dataclasses.asdict(settings), "oracle": oracle.describe(), "units": ANALYSIS_UNITS,
           "denoisers": {k: {"card": d.card, "backend": d.backend} for k, d in denoisers.items()},
           "dataset": {"name": settings.dataset, "split": settings.split, "ids": [r.id for r in records],
                       "smiles": [r.smiles for r in records]},
           "seeds": {"selection": settings.seed,
                     "chains": "seed + temperature index (MCMC), seed (diffusion and control)"}}
    write_run_folder(out_dir, "boltzmann", doc, tables, summary,
                     [("fit", "Quadratic map T = u n^2"), ("shift", "Constant shift per molecule"),
                      ("mcmc", "MCMC per (molecule, T)"), ("diffusion", "Diffusion chain per (molecule, n)"),
                      ("matched", "Matched distributions"), ("control_summary", "Control: Gaussian perturbations")],
                     "Boltzmann sampling (the study's section 4.4): energies above the oracle ground state, kcal/mol.")
    return summary


def _ground_states(records: list, oracle: Any, same_level: bool) -> list[tuple[np.ndarray, float]]:
    """Start geometry and energy (eV) of every chain: the dataset's ground state, or
    the oracle's own minimum relaxed from it under another level of theory."""
    items = [(r.to_atoms("ground"), r.id) for r in records]
    if same_level:
        results = [(r.ground_positions, res.energy_ev, res.ok, res.message)
                   for r, res in zip(records, oracle.single_point_many(items))]
    else:
        results = [(res.positions_ang, res.energy_ev, res.converged, res.message)
                   for res in oracle.relax_many(items, fmax=0.03)]
    for r, (_, _, ok, message) in zip(records, results):
        if not ok:
            raise InputError(f"{r.id} ({r.smiles}): no oracle ground state to start the chains from ({message})")
    return [(pos, energy) for pos, energy, _, _ in results]


def _compute(settings: BoltzmannSettings, records: list, denoisers: dict, oracle: Any, store: ResultStore,
             executor: Any) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    same_level = settings.oracle == read_manifest(settings.dataset)["oracle"]["name"]
    grounds = _ground_states(records, oracle, same_level)
    atoms = [r.to_atoms("ground") for r in records]
    for a, (pos, _) in zip(atoms, grounds):
        a.set_positions(pos)
    oracle_args = (type(oracle), dataclasses.asdict(oracle.settings))

    t_mcmc = time.perf_counter()
    jobs, where = [], []
    for a, r in zip(atoms, records):
        for k, temp in enumerate(settings.temperatures_k):
            call = {"task": "mcmc", "temperature_k": temp, "n_steps": settings.mcmc_steps,
                    "burn_in": settings.mcmc_burn_in, "step_ang": settings.step_ang,
                    "tune_steps": settings.tune_steps, "seed": settings.seed + k}
            jobs.append((job_key(oracle.key, call, geometry_hash(a.numbers, a.positions)), sample_chain_doc,
                         (*oracle_args, a, r.id, temp, settings.mcmc_steps, settings.mcmc_burn_in, settings.step_ang,
                          settings.seed + k, settings.tune_steps)))
            where.append((r.id, temp))
    docs = cached_jobs(store, "boltzmann-mcmc", jobs, executor)
    cost = {"mcmc_wall_s": time.perf_counter() - t_mcmc,
            "mcmc_energy_calls": float(sum(d["n_energy_calls"] for d in docs))}
    e0 = {r.id: energy for r, (_, energy) in zip(records, grounds)}
    tables = _mcmc_tables(docs, where, e0)

    t_model = time.perf_counter()
    frame_jobs, frame_where = _diffusion_jobs(settings, records, atoms, denoisers, oracle, oracle_args)
    cost["model_s"] = time.perf_counter() - t_model
    cost["repeats"] = float(len(denoisers) * len(records) * len(settings.n_values) * settings.repeats)
    control = _control_jobs(settings, records, atoms, denoisers, oracle, oracle_args)
    t_energy = time.perf_counter()
    docs = cached_jobs(store, "boltzmann-frames", frame_jobs + [j for j, _ in control], executor)
    cost["frame_energy_wall_s"] = time.perf_counter() - t_energy
    cost["frame_energy_calls"] = float(sum(len(d["energies_ev"]) for d in docs))
    tables.update(_diffusion_tables(docs[:len(frame_jobs)], frame_where, e0))
    tables.update(_control_tables(docs[len(frame_jobs):], [w for _, w in control], e0))
    tables.update(compare(tables))
    return tables, cost


def _mcmc_tables(docs: list[dict], where: list[tuple[str, float]], e0: dict[str, float]) -> dict[str, pd.DataFrame]:
    samples, chains = [], []
    for doc, (molecule, temp) in zip(docs, where):
        energy = (np.asarray(doc["energies_ev"], dtype=float) - e0[molecule]) * EV_TO_KCAL_MOL
        samples.append(pd.DataFrame({"molecule": molecule, "temperature_k": temp, "sample": np.arange(len(energy)),
                                     E: energy}))
        chains.append({"molecule": molecule, "temperature_k": temp, "acceptance": doc["acceptance"],
                       "step_ang": doc["step_ang"], "n_energy_calls": doc["n_energy_calls"]})
    mcmc_samples = pd.concat(samples, ignore_index=True)
    mcmc = energy_moments(mcmc_samples, "temperature_k").merge(pd.DataFrame(chains), on=["molecule", "temperature_k"])
    return {"mcmc_samples": mcmc_samples, "mcmc": mcmc}


def _diffusion_jobs(settings: BoltzmannSettings, records: list, atoms: list, denoisers: dict, oracle: Any,
                    oracle_args: tuple) -> tuple[list, list[tuple[str, str, int]]]:
    """The diffusion chains (computed here, by the model) and their energy jobs."""
    jobs, where = [], []
    for key, denoiser in denoisers.items():
        for a, r in zip(atoms, records):
            for n in settings.n_values:
                frames = denoiser.model.repeat_step((a.numbers, a.positions), n, settings.repeats, settings.repeat_burn_in,
                                              seed=settings.seed)
                jobs.append((job_key(oracle.key, {"task": "frames"}, array_hash(a.numbers, frames)),
                             frame_energies_doc, (*oracle_args, a, r.id, frames)))
                where.append((key, r.id, n))
    return jobs, where


def _diffusion_tables(docs: list[dict], where: list[tuple[str, str, int]], e0: dict[str, float]
                      ) -> dict[str, pd.DataFrame]:
    if not docs:
        return {}
    raw = pd.concat([pd.DataFrame({"method": method, "molecule": molecule, "n": n,
                                   "sample": np.arange(len(doc["energies_ev"])),
                                   E: (np.asarray(doc["energies_ev"], dtype=float) - e0[molecule]) * EV_TO_KCAL_MOL})
                     for doc, (method, molecule, n) in zip(docs, where)], ignore_index=True)
    return {"diffusion_samples": raw}


def _control_jobs(settings: BoltzmannSettings, records: list, atoms: list, denoisers: dict, oracle: Any,
                  oracle_args: tuple) -> list[tuple[tuple, dict[str, Any]]]:
    """The control chains: the noise of the diffusion step at the largest n, no denoiser."""
    from edm_core.schedule import gamma_table

    first = next(iter(denoisers.values())).model if denoisers else None
    gammas = first.gamma_table() if first is not None else gamma_table()
    n = max(settings.n_values)
    std = reverse_step_std(gammas[n - 1], gammas[n]) * (first.position_scale if first is not None else 1.0)
    keep = np.unique(np.geomspace(1, settings.repeats, settings.control_points).astype(int) - 1)
    out = []
    for a, r in zip(atoms, records):
        frames = gaussian_walk(a.positions, std, settings.repeats, keep, seed=settings.seed)
        job = (job_key(oracle.key, {"task": "frames"}, array_hash(a.numbers, frames)), frame_energies_doc,
               (*oracle_args, a, r.id, frames))
        out.append((job, {"molecule": r.id, "n": n, "std_ang": std, "repeats": keep}))
    return out


def _control_tables(docs: list[dict], where: list[dict[str, Any]], e0: dict[str, float]) -> dict[str, pd.DataFrame]:
    control = pd.concat([pd.DataFrame({"molecule": w["molecule"], "n": w["n"], "std_ang": w["std_ang"],
                                       "repeat": w["repeats"],
                                       E: (np.asarray(doc["energies_ev"], dtype=float) - e0[w["molecule"]])
                                       * EV_TO_KCAL_MOL})
                         for doc, w in zip(docs, where)], ignore_index=True)
    return {"control": control, "control_summary": divergence(control)}


def compare(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per denoiser: the constant shift, the shifted diffusion samples and their
    moments, the fit of T = u n^2 and the matched distances (tables added in place
    of the raw diffusion samples)."""
    raw = tables.get("diffusion_samples")
    if raw is None:
        return {}
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("diffusion_samples", "diffusion", "shift", "fit",
                                                             "fit_points", "matched")}
    for method, samples in raw.groupby("method", sort=False):
        shift = constant_shift(tables["mcmc_samples"], samples)
        samples = apply_shift(samples, shift)
        moments = energy_moments(samples, "n")
        fit = fit_quadratic_scale(tables["mcmc"], moments)
        parts["diffusion_samples"].append(samples)
        parts["diffusion"].append(moments.assign(method=method))
        parts["shift"].append(shift.reset_index().assign(method=method))
        parts["fit"].append(pd.DataFrame([{"method": method, "u_k": fit.u_k, "r2": fit.r2,
                                           "linear_r2_mcmc": fit.linear_r2, "n_points": len(fit.points)}]))
        parts["fit_points"].append(fit.points.assign(method=method))
        if np.isfinite(fit.u_k):
            parts["matched"].append(matched_distances(tables["mcmc_samples"], samples, fit.u_k).assign(method=method))
    return {k: _method_first(pd.concat(v, ignore_index=True)) for k, v in parts.items() if v}


def _method_first(df: pd.DataFrame) -> pd.DataFrame:
    return df[["method", *[c for c in df.columns if c != "method"]]]


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _summary(settings: BoltzmannSettings, tables: dict[str, pd.DataFrame], denoisers: dict, cost: dict[str, float],
             n_molecules: int, wall_s: float) -> dict[str, Any]:
    """``summary.json``: per denoiser ``boltzmann_u_k`` (K), ``boltzmann_fit_r2``,
    ``boltzmann_median_w1_kcal_mol`` (median over (molecule, n) of the W1 distance
    to MCMC at the matched T), ``boltzmann_std_ratio`` (median of diffusion std /
    MCMC std: > 1 when the diffusion distributions are wider),
    ``boltzmann_max_abs_shift_kcal_mol``; the MCMC acceptance and linearity; the
    control's energy growth; and the measured cost with the study profile's estimate."""
    methods: dict[str, dict[str, Any]] = {}
    for key in denoisers:
        fit = tables["fit"].set_index("method").loc[key]
        matched = tables.get("matched", pd.DataFrame(columns=["method"]))
        matched = matched[matched["method"] == key]
        shift = tables["shift"][tables["shift"]["method"] == key]["shift_kcal_mol"]
        ratio = matched["diffusion_std_kcal_mol"] / matched["mcmc_std_kcal_mol"]
        methods[key] = {
            "epoch": denoisers[key].card["training"].get("epochs"),
            "boltzmann_u_k": _num(fit["u_k"]), "boltzmann_fit_r2": _num(fit["r2"]),
            "boltzmann_median_w1_kcal_mol": _num(matched["w1_kcal_mol"].median()) if len(matched) else None,
            "boltzmann_std_ratio": _num(ratio.median()) if len(matched) else None,
            "boltzmann_max_abs_shift_kcal_mol": _num(shift.abs().max()) if len(shift) else None,
        }
    mcmc, control = tables["mcmc"], tables["control_summary"]
    calls = cost["mcmc_energy_calls"] + cost["frame_energy_calls"]
    oracle_s_per_call = (cost["mcmc_wall_s"] + cost["frame_energy_wall_s"]) * max(settings.workers, 1) / calls
    model_s_per_repeat = cost["model_s"] / cost["repeats"] if cost["repeats"] else None
    return {
        "task": "boltzmann",
        "label": f"{settings.dataset}/{settings.split}/{settings.oracle}/boltzmann",
        "n_molecules": n_molecules, "wall_s": round(wall_s, 1), "methods": methods,
        "mcmc": {"mean_acceptance": _num(mcmc["acceptance"].mean()), "min_acceptance": _num(mcmc["acceptance"].min()),
                 "max_acceptance": _num(mcmc["acceptance"].max()),
                 "linear_r2": _num(tables["fit"]["linear_r2_mcmc"].iloc[0]) if "fit" in tables else None},
        "control": {"n": int(max(settings.n_values)), "std_ang": _num(tables["control"]["std_ang"].iloc[0]),
                    "median_growth_kcal_mol": _num(control["growth_kcal_mol"].median()),
                    "diverges": bool((control["growth_kcal_mol"] > 0).all())},
        "cost": {"oracle_calls": int(calls), "oracle_core_s_per_call": _num(oracle_s_per_call),
                 "model_s_per_repeat": _num(model_s_per_repeat) if model_s_per_repeat else None,
                 "study_profile_core_h": _num(study_cost_h(oracle_s_per_call, model_s_per_repeat or 0.0,
                                                           len(denoisers)))},
    }


def study_cost_h(oracle_s_per_call: float, model_s_per_repeat: float, n_denoisers: int) -> float:
    """Core-hours of the study's profile (ten molecules) at the measured costs:
    MCMC energy calls (tuning pilots included), diffusion repeats and their energies."""
    s = PROFILES["study"]
    mcmc_calls = s.n_molecules * len(s.temperatures_k) * (s.mcmc_steps + 1 + 3 * (s.tune_steps + 1))
    chains = n_denoisers * s.n_molecules * len(s.n_values)
    frame_calls = chains * (s.repeats - s.repeat_burn_in) + s.n_molecules * s.control_points
    return (oracle_s_per_call * (mcmc_calls + frame_calls) + model_s_per_repeat * chains * s.repeats) / 3600
