"""The report of an analysis run (``boltzmann``, ``phases``, ``generation``):
the headline per denoiser, the task's summary tables and its figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.reports.figures import save_figures
from bench.reports.report import summary_frame, write_pages


def write_analysis_report(out_dir: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any],
                          manifest: dict[str, Any], figures: dict[str, Callable], sections: Sequence[tuple[str, str]],
                          intro: str) -> None:
    """Write figures/, report.md and report.html for an analysis run.

    ``sections`` are (table name, title) pairs; tables missing from ``tables`` are
    skipped, so one report layout serves runs with and without denoisers.
    """
    drawn = save_figures(tables, out_dir / "figures", figures)
    hw = manifest["hardware"]
    text = (f"{intro} {summary['n_molecules']} molecules, {summary['wall_s']} s wall time, "
            f"git {manifest['git_revision']}, {hw['cpu']} ({hw['cores']} cores).")
    for message in summary.get("warnings", []):
        text += f" WARNING: {message}."
    parts: list[tuple[str, pd.DataFrame]] = []
    columns = sorted({k for v in summary["methods"].values() for k in v})
    if columns:
        parts.append(("Headline (per denoiser)", summary_frame(summary, columns)))
    parts += [(title, tables[name]) for name, title in sections if name in tables]
    write_pages(out_dir, f"edm-bench {summary['task']}: {summary['label']}", text, parts, drawn,
                "Tables: the CSV and Parquet files beside this report; settings, seeds and versions: `manifest.json`.")
