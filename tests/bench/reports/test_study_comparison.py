"""The study's numbers beside ours: the right rows are picked for each quantity."""

from __future__ import annotations

import pytest

from bench.reports.report import STUDY_NUMBERS, study_comparison

SUMMARY = {"methods": {
    "mmff": {"mean_energy_above_ground_kcal_mol": 9.3, "median_speedup": 0.0},
    "ceiling": {"mean_energy_above_ground_kcal_mol": 0.1, "median_speedup": 0.9},
    "fam-e10/n=20": {"mean_energy_above_ground_kcal_mol": 7.0, "median_speedup": 0.02},
    "fam-e10/n=50": {"mean_energy_above_ground_kcal_mol": 8.0, "median_speedup": 0.05},
    "fam-e20/n=50": {"mean_energy_above_ground_kcal_mol": 6.5, "median_speedup": 0.04},
    "fam-e20/n=50/k=5": {"mean_energy_above_ground_kcal_mol": 6.9, "median_speedup": 0.06},
}}


def test_drugs_rows_take_mmff_and_the_best_denoiser_never_the_ceiling():
    title, table = study_comparison(SUMMARY, "drugs-xtb")
    assert "GFN2-xTB" in title
    rows = table.set_index("quantity")
    assert rows.loc["MMFF above the ground state, kcal/mol", "study"] == "14.3"
    assert rows.loc["MMFF above the ground state, kcal/mol", "ours"] == 9.3
    assert rows.loc["denoiser above the ground state, kcal/mol", "our row"] == "fam-e20/n=50"
    assert rows.loc["median xTB BFGS speedup", "ours"] == pytest.approx(0.06)  # the best, strided rows count
    assert len(table) == len(STUDY_NUMBERS["drugs"][1])


def test_qm9_speedups_are_read_at_their_start_step():
    _, table = study_comparison(SUMMARY, "qm9-xtb")
    rows = table.set_index("quantity")
    assert rows.loc["median BFGS speedup, n = 20", "our row"] == "fam-e10/n=20"
    assert rows.loc["median BFGS speedup, n = 50", "ours"] == pytest.approx(0.06)


def test_a_run_without_denoisers_leaves_their_rows_blank_and_other_datasets_get_none():
    baselines = {"methods": {k: v for k, v in SUMMARY["methods"].items() if "/" not in k}}
    _, table = study_comparison(baselines, "drugs-xtb")
    assert table["ours"].isna().sum() == 2 and (table["our row"] == "(none in this run)").sum() == 2
    assert study_comparison(SUMMARY, "my-own-set") is None
