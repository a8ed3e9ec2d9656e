"""The run report: Markdown and a self-contained HTML page (figures inlined)."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reports.figures import save_figures

_HEADLINE = ["mean_energy_above_ground_kcal_mol", "energy_ratio", "within_1_kcal_mol", "mean_rmsd_heavy_ang",
             "median_oracle_steps", "median_speedup", "p25_speedup", "p75_speedup", "fraction_slower",
             "alignment_gap", "alignment_gap_fixed_gs", "denoiser_ms_per_molecule", "net_saving_s_per_molecule",
             "n_failed", "n_unconverged", "n_excluded"]

#: The study's numbers (its sections 4.2, 5.1 and 5.2), by benchmark dataset family:
#: (quantity, the study's value, our column, whose row: "mmff", "best" = the
#: denoiser row lowest in energy, or a start step n = the best denoiser row at that n).
STUDY_NUMBERS: dict[str, tuple[str, list[tuple[str, str, str, str | int]]]] = {
    "qm9": ("QM9; the study's oracle is DFT B3LYP/6-31G(2df,p), its EDM 5,150 epochs", [
        ("MMFF above the ground state, kcal/mol", "about 10", "mean_energy_above_ground_kcal_mol", "mmff"),
        ("denoiser above the ground state, kcal/mol", "about 1", "mean_energy_above_ground_kcal_mol", "best"),
        ("median BFGS speedup, n = 20", "0.40", "median_speedup", 20),
        ("median BFGS speedup, n = 50", "0.57", "median_speedup", 50),
    ]),
    "drugs": ("GEOM-DRUGS under GFN2-xTB, its EDM 263 epochs", [
        ("MMFF above the ground state, kcal/mol", "14.3", "mean_energy_above_ground_kcal_mol", "mmff"),
        ("denoiser above the ground state, kcal/mol", "8.3", "mean_energy_above_ground_kcal_mol", "best"),
        ("median xTB BFGS speedup", "0.07", "median_speedup", "best"),
    ]),
}


def study_comparison(summary: dict[str, Any], dataset: str) -> tuple[str, pd.DataFrame] | None:
    """The study's numbers beside this run's (one row per quantity), for a dataset of
    the QM9 or DRUGS family; None for another dataset. A quantity whose row is missing
    (no denoiser in the run) is left blank."""
    family = next((f for f in STUDY_NUMBERS if dataset.startswith(f)), None)
    if family is None:
        return None
    title, quantities = STUDY_NUMBERS[family]
    methods = summary["methods"]
    denoisers = {m: v for m, v in methods.items() if "/n=" in m}
    rows = []
    for quantity, study, column, whose in quantities:
        if whose == "mmff":
            candidates = {m: v for m, v in methods.items() if m == "mmff"}
        elif whose == "best":
            candidates = denoisers
        else:
            candidates = {m: v for m, v in denoisers.items() if m.split("/n=")[1].split("/")[0] == str(whose)}
        values = {m: v[column] for m, v in candidates.items() if v.get(column) is not None}
        lower_is_better = column.startswith("mean_energy")
        best = (min if lower_is_better else max)(values, key=values.get) if values else None
        rows.append({"quantity": quantity, "study": study, "ours": None if best is None else values[best],
                     "our row": best or "(none in this run)"})
    return f"Beside the study ({title})", pd.DataFrame(rows)


#: Click a header of a ``table.sortable`` to sort by it (numbers as numbers, blanks last); shared
#: by the report and the leaderboard pages.
SORTABLE_SCRIPT = """<script>
document.querySelectorAll('table.sortable').forEach(table => table.querySelectorAll('th').forEach((th, col) =>
  th.addEventListener('click', () => {
    const body = table.tBodies[0]; const rows = Array.from(body.rows);
    const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    const key = r => { const t = r.cells[col].innerText.trim(); const v = parseFloat(t);
                       return t === '' ? null : isNaN(v) ? t : v; };
    const order = (a, b) => a === null ? (b === null ? 0 : 1) : b === null ? -1 :
      typeof a === typeof b ? (a > b ? dir : a < b ? -dir : 0) : (typeof a === 'number' ? -1 : 1);
    rows.sort((a, b) => order(key(a), key(b))).forEach(r => body.appendChild(r));
  })));
</script>"""


def summary_frame(summary: dict[str, Any], columns: Sequence[str] = _HEADLINE) -> pd.DataFrame:
    rows = [{"method": m, **{k: v.get(k) for k in columns}} for m, v in summary["methods"].items()]
    return pd.DataFrame(rows, columns=["method", *columns])


def write_report(out_dir: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any],
                 manifest: dict[str, Any], figures: dict[str, Callable] | None = None) -> None:
    """Write figures/ (``figures``, by name: the run's tasks'; default every figure of
    :mod:`bench.reports.figures`), report.md and report.html into ``out_dir``."""
    figures = save_figures(tables, out_dir / "figures", figures)
    hw = manifest["hardware"]
    intro = (f"{summary['n_molecules']} molecules, {summary['wall_s']} s wall time, git {manifest['git_revision']}, "
             f"{hw['cpu']} ({hw['cores']} cores). Energies in kcal/mol; relaxations ASE BFGS; speedup = "
             "1 - steps/steps_MMFF; energy ratio = mean E(MMFF) / mean E(method); alignment gap = mean "
             "cos(Δ10, gs) - cos(Δ10, f). Failure rule: " + manifest["settings"]["failure_rule"])
    sections = [("Headline", summary_frame(summary))]
    study = study_comparison(summary, str(manifest["settings"].get("dataset", {}).get("name", "")))
    if study is not None:
        sections.insert(0, study)
    if "metrics" in tables:
        sections.append(("Every metric, with 95 % bootstrap intervals over molecules", tables["metrics"]))
    write_pages(out_dir, f"edm-bench run: {summary['label']}", intro, sections, figures,
                "Per-molecule rows: `energy.csv`, `relax.csv`, `path.csv`; settings and versions: `manifest.json`.")


def write_pages(out_dir: Path, title: str, intro: str, sections: Sequence[tuple[str, pd.DataFrame]],
                figures: Sequence[str], footer: str) -> None:
    """report.md and a self-contained report.html: the intro, one table per
    section, and the figures (PNG files in ``out_dir/figures``, inlined in the HTML)."""
    md = [f"# {title}", "", intro, ""]
    for heading, df in sections:
        md += [f"## {heading}", "", df.to_markdown(index=False, floatfmt=".3g"), ""]
    for name in figures:
        md += [f"![{name}](figures/{name}.png)", ""]
    md += [footer, ""]
    (out_dir / "report.md").write_text("\n".join(md))

    def table(df: pd.DataFrame) -> str:
        return df.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="t sortable")

    imgs = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((out_dir / "figures" / f"{name}.png").read_bytes()).decode()}"/>'
        f"<figcaption>{name}</figcaption></figure>"
        for name in figures
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table.t{{border-collapse:collapse;font-size:13px}}table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:right}}table.t th{{cursor:pointer;background:#f4f4f4}}img{{max-width:100%}}figure{{margin:1em 0}}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>
{"".join(f"<h2>{html.escape(heading)}</h2>{table(df)}" for heading, df in sections)}
<h2>Figures</h2>{imgs}<p>{html.escape(footer)}</p>
{SORTABLE_SCRIPT}</body></html>"""
    (out_dir / "report.html").write_text(page)
