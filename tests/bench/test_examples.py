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


def test_dft_example_speedups_and_deltas_follow_from_its_steps_and_energies(dft_run):
    _, summary, relax = dft_run
    mmff = relax[relax["method"] == "mmff"].set_index("id")
    steps = relax["id"].map(mmff["n_steps"])
    np.testing.assert_allclose(relax["speedup"], 1 - relax["n_steps"] / steps, atol=1e-12)
    delta = (relax["id"].map(mmff["relaxed_energy_ev"]) - relax["relaxed_energy_ev"]) * KCAL_MOL_PER_EV
    np.testing.assert_allclose(relax["delta_e_kcal_mol"], delta, atol=1e-4)
    for method, rows in relax.groupby("method"):
        reported = summary["methods"][method]
        assert reported["median_speedup"] == pytest.approx(np.median(rows["speedup"]), abs=1e-4)
        assert reported["fraction_slower"] == pytest.approx(np.mean(rows["speedup"] < 0), abs=1e-4)
        assert reported["median_steps"] == pytest.approx(np.median(rows["n_steps"]))
