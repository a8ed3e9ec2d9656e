"""`edm-bench boltzmann`, `phases` and `generation` end to end with a tiny
random-weight EDM checkpoint: run folders, summary keys, figures, errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench.cli import app


def write_card(root, key: str = "tiny", t_max: float | None = None, epochs: int = 1):
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), root / f"{key}-ckpt")
    card = {"key": key, "name": key, "version": "0", "model": {"kind": "edm-checkpoint", "path": f"{key}-ckpt"},
            "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "relaxation": {"n_steps": [5]},
            "training": {"datasets": [{"name": "none", "split": "train"}], "epochs": epochs}}
    if t_max is not None:
        card["training"]["t_max"] = t_max
    (root / f"{key}.yml").write_text(yaml.safe_dump(card))
    return root / f"{key}.yml"


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    return [write_card(root, "tiny-e1", epochs=1), write_card(root, "tiny-e2", epochs=2)]


def invoke(args):
    result = CliRunner().invoke(app, [*args, "--threads", "1"])
    return result


def check_run_folder(run, figures):
    for name in ("manifest.json", "summary.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    for fig in figures:
        assert (run / "figures" / f"{fig}.png").is_file() and (run / "figures" / f"{fig}.svg").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["units"]["temperature"] == "K" and "seeds" in manifest["settings"]
    return json.loads((run / "summary.json").read_text()), manifest


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


def test_phases_and_generation_quick_profiles(cards, tmp_path):
    result = invoke(["phases", "--quick", "--denoiser", str(cards[0]), "--out", str(tmp_path / "phases")])
    assert result.exit_code == 0, result.output
    summary, _ = check_run_folder(tmp_path / "phases", ["phase_curves"])
    assert summary["n_molecules"] == 4 and "exploration_end_step" in summary["methods"]["tiny-e1"]
    import pandas as pd

    curves = pd.read_csv(tmp_path / "phases" / "phases_summary.csv")
    assert curves["steps_left"].max() == 1000 and (curves["n_molecules"] == 4).all()

    result = invoke(["generation", "--quick", "--denoiser", str(cards[0]), "--denoiser", str(cards[1]),
                     "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    summary, _ = check_run_folder(tmp_path / "gen", ["generation_quality"])
    for key in ("atom_stability", "molecule_stability", "validity", "uniqueness", "novelty"):
        assert 0 <= summary["methods"]["tiny-e2"][key] <= 1
    assert summary["methods"]["tiny-e2"]["epoch"] == 2 and summary["warnings"] == []
    assert len(pd.read_csv(tmp_path / "gen" / "samples.csv")) == 2 * 8

    from bench.leaderboard import collect

    phases, generation = collect([tmp_path / "phases", tmp_path / "gen"])  # one table per analysis
    assert (phases.task, generation.task) == ("phases", "generation")
    assert len(phases.rows) == 1 and phases.rows["exploration_end_step"].notna().sum() <= 1
    assert len(generation.rows) == 2 and generation.rows["validity"].notna().all()
    assert "molecule_stability" in generation.caption


def test_a_low_noise_card_is_warned_about(tmp_path):
    card = write_card(tmp_path, "low", t_max=0.05)
    with pytest.warns(UserWarning, match="trained on t <= 0.05 only"):
        result = invoke(["generation", "-n", "2", "--denoiser", str(card), "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "gen" / "summary.json").read_text())
    assert summary["methods"]["low"]["t_max"] == 0.05 and "never saw" in summary["warnings"][0]
    assert "WARNING" in (tmp_path / "gen" / "report.md").read_text()


def test_bad_input_is_a_clear_error(cards, tmp_path):
    unknown = invoke(["boltzmann", "--quick", "--temperature", "300", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "No such option" in unknown.output
    empty = invoke(["boltzmann", "--quick", "--max-atoms", "3", "--out", str(tmp_path / "x")])
    assert empty.exit_code != 0 and "none of its 0 molecules passes the flexibility filter" in str(empty.exception)
    burn = invoke(["boltzmann", "--quick", "--mcmc-burn-in", "400", "--out", str(tmp_path / "x")])
    assert "burn-in must be smaller than the chain" in str(burn.exception)
    none = invoke(["phases", "--quick", "--out", str(tmp_path / "x")])
    assert "needs at least one denoiser" in str(none.exception)
    twice = invoke(["generation", "-n", "1", "--denoiser", str(cards[0]), "--denoiser", str(cards[0]),
                    "--out", str(tmp_path / "x")])
    assert "card key 'tiny-e1' is used by another card" in str(twice.exception)


def _minus_one(x: int) -> dict:
    return {"value": -1}


def _square(x: int) -> dict:
    if x == 3:
        raise RuntimeError("chain 3 broke")
    return {"value": x * x}


@pytest.mark.parametrize("threads", [0, 2], ids=["inline", "executor"])
def test_cached_jobs_store_each_chain_and_a_failure_stops_none_of_the_others(tmp_path, threads):
    from concurrent.futures import ThreadPoolExecutor

    from bench.analyses.common import cached_jobs
    from bench.errors import EdmBenchError
    from bench.store import ResultStore

    store = ResultStore(tmp_path / "s.sqlite")
    jobs = [(f"k{x}", _square, (x,)) for x in range(6)]
    executor = ThreadPoolExecutor(threads) if threads else None
    # one rule with or without an executor: every other chain finishes and is stored first
    with pytest.raises(EdmBenchError, match=r"1 of 6 demo jobs failed \(the other 5 are stored.*chain 3 broke"):
        cached_jobs(store, "demo", jobs, executor)
    assert store.get("demo", "k5") == {"value": 25} and store.get("demo", "k3") is None
    # the rerun computes only what is missing (here: as -1)
    docs = cached_jobs(store, "demo", [(key, _minus_one, args) for key, _, args in jobs], executor)
    expected = [0, 1, 4, -1, 16, 25]
    assert [d["value"] for d in docs] == expected
