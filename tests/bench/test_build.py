"""The dataset builder: records, rejects with reasons, resume, and the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import load_dataset, read_manifest
from bench.build import BuildSettings, build_dataset, split_of
from bench.oracles import get_oracle
from bench.units import EV_TO_KCAL_MOL

SMILES = ["CCO", "C1CC", "C.C", "[CH3]", "OC(=O)C[NH3+]", "NC(=O)C=O", "CC#N", "C[NH3+]"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    smiles = root / "in.smi"
    smiles.write_text("\n".join(SMILES) + "\n")
    calls = []
    manifest = build_dataset("qm9-xtb", out_dir=root / "set", smiles_path=smiles, workers=1, progress=False,
                             on_result=calls.append)
    return root, manifest, calls


def worker_pids(parent_pid: int) -> list[int]:
    """The spawned worker processes of ``parent_pid`` (not multiprocessing's resource tracker)."""
    import subprocess

    out = subprocess.run(["ps", "ww", "-o", "pid=,args=", "--ppid", str(parent_pid)], capture_output=True, text=True)
    return [int(line.split()[0]) for line in out.stdout.splitlines() if "spawn_main" in line]


def all_records(path):
    return [r for split in ("train", "valid", "test") for r in load_dataset(path, split, verify=True)]


def test_rejects_are_listed_with_stage_and_reason(built):
    root, manifest, calls = built
    assert len(calls) == len(SMILES)
    with open(root / "set" / "rejects.csv", newline="") as fh:
        rejects = {r["smiles"]: r for r in csv.DictReader(fh)}
    assert rejects["C1CC"]["stage"] == "parse" and "cannot parse" in rejects["C1CC"]["reason"]
    assert rejects["C.C"]["reason"] == "disconnected fragments"
    assert set(rejects) == {"C1CC", "C.C"}
    records = all_records(root / "set")
    assert len(records) + len(rejects) == len(SMILES)
    assert manifest["rejects"]["n"] == len(rejects)
    assert sum(manifest["rejects"]["by_stage"].values()) == len(rejects)


def test_records_carry_graph_charge_and_a_deterministic_split(built):
    root, _, _ = built
    records = {r.smiles: r for r in all_records(root / "set")}
    assert {"CCO", "CC#N", "C[NH3+]"} <= set(records)
    assert records["C[NH3+]"].charge == 1 and records["CCO"].charge == 0
    assert records["[CH3]"].multiplicity == 2  # a radical: open shell, passed to xTB as uhf=1
    for smi, rec in records.items():
        assert rec.multiplicity == (2 if smi == "[CH3]" else 1)
        assert rec.split == split_of(smi, BuildSettings().split_fractions)
        assert rec.id.startswith("qm9-xtb-00000") and SMILES[int(rec.id[-6:])] in (smi, "OC(=O)C[NH3+]")
        np.testing.assert_allclose(rec.start_positions.mean(axis=0), 0, atol=1e-5)


def test_ground_states_are_minima_below_their_starts(built):
    root, _, _ = built
    xtb = get_oracle("xtb")
    for rec in all_records(root / "set"):
        ground = xtb.single_point(rec.to_atoms("ground"))
        start = xtb.single_point(rec.to_atoms("start"))
        assert np.abs(ground.forces_ev_ang).max() < 0.0055, rec.smiles  # fmax 0.005 + float32 storage
        assert ground.energy_ev == pytest.approx(rec.ground_energy, abs=1e-4)
        assert start.energy_ev == pytest.approx(rec.start_energy, abs=1e-4)
        assert (rec.start_energy - rec.ground_energy) * EV_TO_KCAL_MOL > -1e-3


def test_a_second_build_resumes_without_recomputing(built):
    root, manifest, _ = built
    calls = []
    again = build_dataset("qm9-xtb", out_dir=root / "set", smiles_path=root / "in.smi", workers=1,
                          progress=False, on_result=calls.append)
    assert calls == []
    assert {s: v["content_sha256"] for s, v in again["splits"].items()} == \
           {s: v["content_sha256"] for s, v in manifest["splits"].items()}


def test_cli_build_writes_a_loadable_dataset(tmp_path):
    smiles = tmp_path / "in.smi"
    smiles.write_text("C\nO\nN\n")
    result = CliRunner().invoke(app, ["data", "build", "qm9-xtb", "--limit", "2", "--out", str(tmp_path / "d"),
                                      "--smiles", str(smiles), "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "d")
    assert manifest["n_molecules"] == 2 and manifest["source"]["lines_done"] == 2
    assert manifest["source"]["complete"]
    assert manifest["settings"]["ground_fmax"] == 0.005
    got = sorted(r.smiles for r in all_records(tmp_path / "d"))
    assert got == ["C", "O"]


def test_unknown_recipe_and_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="choose from"):
        build_dataset("qm7", out_dir=tmp_path)
    with pytest.raises(ValueError, match="ground_fmax"):
        BuildSettings(ground_fmax=0.1)
    with pytest.raises(ValueError, match="split_fractions"):
        BuildSettings(split_fractions=(0.9, 0.2, 0.05))
    with pytest.raises(FileNotFoundError, match="--smiles"):
        build_dataset("qm9-xtb", out_dir=tmp_path, smiles_path=tmp_path / "missing.smi")


def test_a_fresh_clone_resumes_from_the_written_dataset(built, tmp_path):
    """Only the dataset files travel in git; the work store does not. A build in a
    copy without its work store must import the written records, not redo them."""
    import shutil

    root, manifest, _ = built
    copy = tmp_path / "set"
    shutil.copytree(root / "set", copy, ignore=shutil.ignore_patterns("work"))
    calls = []
    again = build_dataset("qm9-xtb", out_dir=copy, smiles_path=root / "in.smi", workers=1, progress=False,
                          on_result=calls.append)
    assert calls == []
    assert {s: v["content_sha256"] for s, v in again["splits"].items()} == \
           {s: v["content_sha256"] for s, v in manifest["splits"].items()}
    assert again["rejects"] == manifest["rejects"]


def test_an_interrupted_build_leaves_a_consistent_partial_dataset(tmp_path):
    smiles = tmp_path / "in.smi"
    smiles.write_text("C\nO\nN\nCC\nCO\nCN\n")

    def stop_after_two(row, seen=[]):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset("qm9-xtb", out_dir=tmp_path / "d", smiles_path=smiles, workers=1, progress=False,
                      on_result=stop_after_two)
    manifest = read_manifest(tmp_path / "d")
    assert manifest["source"]["lines_done"] == 2 and not manifest["source"]["complete"]
    assert len(all_records(tmp_path / "d")) == 2
    calls = []
    final = build_dataset("qm9-xtb", out_dir=tmp_path / "d", smiles_path=smiles, workers=1, progress=False,
                          on_result=calls.append)
    assert len(calls) == 4 and final["source"]["complete"] and final["n_molecules"] == 6


@pytest.mark.parametrize("continue_", [None, True])
def test_conformer_screening_keeps_the_lowest_tight_minimum(tmp_path, continue_):
    smiles = tmp_path / "in.smi"
    smiles.write_text("CCCCO\n")
    settings = BuildSettings(n_conformers=3, screen_fmax=0.03, screen_continue=continue_)
    build_dataset("qm9-xtb", out_dir=tmp_path / "d", smiles_path=smiles, workers=1, progress=False,
                  settings=settings)
    (rec,) = all_records(tmp_path / "d")
    sp = get_oracle("xtb").single_point(rec.to_atoms("ground"))
    assert np.abs(sp.forces_ev_ang).max() < 0.0055
    assert rec.ground_energy <= rec.start_energy
    assert read_manifest(tmp_path / "d")["settings"]["screen_fmax"] == 0.03


def test_killing_the_driver_kills_its_workers(tmp_path):
    """SIGKILL of the build driver must not leave orphan workers computing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    smiles = tmp_path / "in.smi"
    smiles.write_text("\n".join(["CCCCCCCCO"] * 40) + "\n")
    code = ("from bench.build import build_dataset; "
            f"build_dataset('qm9-xtb', out_dir={str(tmp_path / 'd')!r}, smiles_path={str(smiles)!r}, workers=2, "
            "progress=False)")
    driver = subprocess.Popen([sys.executable, "-c", code])

    def children() -> list[int]:
        return worker_pids(driver.pid)

    deadline = time.time() + 60
    while len(children()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 20
    while any(os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
              for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}")
             and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    assert alive == []


def test_sigterm_stops_the_build_at_once_and_keeps_what_is_done(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    smiles = tmp_path / "in.smi"
    smiles.write_text("C\nO\n" + "\n".join(["CCCCCCCCCO"] * 30) + "\n")
    code = ("from bench.build import build_dataset; "
            f"build_dataset('qm9-xtb', out_dir={str(tmp_path / 'd')!r}, smiles_path={str(smiles)!r}, workers=1, "
            "progress=False)")
    driver = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    store = tmp_path / "d" / "work" / "build.sqlite"
    deadline = time.time() + 60
    while time.time() < deadline:
        if store.exists():
            from bench.store import ResultStore

            if ResultStore(store).count("build") >= 2:
                break
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGTERM)
    t0 = time.time()
    driver.wait(timeout=30)
    assert time.time() - t0 < 10  # did not wait for the queue
    manifest = read_manifest(tmp_path / "d")
    assert manifest["source"]["lines_done"] >= 2 and not manifest["source"]["complete"]


def test_molecules_of_a_killed_worker_are_built_again_not_rejected(built, tmp_path):
    """SIGKILL a worker after the first molecule: the pool replaces it, the molecules
    it (and the broken pool) lost are submitted again, and the dataset equals that of
    an undisturbed build (content hashes), with no ``worker`` reject."""
    import os
    import signal

    from tests.reliability import KILLS, LOST, tally

    root, manifest, _ = built
    killed: list[int] = []

    def kill_a_worker(row: dict) -> None:
        if killed:
            return
        workers = worker_pids(os.getpid())
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])

    again = build_dataset("qm9-xtb", out_dir=tmp_path / "set", smiles_path=root / "in.smi", workers=2,
                          progress=False, on_result=kill_a_worker)
    tally(KILLS)
    assert killed
    with open(tmp_path / "set" / "rejects.csv", newline="") as fh:
        stages = [r["stage"] for r in csv.DictReader(fh)]
    tally(LOST, stages.count("worker"))
    assert "worker" not in stages
    assert {s: v["content_sha256"] for s, v in again["splits"].items()} == \
           {s: v["content_sha256"] for s, v in manifest["splits"].items()}


def test_the_recipes_find_their_smiles_files_beside_the_repository():
    """The shared data folder sits beside the checkout; every recipe's default file is there."""
    from bench.build import RECIPES
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data folder at {SHARED_DATA}")
    for name, recipe in RECIPES.items():
        assert recipe.smiles_path.is_file(), (name, recipe.smiles_path)


def test_a_recipe_keeps_out_the_molecules_of_its_excluded_sets(tmp_path, monkeypatch):
    """A training set is disjoint from a test set by canonical SMILES: a line that
    writes an excluded molecule differently is rejected before any work, with the reason."""
    import dataclasses

    import bench.build as build

    test_set = tmp_path / "test.smi"
    test_set.write_text("OCC\nc1ccccc1\n")  # ethanol written another way, benzene
    smiles = tmp_path / "in.smi"
    smiles.write_text("CCO\nCC#N\nC1=CC=CC=C1\n")
    recipe = dataclasses.replace(build.RECIPES["qm9-xtb"], exclude=(test_set,))
    monkeypatch.setitem(build.RECIPES, "qm9-xtb", recipe)
    built_rows = []
    manifest = build_dataset("qm9-xtb", out_dir=tmp_path / "set", smiles_path=smiles, workers=1, progress=False,
                             on_result=built_rows.append)
    assert [r["input_smiles"] for r in built_rows] == ["CC#N"]  # the excluded ones cost nothing
    with open(tmp_path / "set" / "rejects.csv", newline="") as fh:
        rejects = {r["smiles"]: r for r in csv.DictReader(fh)}
    assert set(rejects) == {"CCO", "C1=CC=CC=C1"} and manifest["rejects"]["by_stage"] == {"excluded": 2}
    assert "test.smi" in rejects["CCO"]["reason"]
    assert [r.smiles for r in all_records(tmp_path / "set")] == ["CC#N"]
