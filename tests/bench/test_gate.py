"""The gate's baseline: the tolerance rule on synthetic repeats, the file writer,
and the gate failing (exit 1) on a metric perturbed past its tolerance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench import gate
from bench.check import read_baseline
from bench.cli import app
from bench.errors import InputError
from bench.gate import QuickSuite, baseline_entries, measure_baseline, summarise_repeats, write_baseline

METHOD = "den-e60/n=50"
SCIENCE = {"energy_ratio": [2.0, 2.2, 1.8, 2.1, 1.9], "median_speedup": [0.30, 0.32, 0.28, 0.31, 0.29],
           "fraction_slower": [0.20, 0.25, 0.15, 0.20, 0.20], "alignment_gap": [0.10, 0.12, 0.08, 0.11, 0.09],
           "within_1_kcal_mol": [0.10, 0.15, 0.05, 0.10, 0.10], "mean_rmsd_heavy_ang": [0.12, 0.13, 0.11, 0.12, 0.12]}
RATIOS = [5.0, 5.4, 4.6, 5.2, 4.8]


def test_tolerance_is_a_multiple_of_the_sample_std():
    entry = summarise_repeats([1.0, 1.2, 0.8, 1.1, 0.9], multiple=3)
    std = math.sqrt((0.2**2 + 0.2**2 + 0.1**2 + 0.1**2) / 4)  # ddof = 1
    assert entry["value"] == 1.0 and entry["repeats"] == 5 and entry["multiple"] == 3
    assert entry["spread"] == pytest.approx(std, abs=1e-6)
    assert entry["tolerance"] == pytest.approx(3 * std, abs=1e-6)
    assert entry["samples"] == [1.0, 1.2, 0.8, 1.1, 0.9]
    assert summarise_repeats([0.5, 0.5, 0.5], multiple=3)["tolerance"] == 0.0  # seed-independent: exact


def test_a_relative_floor_widens_a_tolerance_narrower_than_it():
    tight = summarise_repeats([2.0, 2.01, 1.99, 2.0, 2.0], multiple=4, floor=0.1)
    assert tight["tolerance"] == pytest.approx(0.2) and tight["floor"] == 0.1  # 4 x 0.007 < 10 % of 2.0
    wide = summarise_repeats([1.0, 1.2, 0.8, 1.1, 0.9], multiple=3, floor=0.1)
    assert wide["tolerance"] == pytest.approx(3 * wide["spread"], abs=1e-6)  # the spread rule is wider
    assert summarise_repeats([-0.5, -0.5], multiple=3, floor=0.1)["tolerance"] == pytest.approx(0.05)  # of |value|


@pytest.mark.parametrize("samples", [[1.0], [1.0, float("nan")], [1.0, None]])
def test_too_few_or_missing_repeats_are_refused(samples):
    with pytest.raises(InputError):
        summarise_repeats(samples, multiple=3)


def test_entries_carry_the_direction_and_refuse_a_missing_metric():
    repeats = [{"m/energy_ratio": 1.0, "m/fraction_slower": 0.2}, {"m/energy_ratio": 1.2, "m/fraction_slower": 0.3}]
    entries = baseline_entries(repeats, ["m/energy_ratio", "m/fraction_slower"], 3,
                               {"energy_ratio": True, "fraction_slower": False})
    assert entries["m/energy_ratio"]["higher_is_better"] and not entries["m/fraction_slower"]["higher_is_better"]
    with pytest.raises(InputError, match="m/energy_ratio"):
        baseline_entries([{}, {}], ["m/energy_ratio"], 3, {"energy_ratio": True})


def test_writing_one_part_keeps_the_other(tmp_path):
    path = tmp_path / "baseline.yml"
    perf = {"perf/cpp/qm9x64/ratio_to_reference": summarise_repeats(RATIOS, 4) | {"higher_is_better": True}}
    write_baseline(path, perf, "perf", "edm-bench baseline --part perf --repeats 5", "the process")
    science = {f"{METHOD}/{k}": summarise_repeats(v, 3) | {"higher_is_better": True} for k, v in SCIENCE.items()}
    write_baseline(path, science, "science", "edm-bench baseline --part science --repeats 5", "the denoiser seed")
    doc = yaml.safe_load(path.read_text())
    assert set(doc["provenance"]) == {"perf", "science"} and "median of K repeats" in doc["provenance"]["perf"]["rule"]
    assert len(read_baseline(path)) == 1 + len(gate.SCIENCE_KEYS)
    write_baseline(path, {}, "science", "again", "nothing")  # replaces the science part only
    assert list(read_baseline(path)) == ["perf/cpp/qm9x64/ratio_to_reference"]


def fake_results(folder: Path, ratio: float, science: dict[str, float] | None) -> Path:
    """A gate results folder: perf.json and, when given, the denoiser's science metrics."""
    folder.mkdir(parents=True)
    (folder / "perf.json").write_text(json.dumps([
        {"backend": "original", "case": "qm9x64", "ratio_to_reference": 1.0},
        {"backend": "cpp", "case": "qm9x64", "ratio_to_reference": ratio}]))
    if science is not None:
        (folder / "manifest.json").write_text("{}")
        (folder / "science.json").write_text(json.dumps({f"{METHOD}/{k}": v for k, v in science.items()}))
    return folder


@pytest.fixture(autouse=True)
def synthetic_science(monkeypatch):
    """The gate's logic on synthetic metric values: a fake results folder holds
    them directly instead of per-molecule tables (bench.check recomputes those;
    tests/bench/test_check.py covers that)."""
    from bench import check

    monkeypatch.setattr(check, "run_metrics", lambda run: json.loads((Path(run) / "science.json").read_text()))


def fake_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, noise_scale: float = 1.0) -> QuickSuite:
    """A suite whose repeats return the synthetic data (repeat k = the seed that varies) instead of running."""
    card = tmp_path / "card.yml"
    card.write_text("key: den-e60\n")
    monkeypatch.setattr(gate, "read_card", lambda path: {"key": "den-e60", "relaxation": {"noise_scale": noise_scale}})

    def run(out, suite, denoiser_seed, science, perf, store):
        k = denoiser_seed if noise_scale > 0 or not science else suite.molecule_seed
        return fake_results(Path(out), RATIOS[k], {key: v[k] for key, v in SCIENCE.items()} if science else None)

    monkeypatch.setattr(gate, "run_quick_suite", run)
    return QuickSuite(card=card, workers=1)


def test_the_gate_passes_at_the_baseline_and_fails_past_a_tolerance(tmp_path, monkeypatch):
    suite = fake_suite(tmp_path, monkeypatch)
    path = tmp_path / "baseline.yml"
    measure_baseline(path, 5, "perf", tmp_path / "work", suite)
    only_perf = fake_results(tmp_path / "perf-only", 5.0, None)
    ok = CliRunner().invoke(app, ["check", str(only_perf), "--baseline", str(path)])
    assert ok.exit_code == 0, ok.output  # no science baseline yet: the ratios alone are gated

    measure_baseline(path, 5, "science", tmp_path / "work", suite)
    spec = read_baseline(path)
    assert len(spec) == 1 + len(gate.SCIENCE_KEYS) and spec[f"{METHOD}/fraction_slower"]["higher_is_better"] is False
    assert spec["perf/cpp/qm9x64/ratio_to_reference"]["floor"] == 0.1  # speed: another machine in CI
    assert all(spec[f"{METHOD}/{key}"]["floor"] == 0.0 for key in SCIENCE)  # science: the seed spread alone
    median = {key: spec[f"{METHOD}/{key}"]["value"] for key in SCIENCE}
    ok = CliRunner().invoke(app, ["check", str(fake_results(tmp_path / "same", 5.0, median)), "--baseline", str(path)])
    assert ok.exit_code == 0 and f"all {1 + len(gate.SCIENCE_KEYS)} metrics within tolerance" in ok.output

    ratio = spec["perf/cpp/qm9x64/ratio_to_reference"]
    slow = fake_results(tmp_path / "slow", ratio["value"] - 1.01 * ratio["tolerance"], median)
    bad = CliRunner().invoke(app, ["check", str(slow), "--baseline", str(path)])
    assert bad.exit_code == 1 and "perf/cpp/qm9x64/ratio_to_reference" in bad.output

    slower = spec[f"{METHOD}/fraction_slower"]
    worse = median | {"fraction_slower": slower["value"] + 1.01 * slower["tolerance"]}
    bad = CliRunner().invoke(app, ["check", str(fake_results(tmp_path / "worse", 5.0, worse)), "--baseline", str(path)])
    assert bad.exit_code == 1 and f"{METHOD}/fraction_slower" in bad.output

    better = median | {"fraction_slower": 0.0, "median_speedup": 0.9}  # one-sided: improvements pass
    ok = CliRunner().invoke(app, ["check", str(fake_results(tmp_path / "better", 9.0, better)), "--baseline",
                                  str(path)])
    assert ok.exit_code == 0


def test_science_baseline_needs_the_card(tmp_path):
    with pytest.raises(InputError, match="is not in this checkout"):
        measure_baseline(tmp_path / "b.yml", 3, "science", tmp_path, QuickSuite(card=tmp_path / "none.yml"))


def test_missing_card_skips_the_science_run(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(gate, "_call", lambda cmd, stdout=None: calls.append(cmd))
    for stale in ("summary.json", "manifest.json"):  # a previous gate's: removed, never checked again
        (tmp_path / stale).write_text("{}")
    gate.run_quick_suite(tmp_path, QuickSuite(card=tmp_path / "none.yml"), perf=False)
    assert calls == [] and not (tmp_path / "summary.json").exists() and not (tmp_path / "manifest.json").exists()
    assert "science metrics skipped" in capsys.readouterr().err
    suite = QuickSuite(card=Path(__file__), n_molecules=7, workers=1)
    gate.run_quick_suite(tmp_path, suite)
    run, perf = calls
    assert run[3:5] == ["run", "--out"] and "--seeds" in run and run[run.index("-n") + 1] == "7"
    assert perf[-3:] == ["perf", "--quick", "--json"]


def test_a_deterministic_card_varies_the_molecules(tmp_path, monkeypatch):
    suite = fake_suite(tmp_path, monkeypatch, noise_scale=0.0)
    path = measure_baseline(tmp_path / "b.yml", 5, "science", tmp_path / "work", suite)
    doc = yaml.safe_load(path.read_text())
    assert "molecule subset" in doc["provenance"]["science"]["varied"]
    assert doc["metrics"][f"{METHOD}/energy_ratio"]["samples"] == SCIENCE["energy_ratio"]


@pytest.mark.parametrize("again, status", [(5.0, "ok"), (3.0, "REGRESSION")])
def test_a_speed_regression_must_show_in_a_second_process(tmp_path, monkeypatch, again, status):
    path = tmp_path / "baseline.yml"
    entry = summarise_repeats(RATIOS, 4, floor=0.1) | {"higher_is_better": True}  # 5.0 +- 1.26
    write_baseline(path, {"perf/cpp/qm9x64/ratio_to_reference": entry}, "perf", "baseline", "the process")
    out = fake_results(tmp_path / "gate", 3.5, None)  # the first process: past the bound
    calls = []

    def rerun(cmd, stdout=None):  # the second process times only the regressed case
        calls.append(cmd)
        Path(stdout).write_text(json.dumps([{"backend": "cpp", "case": "qm9x64", "ratio_to_reference": again}]))

    monkeypatch.setattr(gate, "_call", rerun)
    table = gate.confirm_speed_regressions(out, path)
    assert calls == [gate.PERF_COMMAND + ["--cases", "qm9x64"]]
    row = table.set_index("metric").loc["perf/cpp/qm9x64/ratio_to_reference"]
    assert row["status"] == status and row["observed"] == max(3.5, again)  # the better of the two processes
    assert json.loads((out / "perf-first.json").read_text())[1]["ratio_to_reference"] == 3.5  # kept
    calls.clear()
    assert gate.confirm_speed_regressions(fake_results(tmp_path / "fine", 5.0, None), path)["status"].eq("ok").all()
    assert calls == []  # nothing past tolerance: no second process
