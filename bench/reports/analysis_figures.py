"""Figures of the analysis tasks, drawn from their result tables (PNG and SVG).

Boltzmann sampling (the study's section 4.4):

* ``boltzmann_violins``  - energy distributions of the diffusion chain at n and of
  MCMC at the matched temperature T ~ u n^2 (figure 7)
* ``boltzmann_energy``   - mean energy against T (MCMC) and against n on a
  quadratic axis (diffusion), per molecule (figure 8)
* ``boltzmann_map``      - the temperature equivalent to each diffusion mean energy
  against n^2, with the fitted T = u n^2 (figure 9)
* ``boltzmann_control``  - energy along the repeated isotropic Gaussian
  perturbations (the control, which diverges)

Phases of generation (section 4.1): ``phase_curves`` (figure 2). Generation
quality: ``generation_quality`` (EDM's metrics per denoiser, e.g. per epoch).
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.columns import Col  # noqa: E402

E = str(Col.ENERGY_ABOVE_GROUND)
E_LABEL = "E - E(ground state) [kcal/mol]"
MAX_PANELS = 6


def _grid(n: int, width: float = 3.6, height: float = 3.2) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _first_method(df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    method = df["method"].iloc[0]
    return method, df[df["method"] == method]


def boltzmann_violins(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    matched, mcmc, diffusion = (tables.get(k) for k in ("matched", "mcmc_samples", "diffusion_samples"))
    if matched is None or matched.empty or mcmc is None or diffusion is None:
        return None
    method, matched = _first_method(matched)
    diffusion = diffusion[diffusion["method"] == method]
    molecules = list(matched["molecule"].unique())[:MAX_PANELS]
    fig, axes = _grid(len(molecules), width=4.6)
    for ax, molecule in zip(axes, molecules):
        pairs = matched[matched["molecule"] == molecule].sort_values("n")
        data, positions, colours = [], [], []
        for k, row in enumerate(pairs.itertuples()):
            d = diffusion[(diffusion["molecule"] == molecule) & (diffusion["n"] == row.n)][E].dropna()
            m = mcmc[(mcmc["molecule"] == molecule) & (mcmc["temperature_k"] == row.temperature_k)][E].dropna()
            for values, offset, colour in ((d, -0.2, "tab:blue"), (m, 0.2, "tab:orange")):
                if len(values) > 1:
                    data.append(values.to_numpy())
                    positions.append(k + offset)
                    colours.append(colour)
        if data:
            parts = ax.violinplot(data, positions=positions, widths=0.38, showmedians=True)
            for body, colour in zip(parts["bodies"], colours):
                body.set_facecolor(colour)
                body.set_alpha(0.6)
        ax.set_xticks(range(len(pairs)), [f"n={r.n}\n{r.temperature_k:.0f} K" for r in pairs.itertuples()],
                      fontsize=7)
        ax.set_title(str(molecule), fontsize=9)
        ax.set_xlabel("diffusion step n / matched temperature T")
        ax.set_ylabel(E_LABEL)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in ("tab:blue", "tab:orange")]
    fig.legend(handles, [f"diffusion chain ({method})", "MCMC (oracle)"], loc="upper right", fontsize=8)
    fig.suptitle("Energy distributions at matched n and T ~ u n^2")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def boltzmann_energy(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    mcmc = tables.get("mcmc")
    if mcmc is None or mcmc.empty:
        return None
    diffusion = tables.get("diffusion")
    has_diffusion = diffusion is not None and not diffusion.empty
    fig, axes = plt.subplots(1, 2 if has_diffusion else 1, figsize=(11 if has_diffusion else 6, 4.2), squeeze=False)
    for molecule, g in mcmc.groupby("molecule"):
        axes[0][0].errorbar(g["temperature_k"], g["mean_kcal_mol"], yerr=g["std_kcal_mol"], marker="o", ms=3,
                            capsize=2, label=str(molecule))
    axes[0][0].set_xlabel("temperature T [K]")
    axes[0][0].set_ylabel(f"mean {E_LABEL}")
    axes[0][0].set_title("MCMC (oracle): linear in T")
    axes[0][0].legend(fontsize=7)
    if has_diffusion:
        method, diffusion = _first_method(diffusion)
        ax = axes[0][1]
        for molecule, g in diffusion.groupby("molecule"):
            ax.errorbar(g["n"], g["mean_kcal_mol"], yerr=g["std_kcal_mol"], marker="o", ms=3, capsize=2,
                        label=str(molecule))
        ax.set_xscale("function", functions=(lambda x: np.sign(x) * x**2, lambda x: np.sqrt(np.abs(x))))
        ax.set_xlabel("diffusion step n (quadratic axis)")
        ax.set_ylabel(f"mean {E_LABEL} (shifted)")
        ax.set_title(f"Diffusion chain ({method}): quadratic in n")
    fig.tight_layout()
    return fig


def boltzmann_map(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    points, fit = tables.get("fit_points"), tables.get("fit")
    if points is None or points.empty or fit is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    method, points = _first_method(points)
    row = fit[fit["method"] == method].iloc[0]
    for molecule, g in points.groupby("molecule"):
        ax.plot(g["n"] ** 2, g["equivalent_temperature_k"], "o", ms=4, label=str(molecule))
    n2 = np.linspace(0, float((points["n"] ** 2).max()), 50)
    ax.plot(n2, row["u_k"] * n2, "k--", label=f"T = u n², u = {row['u_k']:.3g} K, R² = {row['r2']:.3f}")
    ax.set_xlabel("n² (diffusion step squared)")
    ax.set_ylabel("temperature with the same MCMC mean energy [K]")
    ax.set_title(f"One quadratic map for all molecules ({method})")
    ax.legend(fontsize=7)
    return fig


def boltzmann_control(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    control = tables.get("control")
    if control is None or control.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for molecule, g in control.groupby("molecule"):
        ax.plot(g["repeat"] + 1, g[E], "o-", ms=3, label=str(molecule))
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=min(0.0, float(control[E].min())))
    step = control["std_ang"].iloc[0]
    ax.set_xlabel("repeats of the Gaussian perturbation")
    ax.set_ylabel(E_LABEL)
    ax.set_title(f"Control: repeated isotropic perturbations (σ = {step:.3g} Å) diverge")
    ax.legend(fontsize=7)
    return fig


_PHASE_PANELS = (
    ("step size [Å]", (("step_size_ang", "L2 norm of the step"),), "log"),
    ("|bond length error| [Å]", (("bond_length_error_ang", "bonded pairs of the final structure"),), "log"),
    ("fraction", (("frac_atoms_element_final", "atoms with final element"),
                  ("molecule_elements_final", "molecules with all elements final"),
                  ("frac_atoms_bonds_final", "atoms with final bonds"),
                  ("molecule_bonds_final", "molecules with all bonds final"),
                  ("frac_atoms_valid_valence", "atoms with a valid valence")), "linear"),
)


def phase_curves(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    phases = tables.get("phases_summary")
    if phases is None or phases.empty:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ends = tables.get("exploration_end")
    multi = phases["method"].nunique() > 1
    for ax, (ylabel, metrics, scale) in zip(axes, _PHASE_PANELS):
        if scale == "log" and not (phases[[f"{m}_mean" for m, _ in metrics]] > 0).any().any():
            scale = "linear"  # nothing positive to show: no bonds in any final structure
            ax.text(0.5, 0.5, "no bonded pairs in the final structures", ha="center", transform=ax.transAxes)
            ax.set_xlim(phases["steps_left"].min(), phases["steps_left"].max())
        for method, g in phases.groupby("method", sort=False):
            for metric, label in metrics:
                x, mean, std = g["steps_left"], g[f"{metric}_mean"], g[f"{metric}_std"].fillna(0)
                line, = ax.plot(x, mean, lw=1, label=f"{label} ({method})" if multi else label)
                # the band stays where the quantity lives: positive on a log axis, [0, 1] for fractions
                lower, upper = (np.maximum(mean - std, 0.1 * mean), mean + std) if scale == "log" else \
                    ((mean - std).clip(0, 1), (mean + std).clip(0, 1))
                ax.fill_between(x, lower, upper, alpha=0.15, color=line.get_color())
        if ends is not None:
            for end in ends["exploration_end_step"].dropna():
                ax.axvline(end, color="grey", ls=":", lw=1)
        ax.set_yscale(scale)
        ax.set_xlabel("reverse-diffusion steps left")
        ax.set_ylabel(ylabel)
        ax.invert_xaxis()
    axes[2].set_ylim(-0.02, 1.02)
    fig.legend(*axes[2].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=8)
    fig.suptitle("Phases of generation (mean ± std over molecules; dotted: end of exploration)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


_QUALITY = ("atom_stability", "molecule_stability", "validity", "uniqueness", "novelty")


def generation_quality(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    metrics = tables.get("generation_summary")
    if metrics is None or metrics.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    names = [m for m in _QUALITY if m in metrics]
    width = 0.8 / len(metrics)
    for k, row in enumerate(metrics.itertuples()):
        ax.bar(np.arange(len(names)) + k * width, [getattr(row, m) for m in names], width, label=row.method)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, fontsize=8)
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1.05)
    ax.set_title("Generation quality (EDM's metrics)")
    ax.legend(fontsize=7)
    return fig


BOLTZMANN_FIGURES: dict[str, Callable[[dict[str, pd.DataFrame]], plt.Figure | None]] = {
    "boltzmann_violins": boltzmann_violins, "boltzmann_energy": boltzmann_energy,
    "boltzmann_map": boltzmann_map, "boltzmann_control": boltzmann_control,
}
PHASES_FIGURES = {"phase_curves": phase_curves}
GENERATION_FIGURES = {"generation_quality": generation_quality}
