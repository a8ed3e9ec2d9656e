"""`edm-bench phases` and `generation` end to end with a tiny random-weight checkpoint."""

from __future__ import annotations

from tests.bench.analyses.support import check_run_folder, invoke


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
