"""The shipped example runs (``examples/``): their tables, summaries and manifests
agree with one another, recomputed here from the per-molecule rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DFT_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dft-qm9"
KCAL_MOL_PER_EV = 23.060548  # CODATA 2018, written out here rather than taken from bench.units


@pytest.fixture(scope="module")
def dft_run() -> tuple[dict, dict, pd.DataFrame]:
    manifest = json.loads((DFT_EXAMPLE / "manifest.json").read_text())
    summary = json.loads((DFT_EXAMPLE / "summary.json").read_text())
    return manifest, summary, pd.read_csv(DFT_EXAMPLE / "relax.csv")


def test_dft_example_ran_the_study_settings_on_five_molecules(dft_run):
    manifest, summary, relax = dft_run
    run = manifest["settings"]["run"]
    assert run["oracle"] == "dft" and run["fmax_ev_ang"] == 0.03 and run["optimizer"] == "BFGS"
    oracle = manifest["settings"]["oracle"]["settings"]
    assert (oracle["xc"], oracle["basis"], oracle["density_fit"]) == ("b3lypg", "6-31g(2df,p)", True)
    assert summary["n_molecules"] == relax["id"].nunique() >= 5
    assert (relax["status"] == "ok").all() and relax["converged"].all()
    assert {"mmff", "xtb"} <= set(relax["method"])
    assert manifest["settings"]["failure_rule"] and "converted" in manifest["settings"]


def test_dft_example_speedups_and_deltas_follow_from_its_steps_and_energies(dft_run):
    _, summary, relax = dft_run
    mmff = relax[relax["method"] == "mmff"].set_index("id")
    speedup = 1 - relax["oracle_steps"] / relax["id"].map(mmff["oracle_steps"])
    delta = (relax["id"].map(mmff["relaxed_energy_ev"]) - relax["relaxed_energy_ev"]) * KCAL_MOL_PER_EV
    for method, rows in relax.groupby("method"):
        reported = summary["methods"][method]
        assert reported["median_speedup"] == pytest.approx(np.median(speedup[rows.index]), abs=1e-4)
        assert reported["fraction_slower"] == pytest.approx(np.mean(speedup[rows.index] < 0), abs=1e-4)
        assert reported["median_oracle_steps"] == pytest.approx(np.median(rows["oracle_steps"]))
        assert reported["median_delta_e_kcal_mol"] == pytest.approx(np.median(delta[rows.index]), abs=1e-4)


def test_the_leaderboard_rebuilds_the_example_from_its_tables():
    from bench.leaderboard import collect

    [board] = collect([DFT_EXAMPLE])
    assert board.primary == "median_speedup" and "dft[pyscf" in board.label
    assert board.rows.loc[0, "method"] == "xtb"
    assert board.rows["tied_with_next"].iloc[0]  # five molecules do not separate xTB from EDM n = 20
