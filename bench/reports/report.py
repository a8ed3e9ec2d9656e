"""The run report: Markdown and a self-contained HTML page (figures inlined)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reports.figures import save_figures

_HEADLINE = ["median_energy_above_ground_kcal_mol", "energy_ratio", "median_steps", "median_speedup",
             "p25_speedup", "p75_speedup", "fraction_slower", "alignment_gap", "denoiser_ms_per_molecule",
             "net_saving_s_per_molecule", "n_failed"]


_SECTIONS = [("energy_summary", "Energy above the oracle ground state"),
             ("relax_summary", "Oracle relaxation from each start")]


def summary_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [{"method": m, **{k: v.get(k) for k in _HEADLINE}} for m, v in summary["methods"].items()]
    return pd.DataFrame(rows)


def write_report(out_dir: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any],
                 manifest: dict[str, Any]) -> None:
    """Write figures/, report.md and report.html into ``out_dir``."""
    figures = save_figures(tables, out_dir / "figures")
    head = summary_frame(summary)
    hw = manifest["hardware"]
    intro = (f"{summary['n_molecules']} molecules, {summary['wall_s']} s wall time, git {manifest['git_revision']}, "
             f"{hw['cpu']} ({hw['cores']} cores). Energies in kcal/mol; relaxations ASE BFGS; speedup = "
             "1 - steps/steps_MMFF; alignment gap = mean cos(Δ10, gs) - cos(Δ10, f).")
    sections = [(title, tables[key]) for key, title in _SECTIONS if key in tables]
    md = [f"# edm-bench run: {summary['label']}", "", intro, "", "## Headline", "",
          head.to_markdown(index=False, floatfmt=".3g"), ""]
    for title, df in sections:
        md += [f"## {title}", "", df.to_markdown(index=False, floatfmt=".3g"), ""]
    for name in figures:
        md += [f"![{name}](figures/{name}.png)", ""]
    md += ["Per-molecule rows: `energy.csv`, `relax.csv`, `path.csv`; settings and versions: `manifest.json`.", ""]
    (out_dir / "report.md").write_text("\n".join(md))

    def table(df: pd.DataFrame) -> str:
        return df.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="t")

    imgs = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((out_dir / "figures" / f"{name}.png").read_bytes()).decode()}"/>'
        f"<figcaption>{name}</figcaption></figure>"
        for name in figures
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(summary['label'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table.t{{border-collapse:collapse;font-size:13px}}table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:right}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head><body>
<h1>edm-bench run: {html.escape(summary['label'])}</h1><p>{html.escape(intro)}</p>
<h2>Headline</h2>{table(head)}
{"".join(f"<h2>{html.escape(title)}</h2>{table(df)}" for title, df in sections)}
<h2>Figures</h2>{imgs}</body></html>"""
    (out_dir / "report.html").write_text(page)
