"""Statistics of the Boltzmann analysis on synthetic chains with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.tasks.boltzmann_stats import apply_shift, constant_shift, divergence, energy_moments, fit_quadratic_scale, \
    matched_distances

E = "energy_above_ground_kcal_mol"


def synthetic(u_k: float, slopes: dict[str, float], temperatures, ns, rng, noise: float = 0.0):
    """MCMC means a_m T and diffusion means a_m u n^2 (the quadratic map exactly)."""
    mcmc = pd.DataFrame([{"molecule": m, "temperature_k": t, "mean_kcal_mol": a * t} for m, a in slopes.items()
                         for t in temperatures])
    diffusion = pd.DataFrame([{"molecule": m, "n": n, "mean_kcal_mol": a * u_k * n**2 * (1 + noise * rng.normal())}
                              for m, a in slopes.items() for n in ns])
    return mcmc, diffusion


def test_fit_recovers_a_known_u_shared_by_molecules(rng):
    slopes = {"a": 0.03, "b": 0.05, "c": 0.08}  # kcal/mol/K: different molecule sizes
    mcmc, diffusion = synthetic(2.5, slopes, [10, 50, 100, 200, 400], [1, 2, 4, 8, 12], rng)
    fit = fit_quadratic_scale(mcmc, diffusion)
    assert fit.u_k == pytest.approx(2.5) and fit.r2 == pytest.approx(1.0) and fit.linear_r2 == pytest.approx(1.0)
    assert fit.points["equivalent_temperature_k"].to_numpy() == pytest.approx(2.5 * fit.points["n"] ** 2)

    noisy = fit_quadratic_scale(*synthetic(2.5, slopes, [10, 100, 400], [1, 2, 4, 8, 12], rng, noise=0.1))
    assert noisy.u_k == pytest.approx(2.5, rel=0.1) and 0.8 < noisy.r2 < 1.0


def test_a_linear_map_in_n_fits_worse_than_the_quadratic_one(rng):
    mcmc, _ = synthetic(1.0, {"a": 0.05}, [10, 100, 400], [], rng)
    linear = pd.DataFrame({"molecule": "a", "n": np.arange(1, 11), "mean_kcal_mol": 0.05 * 30 * np.arange(1, 11)})
    assert fit_quadratic_scale(mcmc, linear).r2 < 0.9


def test_constant_shift_equalises_minima_at_lowest_t_and_n():
    mcmc = pd.DataFrame({"molecule": ["a"] * 4 + ["b"] * 2, "temperature_k": [10, 10, 300, 300, 10, 10],
                         E: [0.2, 0.5, -5.0, 3.0, 1.0, 2.0]})
    diffusion = pd.DataFrame({"molecule": ["a"] * 3 + ["b"] * 2, "n": [1, 1, 5, 1, 1], E: [1.7, 2.0, -9.0, 0.0, 3.0]})
    shift = constant_shift(mcmc, diffusion)
    assert shift.to_dict() == pytest.approx({"a": 1.5, "b": -1.0})  # only the lowest T and n count
    shifted = apply_shift(diffusion, shift)
    low_n = shifted[shifted["n"] == 1].groupby("molecule")[E].min()
    assert low_n.to_dict() == pytest.approx({"a": 0.2, "b": 1.0})  # the MCMC minima at the lowest T


def test_wasserstein_of_known_distributions(rng):
    a = rng.normal(0.0, 1.0, 20_000)
    mcmc = pd.DataFrame({"molecule": "m", "temperature_k": np.repeat([100.0, 400.0], len(a)),
                         E: np.concatenate([a, a + 3.0])})
    diffusion = pd.DataFrame({"molecule": "m", "n": np.repeat([2, 4], len(a)),
                              E: np.concatenate([a + 0.5, rng.uniform(0, 1, len(a)) + 3.0])})
    matched = matched_distances(mcmc, diffusion, u_k=25.0).set_index("n")
    assert list(matched["temperature_k"]) == [100.0, 400.0]  # u n^2 = 100 K and 400 K
    assert matched.loc[2, "w1_kcal_mol"] == pytest.approx(0.5, abs=1e-9)  # a shift moves every quantile by 0.5
    # N(3, 1) vs U(3, 4): W1 = integral |F - G|, computed on a fine grid
    x = np.linspace(-3, 8, 200_001)
    from scipy.stats import norm, uniform

    expected = np.trapezoid(np.abs(norm.cdf(x, 3, 1) - uniform.cdf(x, 3, 1)), x)
    assert matched.loc[4, "w1_kcal_mol"] == pytest.approx(expected, abs=0.02)
    with pytest.raises(ValueError, match="finite scale u"):
        matched_distances(mcmc, diffusion, float("nan"))


def test_moments_count_failed_samples_and_divergence_grows():
    samples = pd.DataFrame({"molecule": "m", "n": [1, 1, 1], E: [1.0, 3.0, np.nan]})
    row = energy_moments(samples, "n").iloc[0]
    assert (row["mean_kcal_mol"], row["n_samples"], row["n_failed"]) == (2.0, 2, 1)
    control = pd.DataFrame({"molecule": "m", "repeat": [99, 0, 9], E: [50.0, 0.1, 4.0]})
    assert divergence(control).iloc[0]["growth_kcal_mol"] == pytest.approx(49.9)
