"""Boltzmann sampling with an oracle: Metropolis-Hastings with an isotropic
Gaussian proposal (the study's MCMC, section 4.4), the molecule selection, and
the control chain of repeated isotropic Gaussian perturbations.

The sampler is generic over an energy function of coordinates, so the same code
runs on an oracle (energies in eV, via :func:`oracle_energy`) and on the
analytic harmonic well of the tests. :func:`sample_chain_doc` and
:func:`frame_energies_doc` are the units of oracle work: module-level functions
that a worker process (or a Dask worker) runs with one calculator for a whole
chain, which is far cheaper than a fresh calculator and a store entry per
geometry. The statistics of the chains live in :mod:`bench.tasks.boltzmann_stats`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import kB

from bench.data.records import MoleculeRecord
from bench.errors import InputError, OracleFailure
from bench.tasks.spec import Task

#: Boltzmann constant in eV/K (ASE's CODATA value).
K_B_EV = kB


@dataclass(frozen=True)
class ChainResult:
    """Energies (eV) after burn-in, the acceptance rate, and the last state."""

    energies_ev: np.ndarray
    acceptance: float
    last: np.ndarray
    n_energy_calls: int


def metropolis_hastings(energy_ev: Callable[[np.ndarray], float], x0: np.ndarray, temperature_k: float,
                        n_steps: int, step_ang: float, burn_in: int = 0, seed: int = 0) -> ChainResult:
    """Sample exp(-E / kT) with isotropic Gaussian moves of every coordinate.

    Parameters
    ----------
    energy_ev : callable
        E(x) in eV for coordinates shaped like ``x0`` (Angstrom); non-finite
        energies are rejected moves.
    x0 : array
        Start (the study: the oracle ground state).
    temperature_k : float
    n_steps : int
        Proposals (the study: 24,000).
    step_ang : float
        Standard deviation of the proposal per coordinate (Angstrom).
    burn_in : int
        Leading states left out of ``energies_ev`` (the study: 5,000).
    """
    if temperature_k <= 0 or n_steps < 1 or not 0 <= burn_in < n_steps or step_ang <= 0:
        raise ValueError("need temperature > 0, n_steps >= 1, 0 <= burn_in < n_steps, step > 0")
    rng = np.random.default_rng(seed)
    beta = 1.0 / (K_B_EV * temperature_k)
    x = np.array(x0, dtype=float)
    e = float(energy_ev(x))
    energies = np.empty(n_steps)
    accepted = 0
    for k in range(n_steps):
        trial = x + rng.normal(scale=step_ang, size=x.shape)
        e_trial = float(energy_ev(trial))
        if np.isfinite(e_trial) and (e_trial <= e or rng.random() < np.exp(-beta * (e_trial - e))):
            x, e = trial, e_trial
            accepted += 1
        energies[k] = e
    return ChainResult(energies[burn_in:], accepted / n_steps, x, n_steps + 1)


#: The study's filter of flexible, linear molecules: no double or triple bonds,
#: no rings (ring-closure digits), at most this many branches.
MAX_BRANCHES = 15
_NOT_FLEXIBLE = re.compile(r"[=#0-9]")


def is_flexible(smiles: str) -> bool:
    """True for a SMILES without '=', '#' or digits and with at most 15 '('."""
    return not _NOT_FLEXIBLE.search(smiles) and smiles.count("(") <= MAX_BRANCHES


def select_flexible(records: Sequence[MoleculeRecord], n: int, seed: int, source: str = "the split"
                    ) -> list[MoleculeRecord]:
    """A seeded choice of ``n`` records that pass :func:`is_flexible` (the study: ten
    QM9 validation molecules), in the split's order.

    Raises
    ------
    InputError
        When no record passes the filter, or ``n`` < 1.
    """
    if n < 1:
        raise InputError(f"need at least one molecule, got n = {n}")
    flexible = [r for r in records if is_flexible(r.smiles)]
    if not flexible:
        raise InputError(f"{source}: none of its {len(records)} molecules passes the flexibility filter "
                         f"(no '=', '#' or ring digits, at most {MAX_BRANCHES} '(')")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(flexible), size=min(n, len(flexible)), replace=False))
    return [flexible[int(i)] for i in chosen]


def oracle_energy(oracle: Any, atoms: Atoms, name: str) -> Callable[[np.ndarray], float]:
    """E(positions) in eV with one calculator kept for the whole chain; a failed
    calculation (SCF not converged, non-finite energy) is NaN, a rejected move."""
    work, _ = oracle._attach(atoms, name)

    def energy(positions: np.ndarray) -> float:
        work.set_positions(positions)
        try:
            return float(work.get_potential_energy())
        except OracleFailure:
            return float("nan")

    return energy


def tune_step(energy_ev: Callable[[np.ndarray], float], x0: np.ndarray, temperature_k: float, n_pilot: int = 200,
              rounds: int = 3, target: float = 0.4, seed: int = 0) -> tuple[float, int]:
    """A proposal step (Angstrom) whose acceptance is near ``target``.

    Starts from the harmonic guess sqrt(kT / k) with a typical bond stiffness
    k = 30 eV/A^2 and rescales by (acceptance / target) after each pilot chain of
    ``n_pilot`` proposals: acceptance falls roughly as the step grows. Returns the
    step and the energy calls the pilots cost.
    """
    step = float(np.sqrt(K_B_EV * temperature_k / 30.0))
    calls = 0
    for k in range(rounds):
        pilot = metropolis_hastings(energy_ev, x0, temperature_k, n_pilot, step, seed=seed + 1000 + k)
        calls += pilot.n_energy_calls
        step *= float(np.clip(pilot.acceptance / target, 0.25, 4.0))
    return step, calls


def sample_chain_doc(oracle_class: type, oracle_settings: dict, atoms: Atoms, name: str, temperature_k: float,
                     n_steps: int, burn_in: int, step_ang: float | None, seed: int, tune_steps: int = 200
                     ) -> dict[str, Any]:
    """One MH chain with a fresh oracle, as a storable document (worker side).

    ``step_ang`` None tunes the step first (:func:`tune_step`, pilot chains of
    ``tune_steps`` proposals). The document holds
    ``energies_ev`` (after burn-in), ``acceptance``, ``step_ang`` and
    ``n_energy_calls`` (pilots included).
    """
    energy = oracle_energy(oracle_class(**oracle_settings), atoms, name)
    x0 = atoms.get_positions()
    calls = 0
    if step_ang is None:
        step_ang, calls = tune_step(energy, x0, temperature_k, n_pilot=tune_steps, seed=seed)
    chain = metropolis_hastings(energy, x0, temperature_k, n_steps, step_ang, burn_in, seed)
    return {"energies_ev": chain.energies_ev.tolist(), "acceptance": chain.acceptance, "step_ang": step_ang,
            "n_energy_calls": chain.n_energy_calls + calls}


def frame_energies_doc(oracle_class: type, oracle_settings: dict, atoms: Atoms, name: str,
                       frames: np.ndarray) -> dict[str, Any]:
    """Oracle energies (eV, NaN where the calculation failed) of many geometries of
    one molecule with one calculator, as a storable document (worker side)."""
    energy = oracle_energy(oracle_class(**oracle_settings), atoms, name)
    return {"energies_ev": [energy(f) for f in frames]}


def reverse_step_std(gamma_s: float, gamma_t: float) -> float:
    """Standard deviation of the noise that EDM's reverse step t -> s adds (in the
    units of the position block), from the two gammas (EDM's reverse step):
    sqrt(sigma2_{t|s}) sigma_s / sigma_t."""
    softplus = np.logaddexp(0.0, [gamma_s, gamma_t])
    sigma2_ts = -np.expm1(softplus[0] - softplus[1])
    sigma_s, sigma_t = (np.sqrt(1.0 / (1.0 + np.exp(-g))) for g in (gamma_s, gamma_t))
    return float(np.sqrt(sigma2_ts) * sigma_s / sigma_t)


def gaussian_walk(x0: np.ndarray, std_ang: float, n_repeats: int, keep: Sequence[int], seed: int = 0
                  ) -> np.ndarray:
    """The control chain: isotropic Gaussian perturbations (``std_ang`` per
    coordinate, centre of mass removed as in EDM) applied again and again, with no
    denoiser pulling back. It is a random walk, so it drifts away as sqrt(repeats)
    and its energy diverges; the frames after the (0-based) repeats in ``keep``.

    Returns
    -------
    (len(keep), n_atoms, 3) array, Angstrom
    """
    keep = sorted(set(int(k) for k in keep))
    if not keep or keep[0] < 0 or keep[-1] >= n_repeats:
        raise ValueError(f"keep must hold repeats in 0..{n_repeats - 1}, got {keep}")
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    frames = []
    for r in range(keep[-1] + 1):
        step = rng.normal(scale=std_ang, size=x.shape)
        x = x + step - step.mean(axis=0)
        if r == keep[len(frames)]:
            frames.append(x.copy())
    return np.stack(frames)


BOLTZMANN = Task(
    "boltzmann", "MCMC with the oracle against the repeated diffusion step from the ground state (section 4.4)",
    command="boltzmann", needs=frozenset({"forces"}),
    tables={"mcmc": ("molecule", "temperature_k"), "mcmc_samples": ("molecule", "temperature_k", "sample")},
    metrics=("boltzmann_median_w1_kcal_mol", "boltzmann_fit_r2", "boltzmann_u_k", "boltzmann_std_ratio",
             "boltzmann_max_abs_shift_kcal_mol"),
    leaderboard={"boltzmann_median_w1_kcal_mol": False, "boltzmann_fit_r2": True, "boltzmann_u_k": None,
                 "boltzmann_std_ratio": None, "boltzmann_max_abs_shift_kcal_mol": None},
    figures=("boltzmann_violins", "boltzmann_energy", "boltzmann_map", "boltzmann_control"))
