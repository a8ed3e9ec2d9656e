"""`edm-bench run` end to end on a tiny built dataset: files, keys, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.build import build_dataset
from bench.cli import app
from bench.store import ResultStore


#: `edm-bench run` with the baselines alone (a bare run adds the shipped checkpoint).
RUN = ["run", "--no-shipped-denoiser"]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    (root / "in.smi").write_text("CCO\nCC(C)O\nCCN\nOCCO\nCC=O\nCOC\nCCCC\nCC#N\nNCC=O\nOC=O\n")
    build_dataset("qm9-xtb", out_dir=root / "set", smiles_path=root / "in.smi", workers=1, progress=False)
    return root / "set"


def test_run_writes_tables_summary_report_and_manifest(tiny_dataset, tmp_path):
    args = [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "3", "--methods", "mmff,uff",
            "--out", str(tmp_path / "run"), "--store", str(tmp_path / "store.sqlite")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    for name in ("manifest.json", "summary.json", "report.md", "energy.csv", "relax.parquet", "metrics.csv"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_molecules"] == 3 and set(summary["methods"]) == {"mmff", "uff"}
    assert summary["methods"]["mmff"]["median_speedup"] == 0.0 and summary["methods"]["mmff"]["energy_ratio"] == 1.0
    for key in ("energy_ratio", "median_speedup", "p25_speedup", "p75_speedup", "fraction_slower"):
        assert key in summary["methods"]["uff"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["oracle"]["oracle"] == "xtb" and manifest["settings"]["run"]["fmax_ev_ang"] == 0.03
    assert manifest["settings"]["step_counting"] == "ASE Optimizer.get_number_of_steps()"
    assert len(manifest["settings"]["dataset"]["ids"]) == 3 and "tblite" in manifest["versions"]
    from bench.artifacts import sha256_file

    assert manifest["tables"]["relax"]["sha256"] == sha256_file(run / "relax.parquet")
    assert manifest["settings"]["bootstrap"]["n_resamples"] == 1000 and "n_failed" in manifest["settings"]["failure_rule"]
    assert summary["label"].startswith(summary["benchmark"]["dataset"]) and "fmax=0.03" in summary["label"]

    # a second run computes nothing new: every oracle result is in the store
    store = ResultStore(tmp_path / "store.sqlite")
    before = store.count()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert store.count() == before
    timed = ("denoiser_ms_per_molecule", "net_saving_s_per_molecule")  # the methods' own times are measured again

    def untimed(methods):
        return {m: {k: v for k, v in row.items() if not k.startswith(timed)} for m, row in methods.items()}

    assert untimed(json.loads((run / "summary.json").read_text())["methods"]) == untimed(summary["methods"])


def test_bad_run_options_are_clear_errors(tiny_dataset, tmp_path):
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--methods", "uff",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "must include 'mmff'" in str(result.exception)
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--methods", "mmff,gaff",
                                      "--out", str(tmp_path / "r")])
    assert "unknown baseline 'gaff'" in str(result.exception)
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--methods", "mmff,xtb",
                                      "--out", str(tmp_path / "r")])
    assert "baseline 'xtb' is a pre-relaxation with the run's oracle 'xtb' itself" in str(result.exception)
    for option, value, message in (("--fmax", "nan", "--fmax must be a finite number > 0"),
                                   ("--fmax", "inf", "--fmax must be a finite number > 0"),
                                   ("--workers", "-1", "--workers must be >= 1"),
                                   ("--n-steps", "0", "--n-steps must be integers >= 1")):
        result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), option, value,
                                          "--out", str(tmp_path / "r")])
        assert result.exit_code != 0 and message in str(result.exception), (option, value)
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--shipped-denoiser", "--seeds", "",
                                      "--out", str(tmp_path / "r")])
    assert "--seeds is empty: a denoiser needs at least one seed" in str(result.exception)


def test_tasks_and_max_atoms_choose_what_a_run_computes(tiny_dataset, tmp_path):
    from bench.data import load_dataset

    args = [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2", "--methods", "mmff",
            "--tasks", "energy-ratio", "--max-atoms", "9", "--out", str(tmp_path / "run"),
            "--store", str(tmp_path / "store.sqlite")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert (run / "energy.csv").is_file() and not (run / "relax.csv").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["methods"]["mmff"]["energy_ratio"] == 1.0 and "median_speedup" not in summary["methods"]["mmff"]
    sizes = {r.id: r.n_atoms for r in load_dataset(tiny_dataset, "train")}
    ids = json.loads((run / "manifest.json").read_text())["settings"]["dataset"]["ids"]
    assert len(ids) == 2 and all(sizes[i] <= 9 for i in ids)

    bad = CliRunner().invoke(app, args[:-4] + ["--tasks", "energy-ratio,speed", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "unknown task(s) ['speed']" in str(bad.exception)
    none = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--max-atoms", "2",
                                    "--out", str(tmp_path / "none")])
    assert none.exit_code != 0 and "has <= 2 atoms" in str(none.exception)


def test_under_another_oracle_the_ground_state_is_that_oracles_minimum(tiny_dataset, tmp_path):
    """With MMFF as the oracle the MMFF start *is* an MMFF minimum: its energy above
    the (MMFF-relaxed) ground state is ~0 when both are in one basin, never the
    large negative number a single point at the xTB geometry would give."""
    from bench.data import load_dataset
    from bench.oracles import get_oracle
    from bench.tasks.relaxation import ground_references

    args = [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "4", "--methods", "mmff",
            "--oracle", "mmff", "--tasks", "energy-ratio", "--out", str(tmp_path / "run"),
            "--store", str(tmp_path / "store.sqlite")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import pandas as pd

    energy = pd.read_csv(tmp_path / "run" / "energy.csv")["energy_above_ground_kcal_mol"]
    # same basin: ~0 (fmax 0.03 residue); another conformer's basin may lie above, never far below
    assert energy.min() > -0.05 and (energy.abs() < 0.05).sum() >= 3
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "relaxed with the oracle" in manifest["settings"]["ground_state"]

    records = load_dataset(tiny_dataset, "train")[:4]
    oracle = get_oracle("mmff")
    relaxed = ground_references(records, oracle, relax_fmax=0.03)
    single = ground_references(records, oracle)
    assert all(r.ok for r in relaxed)
    assert all(s.energy_ev - r.energy_ev > 1e-3 for s, r in zip(single, relaxed))


def test_run_with_a_denoiser_card_adds_one_row_per_start_step(tiny_dataset, tmp_path):
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), tmp_path / "ckpt")
    card = {"key": "tiny", "name": "tiny", "version": "0", "model": {"kind": "edm-checkpoint", "path": "ckpt"},
            "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "relaxation": {"n_steps": [5]}, "training": {"datasets": [{"name": "none", "split": "train"}]}}
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump(card))
    deterministic = {**card, "key": "tiny-det", "relaxation": {"n_steps": [5], "noise_scale": 0.0}}
    (tmp_path / "det.yml").write_text(yaml.safe_dump(deterministic))
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--denoiser", str(tmp_path / "tiny.yml"),
                                      "--denoiser", str(tmp_path / "det.yml"),
                                      "--n-steps", "2,12", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["methods"]) == {"mmff", "tiny/n=2", "tiny/n=12", "tiny-det/n=2", "tiny-det/n=12"}
    assert summary["methods"]["tiny/n=12"]["denoiser_ms_per_molecule"] > 0
    assert summary["methods"]["tiny/n=12"]["alignment_gap"] is not None  # the path of the largest n is analysed
    assert summary["methods"]["tiny/n=2"]["alignment_gap"] is None
    import pandas as pd

    relax = pd.read_csv(tmp_path / "run" / "relax.csv")
    assert sorted(relax.loc[relax["method"] == "tiny/n=12", "seed"].unique()) == [0, 1, 2]  # three seeds pooled
    assert relax.loc[relax["method"] == "mmff", "seed"].isna().all()
    assert len(relax[relax["method"] == "tiny/n=12"]) == 2 * 3
    det = relax[relax["method"] == "tiny-det/n=12"]
    assert len(det) == 2 and det["seed"].isna().all()  # deterministic: one run, no seed
    assert (relax.loc[relax["method"] == "tiny/n=12", "network_evaluations"] == 13).all()
    assert (relax.loc[relax["method"] == "tiny/n=12", "start_step"] == 12).all()
    path = pd.read_csv(tmp_path / "run" / "path.csv")
    assert sorted(path["frame"].unique()) == list(range(14))  # start, 12 reverse steps, final decode
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    entry = manifest["settings"]["denoisers"]["tiny"]
    assert entry["card"]["key"] == "tiny" and entry["backend"] in ("cpp", "torch")
    assert entry["start_steps"] == [2, 12] and entry["start_steps_from"] == "--n-steps"

    # without --n-steps each card's own start steps are used
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--denoiser", str(tmp_path / "tiny.yml"), "--seeds", "0",
                                      "--tasks", "energy-ratio", "--out", str(tmp_path / "own")])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "own" / "summary.json").read_text())["methods"]) == {"mmff", "tiny/n=5"}


def test_a_checkpoint_series_gives_speedup_against_epoch(tiny_dataset, tmp_path):
    import pandas as pd
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    cards = []
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=1)), tmp_path / f"e{epoch}")
        card = {"key": f"tiny-e{epoch}", "name": "tiny", "version": "0",
                "model": {"kind": "edm-checkpoint", "path": f"e{epoch}"},
                "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
                "relaxation": {"n_steps": [12]},
                "training": {"datasets": [{"name": "none", "split": "train"}], "epochs": epoch}}
        (tmp_path / f"e{epoch}.yml").write_text(yaml.safe_dump(card))
        cards += ["--denoiser", str(tmp_path / f"e{epoch}.yml")]
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", *cards, "--seeds", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    series = pd.read_csv(tmp_path / "r" / "checkpoints.csv")
    assert list(series["epoch"]) == [1, 2] and series["median_speedup"].notna().all()
    assert (tmp_path / "r" / "figures" / "speedup_epoch.png").is_file()
    assert (tmp_path / "r" / "figures" / "alignment_epoch.png").is_file()


def test_a_killed_run_resumes_to_the_same_tables(tiny_dataset, tmp_path):
    """SIGKILL `edm-bench run` part way, start it again: the tables equal those of an
    uninterrupted run, the store is sound, and finished relaxations are not redone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    def args(out, store):
        return [sys.executable, "-m", "bench.cli", *RUN, "--no-shipped-denoiser", "--dataset", str(tiny_dataset), "--split", "train",
                "-n", "6", "--methods", "mmff,uff", "--out", str(out), "--store", str(store), "--workers", "1"]

    store = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(args(tmp_path / "killed", store), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not store.exists() or ResultStore(store).count("relax") < 2):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = ResultStore(store).created("relax")
    assert 2 <= len(done_before) < 12 and ResultStore(store).integrity_check() == "ok"
    assert (tmp_path / "killed" / "INCOMPLETE").is_file()  # the leaderboard refuses the folder until rerun
    subprocess.run(args(tmp_path / "killed", store), check=True, capture_output=True)
    assert not (tmp_path / "killed" / "INCOMPLETE").exists()
    subprocess.run(args(tmp_path / "clean", tmp_path / "clean.sqlite"), check=True, capture_output=True)
    a = pd.read_csv(tmp_path / "killed" / "relax.csv").drop(columns=["wall_s", "denoiser_s"])
    b = pd.read_csv(tmp_path / "clean" / "relax.csv").drop(columns=["wall_s", "denoiser_s"])
    pd.testing.assert_frame_equal(a, b)
    after = ResultStore(store).created("relax")
    assert len(after) == 12  # 6 molecules x 2 methods
    assert {k: after[k] for k in done_before} == done_before  # finished relaxations were not redone


def test_the_dask_path_gives_the_local_numbers(tiny_dataset, tmp_path):
    """The same run on a Dask LocalCluster (2 workers) and in-process: equal tables."""
    import pandas as pd

    from bench.runner import RunSettings, run

    common = dict(dataset=str(tiny_dataset), split="train", n_molecules=4, methods=("mmff", "uff"))
    run(RunSettings(**common, workers=1), tmp_path / "local", tmp_path / "a.sqlite")
    run(RunSettings(**common, workers=2, dask="local"), tmp_path / "dask", tmp_path / "b.sqlite")
    a = pd.read_csv(tmp_path / "local" / "relax.csv").drop(columns=["wall_s", "denoiser_s"])
    b = pd.read_csv(tmp_path / "dask" / "relax.csv").drop(columns=["wall_s", "denoiser_s"])
    pd.testing.assert_frame_equal(a, b)
    assert ResultStore(tmp_path / "b.sqlite").count("relax") == 8


def test_a_dataset_edited_after_its_build_is_refused(tiny_dataset, tmp_path):
    """Shifted atom counts in a shard (energies of hundreds of kcal/mol, silently, before):
    the split's content hash no longer matches its manifest."""
    import shutil

    import numpy as np

    edited = tmp_path / "edited"
    shutil.copytree(tiny_dataset, edited, ignore=shutil.ignore_patterns("work"))
    shard = next(edited.glob("train-*.npz"))
    arrays = dict(np.load(shard))
    arrays["n_atoms"] = np.roll(arrays["n_atoms"], 1)
    np.savez(shard, **arrays)
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(edited), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "content" in str(result.exception).lower()


@pytest.mark.parametrize("width", [80, 120])
def test_the_summary_fits_the_terminal_without_cutting_a_number(width, capsys):
    """Cells are never cut to "4.…": columns are left out (and named in the caption)
    until the rest fit; long method names fold onto further lines, whole."""
    from bench.runner import SUMMARY_COLUMNS, print_summary

    names = ["mmff", "ceiling", "edm-qm9xtb-nf64-t05-e120-deterministic/n=50", "edm-qm9xtb-nf64-t05-e120/n=20"]
    summary = {"label": "qm9-xtb/test/xtb[tblite 0.4.0, settings 1a2b3c4d]/fmax=0.03/subset 0123456789ab "
                        "(100 molecules)", "wall_s": 812.4,
               "methods": {m: {key: 1234.5678 + k for k, key in enumerate(SUMMARY_COLUMNS.values())} for m in names}}
    print_summary(summary, width=width)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= width
    assert "…" not in out and "1.23e+03" in out
    folded = "".join(line.split()[0] if line.split() else "" for line in out.splitlines())
    for name in names:
        assert name.replace(" ", "") in folded or name in out, name
    if width == 80:
        assert "more columns in metrics.csv" in out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_backend_chooses_how_a_checkpoint_runs_and_is_recorded(tiny_dataset, tmp_path, backend):
    """--backend reaches the denoiser and the manifest; torch and onnx give the same rows."""
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), tmp_path / "ckpt")
    card = {"key": "tiny", "name": "tiny", "version": "0", "model": {"kind": "edm-checkpoint", "path": "ckpt"},
            "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "relaxation": {"n_steps": [4], "noise_scale": 0.0},
            "training": {"datasets": [{"name": "none", "split": "train"}]}}
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump(card))
    runs = {}
    for chosen in ("torch", backend):
        out = tmp_path / chosen
        result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                          "--methods", "mmff", "--tasks", "energy-ratio", "--denoiser",
                                          str(tmp_path / "tiny.yml"), "--backend", chosen, "--out", str(out),
                                          "--store", str(tmp_path / "s.sqlite")])
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["settings"]["run"]["backend"] == chosen
        assert manifest["settings"]["denoisers"]["tiny"]["backend"] == chosen
        assert manifest["settings"]["denoisers"]["tiny"]["backend_details"]["backend"] == chosen
        runs[chosen] = pd.read_csv(out / "energy.csv")
    np.testing.assert_allclose(runs[backend]["energy_above_ground_kcal_mol"],
                               runs["torch"]["energy_above_ground_kcal_mol"], atol=1e-3)


def test_evaluations_add_strided_rows_with_their_cost(tiny_dataset, tmp_path):
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), tmp_path / "ckpt")
    card = {"key": "tiny", "name": "tiny", "version": "0", "model": {"kind": "edm-checkpoint", "path": "ckpt"},
            "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "relaxation": {"n_steps": [6], "noise_scale": 0.0, "evaluations": [2, 6, 9]},
            "training": {"datasets": [{"name": "none", "split": "train"}]}}
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump(card))
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--tasks", "energy-ratio", "--denoiser",
                                      str(tmp_path / "tiny.yml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    energy = pd.read_csv(tmp_path / "run" / "energy.csv")
    evaluations = energy.groupby("method")["network_evaluations"].first().to_dict()
    assert evaluations == {"mmff": 0, "tiny/n=6": 7, "tiny/n=6/k=2": 3}  # k >= n is every step, counted once
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settings"]["denoisers"]["tiny"]["evaluations"] == [2, 6, 9]


def test_learned_start_steps_make_rows_with_each_molecules_reading(tiny_dataset, tmp_path):
    """A position-only ONNX denoiser with an ONNX time-step predictor: ``--n-steps 3,auto``
    gives the fixed row and both learned modes, each molecule's start step and
    evaluations recorded; a denoiser without a predictor leaves auto out, saying why."""
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint
    from edm_core.onnx_backend import export_onnx
    from edm_core.time_predictor import PredictorConfig, TimePredictor
    from edm_core.time_predictor import export_onnx as export_predictor

    torch.manual_seed(0)
    export_onnx(EDMDenoiser(EDMConfig(nf=16, n_layers=2, position_only=True)).eval(), tmp_path / "pos.onnx",
                signature="positions")
    export_predictor(TimePredictor(PredictorConfig(hidden=8, n_layers=1, n_rbf=8, t_range=0.01)), tmp_path / "t.onnx")
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), tmp_path / "ckpt")
    base = {"version": "0", "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "training": {"datasets": [{"name": "none", "split": "train"}]}}
    cards = {"pos": {**base, "key": "pos", "name": "pos", "relaxation": {"n_steps": [3], "noise_scale": 0.0},
                     "model": {"kind": "onnx", "path": "pos.onnx", "time_predictor": {"path": "t.onnx"}}},
             "edm": {**base, "key": "edm", "name": "edm", "relaxation": {"n_steps": [3], "noise_scale": 0.0},
                     "model": {"kind": "edm-checkpoint", "path": "ckpt"}}}
    for name, doc in cards.items():
        (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--tasks", "energy-ratio", "--denoiser",
                                      str(tmp_path / "pos.yml"), "--denoiser", str(tmp_path / "edm.yml"),
                                      "--n-steps", "3,auto", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    energy = pd.read_csv(tmp_path / "run" / "energy.csv")
    assert set(energy["method"]) == {"mmff", "pos/n=3", "pos/n=auto-itp", "pos/n=auto-as", "edm/n=3"}
    itp = energy[energy["method"] == "pos/n=auto-itp"]
    assert itp["start_step"].between(0, 10).all()  # t_range 0.01: at most step 10
    assert (itp["network_evaluations"] == itp["start_step"] + 1).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["settings"]["denoisers"]
    assert manifest["pos"]["start_steps"] == [3, "auto-itp", "auto-as"]
    assert manifest["edm"]["start_steps_left_out"] == {"auto-itp": "no time-step predictor",
                                                       "auto-as": "no time-step predictor"}
    bad = {**cards["edm"], "relaxation": {"n_steps": ["auto"]}}
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "2",
                                      "--methods", "mmff", "--denoiser", str(tmp_path / "bad.yml"),
                                      "--out", str(tmp_path / "bad")])
    assert result.exit_code != 0 and "needs a time-step predictor" in str(result.exception)
