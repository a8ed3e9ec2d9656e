"""``edm-bench check RESULTS --baseline FILE``: a regression gate.

The baseline file (YAML or JSON, committed in the repository) lists metrics with
their expected value, a tolerance and a direction::

    metrics:
      edm-small/n=50/median_speedup: {value: 0.12, tolerance: 0.05, higher_is_better: true}
      perf/cpp/qm9x64/ratio_to_reference: {value: 4.0, tolerance: 1.0, higher_is_better: true}

A metric name is ``<method>/<metric>`` of a run folder (RESULTS), recomputed by
:mod:`bench.metrics` from the run's per-molecule tables (checked against their
sha256 in the manifest), or ``perf/<backend>/<case>/<field>`` of ``edm-bench perf --json`` records
(RESULTS is that JSON file, or a folder holding it as ``perf.json``, as
``edm-bench gate`` writes). A value worse than ``value - tolerance`` (or
``+ tolerance`` when lower is better) is a regression; a missing metric too.
Entries may carry more keys (the measured ``spread``, ``repeats``, ``samples``);
they are read by people, not by the check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.errors import InputError


#: The perf records' file inside a results folder (written by ``edm-bench gate``).
PERF_FILE = "perf.json"


def run_metrics(run_dir: Path) -> dict[str, float]:
    """``<method>/<metric>`` of a run folder, recomputed from its per-molecule tables."""
    from bench import metrics
    from bench.artifacts import read_run_tables

    _, tables = read_run_tables(run_dir)
    out = {}
    for row in metrics.summarise(tables, bootstrap=None).to_dict(orient="records"):
        method = row.pop("method")
        out |= {f"{method}/{key}": float(value) for key, value in row.items()
                if isinstance(value, (int, float)) and value == value}
    return out


def observed_metrics(results: Path) -> dict[str, float]:
    """A run folder's metrics (recomputed from its tables) and perf.json, or a perf
    JSON file, flattened into metric names."""
    results = Path(results)
    if not results.is_dir():
        return _perf_metrics(results)
    manifest_path, perf_path = results / "manifest.json", results / PERF_FILE
    if not manifest_path.exists() and not perf_path.exists():
        raise InputError(f"{results}: neither a run (manifest.json) nor {PERF_FILE} in the folder")
    out = _perf_metrics(perf_path) if perf_path.exists() else {}
    if manifest_path.exists():
        out |= run_metrics(results)
    return out


def _perf_metrics(path: Path) -> dict[str, float]:
    """``perf/<backend>/<case>/<field>`` of the records of ``edm-bench perf --json``."""
    try:
        records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a run folder or a perf JSON file ({exc})") from exc
    out = {}
    for r in records:
        for key, value in r.items():
            if key not in ("backend", "case") and isinstance(value, (int, float)):
                out[f"perf/{r['backend']}/{r['case']}/{key}"] = value
    return out


def read_baseline(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the baseline ({exc})") from exc
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(metrics, dict) or not metrics:
        raise InputError(f"{path}: a baseline needs a non-empty 'metrics' mapping")
    for name, spec in metrics.items():
        if not isinstance(spec, dict) or not {"value", "tolerance", "higher_is_better"} <= set(spec):
            raise InputError(f"{path}: metric {name!r} needs value, tolerance and higher_is_better")
    return metrics


def check(results: Path, baseline: Path) -> pd.DataFrame:
    """One row per baseline metric: expected, observed, allowed bound, status."""
    observed = observed_metrics(results)
    rows = []
    for name, spec in read_baseline(baseline).items():
        value, tol, higher = float(spec["value"]), float(spec["tolerance"]), bool(spec["higher_is_better"])
        bound = value - tol if higher else value + tol
        got = observed.get(name)
        if got is None or got != got:  # missing or NaN
            status = "missing"
        elif (got < bound) if higher else (got > bound):
            status = "REGRESSION"
        else:
            status = "ok"
        rows.append({"metric": name, "baseline": value, "tolerance": tol,
                     "direction": "higher is better" if higher else "lower is better", "observed": got,
                     "bound": bound, "status": status})
    return pd.DataFrame(rows)
