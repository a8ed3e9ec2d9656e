"""The MH sampler on an analytic case: equipartition in a harmonic well."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tasks.boltzmann import K_B_EV, metropolis_hastings


@pytest.mark.parametrize("temperature_k", [50.0, 300.0])
def test_harmonic_well_mean_energy_is_d_over_2_kt(temperature_k):
    d, k_spring = 6, 5.0  # 6 coordinates, E = k/2 |x|^2 (eV, A)

    def energy(x):
        return 0.5 * k_spring * float(np.sum(x**2))

    kt = K_B_EV * temperature_k
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
