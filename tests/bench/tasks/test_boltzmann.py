"""The MH sampler on an analytic case: equipartition in a harmonic well."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import constants

from bench.tasks.boltzmann import K_B_EV, metropolis_hastings

#: Boltzmann's constant in eV/K from CODATA (scipy), independent of the module under test.
K_B_REFERENCE_EV = constants.k / constants.e


def test_boltzmann_constant_is_codata():
    assert K_B_EV == pytest.approx(K_B_REFERENCE_EV, rel=1e-6)


@pytest.mark.parametrize("temperature_k", [50.0, 300.0])
def test_harmonic_well_mean_energy_is_d_over_2_kt(temperature_k):
    d, k_spring = 6, 5.0  # 6 coordinates, E = k/2 |x|^2 (eV, A)

    def energy(x):
        return 0.5 * k_spring * float(np.sum(x**2))

    kt = K_B_REFERENCE_EV * temperature_k
    step = 0.6 * np.sqrt(kt / k_spring)  # half the width per coordinate: acceptance about 0.45
    chain = metropolis_hastings(energy, np.zeros(d), temperature_k, 60_000, step, burn_in=5_000, seed=3)
    expected = d / 2 * kt
    # statistical error of a correlated chain: blocks of 1,000 states
    blocks = chain.energies_ev[: len(chain.energies_ev) // 1000 * 1000].reshape(-1, 1000).mean(axis=1)
    sem = blocks.std(ddof=1) / np.sqrt(len(blocks))
    assert abs(chain.energies_ev.mean() - expected) < 4 * sem
    assert 0.2 < chain.acceptance < 0.9


def test_bad_settings_and_non_finite_energies():
    with pytest.raises(ValueError):
        metropolis_hastings(lambda x: 0.0, np.zeros(3), 0.0, 10, 0.1)
    chain = metropolis_hastings(lambda x: np.nan if x[0] > 0 else 0.0, np.full(1, -1.0), 300, 200, 0.5, seed=1)
    assert chain.last[0] <= 0  # moves into the NaN region are rejected


def test_selection_keeps_flexible_linear_molecules_seeded():
    from bench.data import load_dataset
    from bench.errors import InputError
    from bench.tasks.boltzmann import is_flexible, select_flexible

    assert is_flexible("CCOCCCCO") and is_flexible("CC(C)(C)O")
    assert not any(map(is_flexible, ["C=O", "CC#N", "C1CC1", "C" + "(C)" * 16]))
    valid = load_dataset("qm9-xtb", "valid")
    chosen = select_flexible(valid, 10, seed=0)
    assert len(chosen) == 10 and all(is_flexible(r.smiles) for r in chosen)
    assert [r.id for r in chosen] == [r.id for r in select_flexible(valid, 10, seed=0)]
    assert [r.id for r in chosen] != [r.id for r in select_flexible(valid, 10, seed=1)]
    rigid = [r for r in valid if not is_flexible(r.smiles)][:5]
    with pytest.raises(InputError, match="none of its 5 molecules passes the flexibility filter"):
        select_flexible(rigid, 3, seed=0, source="rigid")


def test_the_gaussian_control_diverges_where_mcmc_stays_bounded():
    from bench.tasks.boltzmann import gaussian_walk

    k_spring, x0 = 5.0, np.zeros((4, 3))
    keep = [9, 99, 999, 9999]
    frames = gaussian_walk(x0, 0.01, 10_000, keep, seed=2)
    energy = 0.5 * k_spring * (frames**2).sum(axis=(1, 2))
    assert np.all(np.diff(energy) > 0)  # a random walk: E ~ k/2 d sigma^2 repeats, no bound
    assert energy[-1] == pytest.approx(0.5 * k_spring * 9 * 0.01**2 * 10_000, rel=0.5)  # 9 = 12 - 3 (centred)
    assert np.allclose(frames.mean(axis=1), 0)  # centre of mass kept, as EDM's noise
    chain = metropolis_hastings(lambda x: 0.5 * k_spring * float(np.sum(x**2)), x0, 300.0, 10_000, 0.05, seed=2)
    assert chain.energies_ev[-1000:].mean() < 0.1 * energy[-1]


def test_reverse_step_std_grows_with_n():
    from edm_core.schedule import gamma_table

    from bench.tasks.boltzmann import reverse_step_std

    gammas = gamma_table(1000)
    stds = [reverse_step_std(gammas[n - 1], gammas[n]) for n in (1, 5, 20, 40)]
    assert np.all(np.diff(stds) > 0) and 1e-4 < stds[0] < stds[-1] < 0.1


def test_burn_in_drops_the_first_states_of_the_chain():
    def energy(x):
        return float(np.sum(x**2))

    full = metropolis_hastings(energy, np.full(2, 3.0), 300.0, 400, 0.05, burn_in=0, seed=5)
    kept = metropolis_hastings(energy, np.full(2, 3.0), 300.0, 400, 0.05, burn_in=150, seed=5)
    assert len(kept.energies_ev) == 250
    np.testing.assert_array_equal(kept.energies_ev, full.energies_ev[150:])
