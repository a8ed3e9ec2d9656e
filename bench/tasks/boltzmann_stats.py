"""Statistics of the Boltzmann analysis (the study's section 4.4, figures 7-9):
from energy samples of the MCMC chains (per temperature) and of the diffusion
chains (per step n) to the per-molecule constant shift, the single scale u of
the quadratic map T = u n^2, and distances between matched distributions.

Every function takes tidy frames of samples with the columns ``molecule``,
``energy_above_ground_kcal_mol`` and ``temperature_k`` (MCMC) or ``n`` (diffusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from bench.columns import Col

E = str(Col.ENERGY_ABOVE_GROUND)


def energy_moments(samples: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean and standard deviation (kcal/mol) of the finite energies per
    (molecule, ``by``), with the number of samples and of failed (NaN) ones."""
    grouped = samples.groupby(["molecule", by])[E]
    out = grouped.agg(mean_kcal_mol="mean", std_kcal_mol="std", n_samples="count")
    out["n_failed"] = grouped.size() - out["n_samples"]
    return out.reset_index()


def constant_shift(mcmc: pd.DataFrame, diffusion: pd.DataFrame) -> pd.Series:
    """Per molecule, the constant that equalises the minima of the two chains at
    the lowest T and the lowest n: min E_diffusion(n_min) - min E_MCMC(T_min)
    (kcal/mol; the study found it under 2). Subtract it from the diffusion energies.

    Both chains start at the ground state, but the diffusion chain's stationary
    state sits a little off the oracle minimum; the shift removes that offset so
    the comparison is about the widths of the distributions.
    """
    low_t = mcmc[mcmc["temperature_k"] == mcmc["temperature_k"].min()].groupby("molecule")[E].min()
    low_n = diffusion[diffusion["n"] == diffusion["n"].min()].groupby("molecule")[E].min()
    return (low_n - low_t).rename("shift_kcal_mol").dropna()


def apply_shift(diffusion: pd.DataFrame, shift: pd.Series) -> pd.DataFrame:
    """The diffusion energies minus their molecule's :func:`constant_shift` (0 where a
    molecule has none), so that the minima of the two chains agree at the lowest T and n."""
    return diffusion.assign(**{E: diffusion[E] - diffusion["molecule"].map(shift).fillna(0.0)})


@dataclass(frozen=True)
class QuadraticFit:
    """The fit of one scale u (K) of T = u n^2 for all molecules.

    ``points`` has one row per (molecule, n): ``n``, the diffusion mean energy, the
    molecule's MCMC slope (kcal/mol/K) and the temperature at which the MCMC chain
    has that mean energy (``equivalent_temperature_k``); ``r2`` is the coefficient
    of determination of u n^2 against those temperatures, ``linear_r2`` the median
    over molecules of the R^2 of the MCMC mean energy linear in T.
    """

    u_k: float
    r2: float
    linear_r2: float
    points: pd.DataFrame


def _r2(y: np.ndarray, y_fit: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return float(1.0 - np.sum((y - y_fit) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def fit_quadratic_scale(mcmc_means: pd.DataFrame, diffusion_means: pd.DataFrame) -> QuadraticFit:
    """Fit T = u n^2 with one u shared by all molecules.

    The MCMC mean energy grows linearly with T (equipartition: E = a_m T, fitted
    through the origin per molecule m), so each diffusion mean E_m(n) has an
    equivalent temperature E_m(n) / a_m; u is the least-squares slope of those
    temperatures against n^2 through the origin.

    Parameters
    ----------
    mcmc_means : frame with molecule, temperature_k, mean_kcal_mol
    diffusion_means : frame with molecule, n, mean_kcal_mol (shift applied)
    """
    slopes, linear_r2 = {}, []
    for molecule, g in mcmc_means.dropna(subset=["mean_kcal_mol"]).groupby("molecule"):
        t, e = g["temperature_k"].to_numpy(float), g["mean_kcal_mol"].to_numpy(float)
        slopes[molecule] = float(t @ e / (t @ t))
        if len(g) > 2:
            linear_r2.append(_r2(e, slopes[molecule] * t))
    points = diffusion_means[diffusion_means["molecule"].isin(slopes)].dropna(subset=["mean_kcal_mol"]).copy()
    points["slope_kcal_mol_per_k"] = points["molecule"].map(slopes)
    points["equivalent_temperature_k"] = points["mean_kcal_mol"] / points["slope_kcal_mol_per_k"]
    n2 = points["n"].to_numpy(float) ** 2
    t_eq = points["equivalent_temperature_k"].to_numpy(float)
    if len(points) == 0 or not np.any(n2):
        return QuadraticFit(float("nan"), float("nan"), float("nan"), points)
    u = float(n2 @ t_eq / (n2 @ n2))
    points["fitted_temperature_k"] = u * n2
    return QuadraticFit(u, _r2(t_eq, u * n2) if len(points) > 2 else float("nan"),
                        float(np.median(linear_r2)) if linear_r2 else float("nan"), points)


def matched_distances(mcmc: pd.DataFrame, diffusion: pd.DataFrame, u_k: float) -> pd.DataFrame:
    """Per (molecule, n), the MCMC temperature closest to u n^2 and the
    Wasserstein-1 distance (kcal/mol) between the two energy distributions, with
    their means and standard deviations (the pairs of figure 7).

    Raises
    ------
    ValueError
        When ``u_k`` is not finite (no fit, so nothing is matched).
    """
    if not np.isfinite(u_k):
        raise ValueError(f"cannot match n to T without a finite scale u (got {u_k})")
    temperatures = np.sort(mcmc["temperature_k"].unique())
    mcmc_by = {k: g[E].dropna().to_numpy() for k, g in mcmc.groupby(["molecule", "temperature_k"])}
    rows = []
    for (molecule, n), g in diffusion.groupby(["molecule", "n"]):
        target = u_k * n**2
        t = float(temperatures[np.argmin(np.abs(temperatures - target))])
        a, b = g[E].dropna().to_numpy(), mcmc_by.get((molecule, t), np.empty(0))
        if len(a) == 0 or len(b) == 0:
            continue
        rows.append({"molecule": molecule, "n": n, "u_n2_k": target, "temperature_k": t,
                     "w1_kcal_mol": float(wasserstein_distance(a, b)),
                     "diffusion_mean_kcal_mol": float(a.mean()), "mcmc_mean_kcal_mol": float(b.mean()),
                     "diffusion_std_kcal_mol": float(a.std()), "mcmc_std_kcal_mol": float(b.std())})
    return pd.DataFrame(rows, columns=["molecule", "n", "u_n2_k", "temperature_k", "w1_kcal_mol",
                                       "diffusion_mean_kcal_mol", "mcmc_mean_kcal_mol", "diffusion_std_kcal_mol",
                                       "mcmc_std_kcal_mol"])


def divergence(control: pd.DataFrame) -> pd.DataFrame:
    """Per molecule, the control chain's energy at its first and last kept repeat
    and their ratio (kcal/mol): a random walk's energy keeps growing."""
    ordered = control.sort_values("repeat").groupby("molecule")[E]
    out = pd.DataFrame({"first_kcal_mol": ordered.first(), "last_kcal_mol": ordered.last()})
    out["growth_kcal_mol"] = out["last_kcal_mol"] - out["first_kcal_mol"]
    return out.reset_index()
