"""The study's figures, drawn from result tables (PNG and SVG).

* ``energy_path``   - energy above the ground state along the denoiser path (figure 4)
* ``steps_scatter`` - oracle steps from the denoiser output vs from the MMFF start,
  coloured by the energy delta (figure 10, left)
* ``alignment``     - cos(Delta_k, f), cos(Delta_k, gs) and cos(f, gs) along the path (figure 6)
* ``speedup_epoch`` - median speedup against training epoch (figure 10, right), when a
  run covers a checkpoint series
* ``alignment_epoch`` - the alignment gap against training epoch (the crossover of figure 6)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import metrics  # noqa: E402
from bench.columns import Col  # noqa: E402

FIGSIZE = (6.4, 4.2)


def energy_path(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    path = tables.get("path")
    if path is None or path.empty:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for method, g in path.groupby("method"):
        e = g.groupby("steps_left")["energy_above_ground_kcal_mol"]
        x = np.array(sorted(g["steps_left"].unique()))
        line, = ax.plot(x, e.median().loc[x], label=f"{method} (median)")
        ax.fill_between(x, e.quantile(0.25).loc[x], e.quantile(0.75).loc[x], alpha=0.2, color=line.get_color(),
                        label=f"{method} (25th-75th percentile)")
    ax.set_xlabel("reverse-diffusion steps left")
    ax.set_ylabel("E - E(ground state) [kcal/mol]")
    ax.invert_xaxis()
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend(fontsize=8)
    ax.set_title("Energy along the denoiser path")
    return fig


def steps_scatter(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    relax = tables.get("relax")
    if relax is None or relax.empty:
        return None
    methods = [m for m in relax[Col.METHOD].unique() if m != metrics.REFERENCE]
    if not methods:
        return None
    relax = metrics.per_molecule(relax, "relax")  # every molecule, as the metrics count it
    fig, ax = plt.subplots(figsize=FIGSIZE)
    markers = "osD^v<>p"
    lim = 1.0
    sc = None
    for k, method in enumerate(methods):
        g = relax[relax[Col.METHOD] == method]
        if g.empty:
            continue
        delta = g[Col.DELTA_E].clip(-1, 1)
        sc = ax.scatter(g[Col.REFERENCE_ORACLE_STEPS], g[Col.ORACLE_STEPS], c=delta, cmap="coolwarm", vmin=-1, vmax=1,
                        marker=markers[k % len(markers)], s=22, label=method, edgecolors="k", linewidths=0.4)
        lim = max(lim, float(np.nanmax(g[[Col.REFERENCE_ORACLE_STEPS, Col.ORACLE_STEPS]].to_numpy())))
    ax.plot([0, lim], [0, lim], color="grey", lw=0.8, ls="--", label="equal steps")
    ax.set_xlabel("oracle BFGS steps from the MMFF start")
    ax.set_ylabel("oracle BFGS steps from the method's start")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="E(MMFF-relaxed) - E(relaxed) [kcal/mol]")
    ax.legend(fontsize=8)
    ax.set_title("Relaxation steps: method vs MMFF start")
    return fig


def alignment(tables: dict[str, pd.DataFrame], ks: tuple[int, ...] = (1, 10, 30)) -> plt.Figure | None:
    path = tables.get("path")
    if path is None or path.empty:
        return None
    methods = list(path["method"].unique())
    fig, axes = plt.subplots(1, len(ks), figsize=(4.0 * len(ks), 3.8), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], ks):
        for method in methods:
            g = path[path["method"] == method]
            for col, label, style, colour in ((f"cos_d{k}_gs", "cos(Δ, gs)", "-", "tab:blue"),
                                              (f"cos_d{k}_f", "cos(Δ, f)", "--", "tab:orange"),
                                              ("cos_f_gs", "cos(f, gs)", ":", "tab:green")):
                if col not in g:
                    continue
                stats = g.groupby("steps_left")[col].agg(["mean", "std"]).dropna()
                x = stats.index.to_numpy()
                if len(methods) > 1:
                    label, colour = f"{label} {method}", None
                line, = ax.plot(x, stats["mean"], style, color=colour, label=label)
                ax.fill_between(x, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.15,
                                color=line.get_color())
        ax.set_title(f"k = {k}")
        ax.set_xlabel("reverse-diffusion steps left")
        ax.invert_xaxis()
        ax.axhline(0, color="grey", lw=0.6)
    axes[0][0].set_ylabel("cosine similarity (mean over atoms)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Alignment of denoising steps with forces (f) and the way to the ground state (gs)")
    fig.tight_layout()
    return fig


def _against_epoch(tables: dict[str, pd.DataFrame], metric: str, ylabel: str, title: str) -> plt.Figure | None:
    series = tables.get("checkpoints")
    if series is None or series.empty or series[metric].isna().all():
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for (sampler, n), g in series.dropna(subset=[metric]).groupby(["sampler", Col.START_STEP]):
        g = g.sort_values("epoch")
        ax.plot(g["epoch"], g[metric], marker="o", ls="-" if sampler == "ancestral" else "--",
                label=f"{sampler}, n = {n}")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("training epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.set_title(title)
    return fig


def speedup_epoch(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    return _against_epoch(tables, "median_speedup", "median speedup (1 - steps / steps_MMFF)",
                          "Oracle steps saved vs training epoch")


def alignment_epoch(tables: dict[str, pd.DataFrame]) -> plt.Figure | None:
    """The alignment crossover: > 0 when the steps head for the ground state more than along the forces."""
    return _against_epoch(tables, "alignment_gap", "cos(Δ10, gs) - cos(Δ10, f)",
                          "Alignment gap vs training epoch (> 0: towards the ground state)")


FIGURES: dict[str, Callable[[dict[str, pd.DataFrame]], plt.Figure | None]] = {
    "energy_path": energy_path,
    "steps_scatter": steps_scatter,
    "alignment": alignment,
    "speedup_epoch": speedup_epoch,
    "alignment_epoch": alignment_epoch,
}


def save_figures(tables: dict[str, pd.DataFrame], out_dir: Path,
                 figures: dict[str, Callable[[dict[str, pd.DataFrame]], plt.Figure | None]] | None = None
                 ) -> list[str]:
    """Draw every figure (of ``figures``, default :data:`FIGURES`) the tables
    allow; write PNG and SVG; return their names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (FIGURES if figures is None else figures).items():
        fig = draw(tables)
        if fig is None:
            continue
        for ext in ("png", "svg"):
            fig.savefig(out_dir / f"{name}.{ext}", dpi=130, bbox_inches="tight")
        plt.close(fig)
        written.append(name)
    return written
