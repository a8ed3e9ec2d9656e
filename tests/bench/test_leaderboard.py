"""The leaderboard: one table per benchmark, rebuilt from per-molecule tables,
ranked by the primary metric, ties from a paired bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.artifacts import write_table
from bench.columns import Status
from bench.errors import InputError
from bench.leaderboard import collect, write_leaderboard
from tests.bench.test_metrics import energy_table, relax_table

N = 10


def fake_run(root, name, label, energy, relax):
    """A run folder as `edm-bench run` writes it: tables with their sha256 in the manifest."""
    run = root / name
    run.mkdir()
    tables = {"energy": energy, "relax": relax}
    hashes = {k: write_table(df, run / k) for k, df in tables.items()}
    manifest = {"git_revision": "abc", "hardware": {"cpu": "cpu", "cores": 2},
                "settings": {"benchmark": {"label": label}, "bootstrap": {"n_resamples": 200, "level": 0.95,
                                                                          "seed": 0}},
                "tables": {k: {"sha256": h, "per_molecule": True} for k, h in hashes.items()}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "summary.json").write_text(json.dumps({"methods": {"mmff": {"median_speedup": 99.0}}}))  # never read
    return run


def issue_case(root, label="qm9-xtb/test/xtb/fmax=0.03/subset a", name="run"):
    """MMFF; a perfect denoiser (ground state every time); one that is perfect on 3 of
    10 molecules and NaN on the other 7."""
    mmff_e, mmff_steps = list(np.linspace(3, 9, N)), [30 + i for i in range(N)]
    energy = energy_table({"mmff": mmff_e, "perfect": [0.0] * N, "flaky": [0.0] * 3 + [np.nan] * 7},
                          statuses={"flaky": [Status.OK] * 3 + [Status.OUTPUT_FAILED] * 7})
    relax = relax_table({"mmff": mmff_steps, "perfect": [0] * N, "flaky": [0] * 3 + [np.nan] * 7},
                        statuses={"flaky": [Status.OK] * 3 + [Status.OUTPUT_FAILED] * 7})
    return fake_run(root, name, label, energy, relax)


def test_the_perfect_denoiser_ranks_first_and_failures_count(tmp_path):
    [board] = collect([issue_case(tmp_path)])
    rows = board.rows.set_index("method")
    assert list(board.rows["method"]) == ["perfect", "flaky", "mmff"]
    assert board.primary == "median_speedup" and "median_speedup" in board.caption
    assert rows.loc["perfect", "median_speedup"] == 1.0 and rows.loc["perfect", "energy_ratio"] == np.inf
    assert rows.loc["flaky", "median_speedup"] == 0.0 and rows.loc["flaky", "n_failed"] == 7
    assert rows.loc["flaky", "within_1_kcal_mol"] == pytest.approx(0.3)
    assert rows.loc["mmff", "median_speedup"] == 0.0  # summary.json's 99 is not read
    assert not rows.loc["perfect", "tied_with_next"]
    assert rows.loc["flaky", "tied_with_next"]  # same median speedup as MMFF: not separable


def test_benchmarks_are_never_ranked_together(tmp_path):
    a = issue_case(tmp_path, "qm9-xtb/test/xtb/fmax=0.03/subset a", "a")
    b = issue_case(tmp_path, "drugs-xtb/test/xtb/fmax=0.03/subset b", "b")
    boards = collect([a, b])
    assert [board.label for board in boards] == ["qm9-xtb/test/xtb/fmax=0.03/subset a",
                                                 "drugs-xtb/test/xtb/fmax=0.03/subset b"]
    assert all(list(board.rows["rank"]) == [1, 2, 3] for board in boards)
    write_leaderboard(boards, tmp_path / "lb")
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert md.count("## run: ") == 2 and "Ranked by median_speedup" in md
    page = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert page.count("<table") == 2
    csv = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    assert set(csv["benchmark"]) == {b.label for b in boards} and len(csv) == 6


def test_a_table_edited_after_its_run_is_refused(tmp_path):
    run = issue_case(tmp_path)
    df = pd.read_parquet(run / "relax.parquet")
    df.loc[0, "oracle_steps"] = 1
    df.to_parquet(run / "relax.parquet", index=False)
    with pytest.raises(InputError, match="sha256 does not match"):
        collect([run])
    with pytest.raises(InputError, match="not a finished run folder"):
        collect([tmp_path / "missing"])


def test_rows_of_one_benchmark_from_two_runs_are_paired_on_the_same_molecules(tmp_path, rng):
    label = "qm9-xtb/test/xtb/fmax=0.03/subset a"
    steps = [int(s) for s in rng.integers(20, 60, size=N)]
    better = [s // 2 for s in steps]
    slightly = [s - 1 for s in steps]
    e = list(np.linspace(3, 9, N))
    a = fake_run(tmp_path, "a", label, energy_table({"mmff": e, "half": e}), relax_table({"mmff": steps,
                                                                                          "half": better}))
    b = fake_run(tmp_path, "b", label, energy_table({"mmff": e, "one-less": e}),
                 relax_table({"mmff": steps, "one-less": slightly}))
    [board] = collect([a, b])
    assert list(board.rows["method"])[:2] == ["half", "one-less"]
    assert not board.rows.loc[0, "tied_with_next"]


def test_analysis_runs_get_their_own_table(tmp_path):
    run = tmp_path / "gen"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"settings": {"task": "generation"}}))
    (run / "summary.json").write_text(json.dumps({"label": "generation/10 generated/qm9-xtb", "methods": {
        "a": {"molecule_stability": 0.2, "atom_stability": 0.9}, "b": {"molecule_stability": 0.5}}}))
    boards = collect([issue_case(tmp_path), run])
    gen = next(b for b in boards if b.task == "generation")
    assert list(gen.rows["method"]) == ["b", "a"] and gen.primary == "molecule_stability"


def test_a_run_that_did_not_finish_is_refused_even_over_an_old_finished_one(tmp_path):
    """A rerun writes its manifest first and lists its tables only when it ends: one
    that stopped midway leaves a folder the leaderboard refuses, old tables or not."""
    run = issue_case(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["tables"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="lists no tables"):
        collect([run])


def test_a_folder_marked_incomplete_is_refused_and_a_new_run_clears_old_derived_files(tmp_path):
    """begin_run_folder marks the folder and removes the old summary/report, so a rerun
    killed midway leaves nothing stale to rank; end_run_folder makes it readable again."""
    from bench.artifacts import INCOMPLETE, begin_run_folder, end_run_folder

    run = issue_case(tmp_path)
    (run / "report.html").write_text("<html>old</html>")
    begin_run_folder(run)
    assert (run / INCOMPLETE).is_file() and not (run / "summary.json").exists() and not (run / "report.html").exists()
    with pytest.raises(InputError, match="incomplete run folder .*started .* by process"):
        collect([run])
    end_run_folder(run)
    assert [b.task for b in collect([run])] == ["run"]
