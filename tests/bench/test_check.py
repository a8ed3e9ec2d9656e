"""The regression gate: passes within tolerance, fails (exit 1) past it."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from bench.check import check
from bench.cli import app


def make_run(tmp_path, speedup: float, steps: float):
    """A run folder whose denoiser has this median speedup and median BFGS steps
    on three molecules (the metrics are recomputed from its tables by `check`)."""
    from tests.bench.test_leaderboard import fake_run
    from tests.bench.test_metrics import energy_table, relax_table

    energy = energy_table({"mmff": [5.0, 6.0, 7.0], "den/n=50": [1.0, 2.0, 3.0]})
    relax = relax_table({"mmff": [steps / (1 - speedup)] * 3, "den/n=50": [steps] * 3})
    return fake_run(tmp_path, f"run-{speedup}-{steps}", "x", energy, relax)


def baseline(tmp_path):
    path = tmp_path / "baseline.yml"
    path.write_text(yaml.safe_dump({"metrics": {
        "den/n=50/median_speedup": {"value": 0.4, "tolerance": 0.05, "higher_is_better": True},
        "den/n=50/median_oracle_steps": {"value": 20, "tolerance": 3, "higher_is_better": False}}}))
    return path


def test_within_tolerance_passes_and_past_it_fails(tmp_path):
    ok = CliRunner().invoke(app, ["check", str(make_run(tmp_path, 0.36, 22)), "--baseline", str(baseline(tmp_path))])
    assert ok.exit_code == 0 and "all 2 metrics within tolerance" in ok.output
    table = check(make_run(tmp_path, 0.30, 24), baseline(tmp_path))
    assert list(table["status"]) == ["REGRESSION", "REGRESSION"]
    bad = CliRunner().invoke(app, ["check", str(make_run(tmp_path, 0.30, 22)), "--baseline",
                                   str(baseline(tmp_path))])
    assert bad.exit_code == 1 and "den/n=50/median_speedup" in bad.output


def test_missing_metrics_and_perf_records(tmp_path):
    perf = tmp_path / "perf.json"
    perf.write_text(json.dumps([{"backend": "cpp", "case": "qm9x64", "ratio_to_reference": 3.5}]))
    spec = tmp_path / "b.yml"
    spec.write_text(yaml.safe_dump({"metrics": {
        "perf/cpp/qm9x64/ratio_to_reference": {"value": 4.0, "tolerance": 1.0, "higher_is_better": True},
        "perf/onnx/qm9x64/ratio_to_reference": {"value": 1.0, "tolerance": 0.5, "higher_is_better": True}}}))
    table = check(perf, spec)
    assert list(table["status"]) == ["ok", "missing"]
