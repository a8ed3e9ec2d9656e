"""``edm-bench leaderboard``: a ranked table over denoisers, built only from the
runs' stored artifacts (``summary.json`` + ``manifest.json`` of each run folder).

One row per (run, method): baselines are ordinary rows. Rows are ranked by
median speedup (higher is better), ties broken by the energy ratio. Written as
Markdown, CSV and a sortable HTML page; every row links to its run's report.
Analysis runs (``edm-bench boltzmann``, ``phases``, ``generation``) add their
headline columns; each run fills only its own and ranks after the relaxation runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench.errors import InputError

COLUMNS = ["rank", "method", "label", "energy_ratio", "median_energy_above_ground_kcal_mol", "median_speedup",
           "median_speedup_ci95", "tied_with_next", "p25_speedup", "p75_speedup", "fraction_slower", "alignment_gap", "denoiser_ms_per_molecule",
           "net_saving_s_per_molecule", "total_oracle_s", "n_failed", "boltzmann_u_k", "boltzmann_fit_r2",
           "boltzmann_median_w1_kcal_mol", "exploration_end_step", "atom_stability", "molecule_stability", "validity",
           "uniqueness", "novelty", "n_molecules", "hardware", "git_revision", "report"]
#: Each metric's direction, for readers and for sorting.
HIGHER_IS_BETTER = {"energy_ratio": True, "median_energy_above_ground_kcal_mol": False, "median_speedup": True,
                    "p25_speedup": True, "p75_speedup": True, "fraction_slower": False, "alignment_gap": True,
                    "denoiser_ms_per_molecule": False, "net_saving_s_per_molecule": True, "total_oracle_s": False,
                    "n_failed": False,
                    # the analysis runs (`edm-bench boltzmann`, `phases`, `generation`); a run lacks the others' keys
                    "boltzmann_fit_r2": True, "boltzmann_median_w1_kcal_mol": False, "atom_stability": True,
                    "molecule_stability": True, "validity": True, "uniqueness": True, "novelty": True}
#: Reported as they are, with no better direction: u is a scale (K), the end of
#: exploration a step count to compare with the study's ~50.
DESCRIPTIVE = ("boltzmann_u_k", "exploration_end_step")


def collect(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """One row per (run, method) from the runs' summary and manifest files."""
    rows = []
    for run in run_dirs:
        run = Path(run)
        try:
            summary = json.loads((run / "summary.json").read_text())
            manifest = json.loads((run / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{run}: not a finished run folder (summary.json and manifest.json needed: {exc})") from exc
        hw = manifest.get("hardware", {})
        for method, metrics in summary["methods"].items():
            ci = metrics.get("median_speedup_ci95") or [None, None]
            rows.append({"method": method, "label": summary["label"], "n_molecules": summary["n_molecules"],
                         **{k: metrics.get(k) for k in (*HIGHER_IS_BETTER, *DESCRIPTIVE)}, "ci_low": ci[0], "ci_high": ci[1],
                         "hardware": f"{hw.get('cpu', '?')} x{hw.get('cores', '?')}",
                         "git_revision": manifest.get("git_revision", "unknown"), "run": str(run)})
    if not rows:
        raise InputError("no runs given")
    df = pd.DataFrame(rows)
    df = df.sort_values(["median_speedup", "energy_ratio"], ascending=False, na_position="last", kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    df = df.reset_index(drop=True)
    df["median_speedup_ci95"] = [f"{lo:.2f}..{hi:.2f}" if pd.notna(lo) and pd.notna(hi) else ""
                                 for lo, hi in zip(df["ci_low"], df["ci_high"])]
    # Ties shown as ties: a row whose interval overlaps the next row's is not separable from it.
    df["tied_with_next"] = [bool(i + 1 < len(df) and pd.notna(df.at[i, "ci_low"]) and pd.notna(df.at[i + 1, "ci_high"])
                                 and df.at[i, "ci_low"] <= df.at[i + 1, "ci_high"]) for i in range(len(df))]
    return df


def write_leaderboard(df: pd.DataFrame, out_dir: Path) -> None:
    """leaderboard.md, leaderboard.csv and a sortable leaderboard.html in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    df["report"] = [os.path.relpath(Path(r) / "report.html", out_dir) for r in df["run"]]
    table = df[COLUMNS]
    table.to_csv(out_dir / "leaderboard.csv", index=False)
    table = table.dropna(axis="columns", how="all")  # the readable views leave out what no run measured
    md = table.assign(report=[f"[report]({p})" for p in table["report"]])
    (out_dir / "leaderboard.md").write_text(
        "# edm-bench leaderboard\n\nRanked by median speedup (1 - oracle steps from the method's output / from "
        "the MMFF start); energies in kcal/mol; alignment gap = mean cos(Δ10, gs) - cos(Δ10, f).\n\n"
        + md.to_markdown(index=False, floatfmt=".3g") + "\n")
    html_table = table.assign(report=[f'<a href="{p}">report</a>' for p in table["report"]]).to_html(
        index=False, escape=False, float_format=lambda v: f"{v:.3g}", border=0, table_id="lb")
    (out_dir / "leaderboard.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>edm-bench leaderboard</title><style>body{{font-family:sans-serif;margin:2em}}
#lb{{border-collapse:collapse;font-size:13px}}#lb td,#lb th{{padding:3px 8px;border-bottom:1px solid #ddd}}
#lb th{{cursor:pointer;background:#f4f4f4}}</style></head><body><h1>edm-bench leaderboard</h1>
<p>Click a column header to sort. Ranked by median speedup.</p>{html_table}
<script>
document.querySelectorAll('#lb th').forEach((th, col) => th.addEventListener('click', () => {{
  const body = document.querySelector('#lb tbody'); const rows = Array.from(body.rows);
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  const key = r => {{ const t = r.cells[col].innerText; const v = parseFloat(t); return isNaN(v) ? t : v; }};
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * dir).forEach(r => body.appendChild(r));
}}));
</script></body></html>""")
