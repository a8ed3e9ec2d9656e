"""Boltzmann sampling with an oracle: Metropolis-Hastings with an isotropic
Gaussian proposal (the study's MCMC, section 4.4).

The sampler is generic over an energy function of flat coordinates, so the same
code runs on an oracle (energies in eV, via :func:`oracle_energy`) and on the
analytic harmonic well of the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase.units import kB

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
