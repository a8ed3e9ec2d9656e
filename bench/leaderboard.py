"""``edm-bench leaderboard``: ranked tables over denoisers, one per benchmark.

A benchmark is a label: dataset, split, oracle (with its code versions and
settings), fmax and the molecule subset (its hash). Rows of different labels are
never ranked against each other. For relaxation runs every number is recomputed
here by :mod:`bench.metrics` from the runs' per-molecule tables, each checked
against the sha256 its run's manifest recorded; ``summary.json`` is not read.
Each table is ranked by its primary metric (:data:`bench.metrics.PRIMARY`,
named in its caption), and a row is ``tied_with_next`` when a paired bootstrap of
the per-molecule difference in that metric does not exclude 0. Analysis runs
(``boltzmann``, ``phases``, ``generation``) get tables of their own, from their
summaries. Baselines and the ceiling row are ordinary rows.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import metrics, registry
from bench.artifacts import check_complete, read_json, read_run_tables
from bench.columns import Col
from bench.errors import InputError
from bench.reports.report import SORTABLE_SCRIPT

#: Columns a relaxation benchmark's table shows, in order (the CSV has every metric).
SHOWN = ["rank", "method", "tied_with_next", "median_speedup", "median_speedup_ci", "energy_ratio",
         "energy_ratio_ci", "excess_removed", "mean_energy_above_ground_kcal_mol", "within_1_kcal_mol",
         "mean_rmsd_heavy_ang", "fraction_slower", "alignment_gap", "alignment_gap_fixed_gs",
         "net_saving_s_per_molecule", "denoiser_ms_per_molecule", "n_seeds", "n_failed", "n_unconverged",
         "n_excluded"]


@dataclass
class Board:
    """One ranked table: the rows of every run with one label and task."""

    task: str
    label: str
    primary: str
    higher_is_better: bool
    rows: pd.DataFrame
    samples: dict[tuple[str, str], dict[str, metrics.Sample]] = field(default_factory=dict, repr=False)

    @property
    def caption(self) -> str:
        return f"{self.task}: {self.label}. {self.rule}"

    @property
    def rule(self) -> str:
        """How the board is ranked and what a tie is."""
        better = "higher" if self.higher_is_better else "lower"
        return (f"Ranked by {self.primary} ({better} is better); tied_with_next: the paired bootstrap interval of "
                "the difference to the next row contains 0.")


def _run_rows(run: Path) -> tuple[str, pd.DataFrame, dict, metrics.Bootstrap]:
    """The label, metric rows and samples of a relaxation run, from its per-molecule tables."""
    manifest, tables = read_run_tables(run)
    settings = manifest["settings"]
    boot = metrics.Bootstrap(**{k: v for k, v in settings["bootstrap"].items() if k != "unit"})
    rows, samples = [], {}
    for method in metrics.methods_of(tables):
        method_samples = metrics.samples(tables, method)
        samples[(method, str(run))] = method_samples
        rows.append({Col.METHOD: method, **metrics.summarise_method(method_samples, boot)})
    hw = manifest.get("hardware", {})
    df = registry.with_task_metrics(pd.DataFrame(rows), tables, _tasks_of(settings)).assign(run=str(run), hardware=f"{hw.get('cpu', '?')} x{hw.get('cores', '?')}",
                                   git_revision=manifest.get("git_revision", "unknown"))
    return settings["benchmark"]["label"], df, samples, boot


def _tasks_of(settings: dict) -> list:
    """The run tasks a run folder's manifest lists (every run task for a manifest without the list)."""
    return registry.run_tasks(settings.get("run", {}).get("tasks") or registry.run_task_names())


def _rank(df: pd.DataFrame, primary: str, higher: bool, secondary: str | None = None) -> pd.DataFrame:
    """Rows sorted by ``primary`` (missing last), equal values by ``secondary`` (higher first)."""
    def sort_key(column: str, up: bool) -> np.ndarray:
        key = df[column].astype(float).to_numpy()
        return np.where(np.isnan(key), np.inf, -key if up else key)

    keys = [sort_key(primary, higher)]
    if secondary is not None and secondary in df and secondary != primary:
        keys.insert(0, sort_key(secondary, True))
    order = np.lexsort(keys)
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


def collect(run_dirs: Sequence[Path]) -> list[Board]:
    """The ranked tables of the given run folders, one per (task, label)."""
    if not run_dirs:
        raise InputError("no runs given")
    relax: dict[str, list] = {}
    analyses: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for run in map(Path, run_dirs):
        check_complete(run)
        task = read_json(run / "manifest.json").get("settings", {}).get("task", "run")
        if task == "run":
            label, df, samples, boot = _run_rows(run)
            relax.setdefault(label, []).append((df, samples, boot))
        else:
            summary = read_json(run / "summary.json")
            rows = [{Col.METHOD: m, **{k: v.get(k) for k in registry.analysis_columns(task)}}
                    for m, v in summary["methods"].items()]
            analyses.setdefault((task, summary["label"]), []).append(pd.DataFrame(rows).assign(run=str(run)))
    boards = []
    for label, parts in relax.items():
        df = pd.concat([p[0] for p in parts], ignore_index=True)
        samples = {k: v for p in parts for k, v in p[1].items()}
        primary = next(m for m in (*metrics.PRIMARY, "mean_energy_above_ground_kcal_mol") if m in df)
        higher = bool(metrics.METRICS[primary].higher_is_better)
        df = _rank(df, primary, higher, secondary="energy_ratio")
        boards.append(Board("run", label, primary, higher, _with_ties(df, samples, primary, parts[0][2]), samples))
    for (task, label), frames in analyses.items():
        df = pd.concat(frames, ignore_index=True)
        primary, higher = next(iter(registry.analysis_columns(task).items()))
        df = _rank(df, primary, bool(higher))
        df["tied_with_next"] = pd.NA  # analyses keep no per-molecule rows to pair
        boards.append(Board(task, label, primary, bool(higher), df))
    return boards


def _with_ties(df: pd.DataFrame, samples: dict, primary: str, boot: metrics.Bootstrap) -> pd.DataFrame:
    metric = metrics.METRICS[primary]
    tied = []
    for i in range(len(df)):
        if i + 1 == len(df):
            tied.append(False)
            continue
        a = metrics.metric_sample(metric, samples[(df.at[i, Col.METHOD], df.at[i, "run"])])
        b = metrics.metric_sample(metric, samples[(df.at[i + 1, Col.METHOD], df.at[i + 1, "run"])])
        tied.append(a is not None and b is not None and not metrics.separable(metric, a, b, boot))
    df = df.copy()
    df["tied_with_next"] = tied
    for name in ("median_speedup", "energy_ratio"):
        if f"{name}_ci_low" in df:
            df[f"{name}_ci"] = [f"{lo:.3g}..{hi:.3g}" if pd.notna(lo) else ""
                                for lo, hi in zip(df[f"{name}_ci_low"], df[f"{name}_ci_high"])]
    return df


def shown_columns(board: Board) -> list[str]:
    """The columns of a board's readable views: the headline ones it has values in."""
    cols = SHOWN if board.task == "run" else ["rank", Col.METHOD, *registry.analysis_columns(board.task)]
    return [c for c in cols if c in board.rows and board.rows[c].notna().any()]


def write_leaderboard(boards: Sequence[Board], out_dir: Path) -> None:
    """leaderboard.md, leaderboard.csv (every metric of every board, with its label)
    and a sortable leaderboard.html in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = pd.concat([b.rows.assign(task=b.task, benchmark=b.label, primary_metric=b.primary) for b in boards],
                     ignore_index=True)
    full["report"] = [os.path.relpath(Path(r) / "report.html", out_dir) for r in full["run"]]
    full.to_csv(out_dir / "leaderboard.csv", index=False)
    md = ["# edm-bench leaderboard", "", "One table per benchmark; rows of different benchmarks are not ranked "
          "together. Metrics are defined in the README (METRICS); energies in kcal/mol.", ""]
    sections = []
    for k, board in enumerate(boards):
        table = board.rows[shown_columns(board)]
        md += [f"## {board.task}: {board.label}", "", f"*{board.caption}*", "",
               table.to_markdown(index=False, floatfmt=".3g"), ""]
        body = table.to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}", border=0,
                             table_id=f"lb{k}", classes="lb sortable")
        sections.append(f"<h2>{html.escape(board.task)}: {html.escape(board.label)}</h2>"
                        f"<p class='cap'>{html.escape(board.caption)}</p>{body}")
    (out_dir / "leaderboard.md").write_text("\n".join(md))
    (out_dir / "leaderboard.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>edm-bench leaderboard</title><style>body{{font-family:sans-serif;margin:2em}}
.lb{{border-collapse:collapse;font-size:13px}}.lb td,.lb th{{padding:3px 8px;border-bottom:1px solid #ddd}}
.lb th{{cursor:pointer;background:#f4f4f4}}.cap{{color:#555;font-size:13px}}</style></head><body>
<h1>edm-bench leaderboard</h1><p>Click a column header to sort. Per-row reports and every metric:
<a href="leaderboard.csv">leaderboard.csv</a>.</p>{"".join(sections)}
{SORTABLE_SCRIPT}</body></html>""")
