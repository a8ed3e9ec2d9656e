"""`edm-bench boltzmann` end to end with a tiny random-weight EDM checkpoint series."""

from __future__ import annotations

import pytest

from tests.bench.analyses.support import check_run_folder, invoke


def test_boltzmann_quick_profile_with_a_checkpoint_series(cards, tmp_path):
    """The quick profile under the fast MMFF oracle (the xtb one: the slow test below)."""
    args = ["boltzmann", "--quick", "--oracle", "mmff", "--workers", "1", "--out", str(tmp_path / "run"),
            "--store", str(tmp_path / "store.sqlite")] + [a for c in cards for a in ("--denoiser", str(c))]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    summary, manifest = check_run_folder(tmp_path / "run", ["boltzmann_violins", "boltzmann_energy",
                                                            "boltzmann_map", "boltzmann_control"])
    assert set(summary["methods"]) == {"tiny-e1", "tiny-e2"}
    for m in summary["methods"].values():
        assert m["boltzmann_u_k"] > 0 and m["boltzmann_fit_r2"] is not None and m["boltzmann_median_w1_kcal_mol"] >= 0
    assert summary["control"]["diverges"] and 0 < summary["mcmc"]["mean_acceptance"] < 1
    assert summary["cost"]["study_profile_core_h"] > 0 and len(manifest["settings"]["dataset"]["ids"]) == 2
    import pandas as pd

    mcmc = pd.read_parquet(tmp_path / "run" / "mcmc.parquet")
    assert set(mcmc["temperature_k"]) == {50.0, 150.0, 300.0} and {"acceptance", "step_ang"} <= set(mcmc.columns)
    diffusion = pd.read_csv(tmp_path / "run" / "diffusion.csv")
    assert len(diffusion) == 2 * 2 * 3 and set(diffusion["n"]) == {1, 3, 6}
    shift = pd.read_csv(tmp_path / "run" / "shift.csv")
    assert len(shift) == 4 and "shift_kcal_mol" in shift

    # a rerun takes every chain's energies from the store
    from bench.store import ResultStore

    before = ResultStore(tmp_path / "store.sqlite").count()
    assert invoke(args).exit_code == 0
    assert ResultStore(tmp_path / "store.sqlite").count() == before


@pytest.mark.slow
def test_boltzmann_quick_profile_with_xtb(cards, tmp_path):
    result = invoke(["boltzmann", "--quick", "--workers", "1", "--denoiser", str(cards[0]),
                     "--out", str(tmp_path / "run"), "--store", str(tmp_path / "store.sqlite")])
    assert result.exit_code == 0, result.output
    summary, manifest = check_run_folder(tmp_path / "run", ["boltzmann_map"])
    assert manifest["settings"]["oracle"]["oracle"] == "xtb" and summary["control"]["diverges"]
