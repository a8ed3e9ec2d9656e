"""The shipped datasets: sizes, integrity, physics (ground states are minima),
documentation, and the loader's error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.data import load_dataset, read_manifest
from bench.build import BuildSettings, split_of
from bench.data.dataset import SHIPPED, SHIPPED_ROOT
from bench.errors import InputError
from bench.oracles import get_oracle
from bench.units import EV_TO_KCAL_MOL

MIN_SIZES = {"qm9-xtb": {"train": 20_000, "valid": 1_000, "test": 1_000}, "drugs-xtb": {"test": 1},
             "zinc-xtb": {"train": 100}}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sets_load_with_their_hashes_and_sizes(name):
    manifest = read_manifest(name)
    for split, entry in manifest["splits"].items():
        molecules = load_dataset(name, split, verify=True)
        assert len(molecules) == entry["n_molecules"] >= MIN_SIZES[name].get(split, 0)
        assert int(molecules.arrays["n_atoms"].sum()) == entry["n_atoms"]
    assert manifest["settings"]["ground_fmax"] <= 0.005
    n_total = sum(e["n_molecules"] for e in manifest["splits"].values())
    assert n_total + manifest["rejects"]["n"] == manifest["source"]["lines_done"]


@pytest.mark.parametrize("name", SHIPPED)
def test_splits_are_disjoint_and_follow_the_smiles_hash(name):
    fractions = tuple(read_manifest(name)["settings"]["split_fractions"])
    seen: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        for smi in load_dataset(name, split).arrays["smiles"]:
            assert split_of(str(smi), fractions) == split
            assert seen.setdefault(str(smi), split) == split


@pytest.mark.parametrize("name", SHIPPED)
def test_stored_ground_states_are_xtb_minima_below_the_mmff_starts(name, rng):
    molecules = load_dataset(name, "test")
    pick = rng.choice(len(molecules), size=min(12, len(molecules)), replace=False)
    xtb = get_oracle("xtb")
    for i in pick:
        rec = molecules[int(i)]
        ground = xtb.single_point(rec.to_atoms("ground"), name=rec.id)
        start = xtb.single_point(rec.to_atoms("start"), name=rec.id)
        # fmax 0.005 eV/A at build time; float32 storage moves it by < 1e-4
        assert np.linalg.norm(ground.forces_ev_ang, axis=1).max() < 0.0051, rec.id
        assert ground.energy_ev == pytest.approx(rec.ground_energy, abs=2e-4), rec.id
        assert start.energy_ev == pytest.approx(rec.start_energy, abs=2e-4), rec.id


@pytest.mark.parametrize("name", SHIPPED)
def test_mmff_starts_lie_above_the_ground_state_for_most_molecules(name):
    gaps = []
    for split in ("train", "valid", "test"):
        f = load_dataset(name, split).frame()
        gaps.append((f.start_energy_ev - f.ground_energy_ev).to_numpy() * EV_TO_KCAL_MOL)
    gaps = np.concatenate(gaps)
    assert np.mean(gaps > 0) > 0.97
    assert 1.0 < np.median(gaps) < 30.0
    manifest_median = read_manifest(name)["start_minus_ground_kcal_mol"]["median"]
    assert np.median(gaps) == pytest.approx(manifest_median, abs=1e-3)


def test_records_match_their_smiles_graph():
    from rdkit import Chem

    molecules = load_dataset("qm9-xtb", "valid")
    for rec in molecules[:200]:
        mol = Chem.AddHs(Chem.MolFromSmiles(rec.smiles))
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == rec.numbers.tolist()
        assert Chem.GetFormalCharge(mol) == rec.charge


@pytest.mark.parametrize("name", SHIPPED)
def test_datasets_readme_documents_every_content_hash(name):
    readme = (SHIPPED_ROOT / "README.md").read_text()
    for split, entry in read_manifest(name)["splits"].items():
        assert entry["content_sha256"] in readme, f"{name}/{split} hash missing from datasets/README.md"


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="neither a shipped dataset"):
        load_dataset(tmp_path / "nothing", "test")
    with pytest.raises(InputError, match="unknown split 'dev'"):
        load_dataset("qm9-xtb", "dev")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((SHIPPED_ROOT / "qm9-xtb" / "manifest.json").read_text())
    with pytest.raises(InputError, match="corrupt or incomplete dataset shard"):
        load_dataset(broken, "test")
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the dataset manifest"):
        load_dataset(broken, "test")


def test_tampered_shard_fails_verification(tmp_path):
    import shutil

    src = SHIPPED_ROOT / "qm9-xtb"
    dst = tmp_path / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("work", "train-*"))
    path = dst / read_manifest(src)["splits"]["test"]["files"][0]
    with np.load(path) as z:
        arrays = dict(z)
    arrays["ground_energy_ev"][0] += 1e-3
    np.savez(path, **arrays)
    assert len(load_dataset(dst, "test")) > 0
    with pytest.raises(InputError, match="content hash of split 'test' does not match"):
        load_dataset(dst, "test", verify=True)


def test_default_settings_are_the_documented_ones():
    s = BuildSettings()
    assert (s.ground_fmax, s.ground_optimizer, s.mmff_variant, s.oracle) == (0.005, "BFGS", "MMFF94", "xtb")
    assert Path(SHIPPED_ROOT).name == "datasets"


def test_split_all_is_every_split_in_order_with_one_combined_hash():
    import hashlib

    from bench.data.dataset import split_content_sha256

    parts = [load_dataset("drugs-xtb", s) for s in ("train", "valid", "test")]
    every = load_dataset("drugs-xtb", "all", verify=True)
    assert [r.id for r in every] == [r.id for p in parts for r in p]
    manifest = read_manifest("drugs-xtb")
    expected = hashlib.sha256("\n".join(manifest["splits"][s]["content_sha256"]
                                        for s in ("train", "valid", "test")).encode()).hexdigest()
    assert split_content_sha256(manifest, "all") == expected != split_content_sha256(manifest, "test")
    with pytest.raises(InputError, match="unknown split 'every'"):
        load_dataset("drugs-xtb", "every")


def test_drugs_xtb_holds_every_geom_drugs_test_line_that_builds():
    manifest = read_manifest("drugs-xtb")
    assert manifest["source"]["complete"] and manifest["source"]["lines_done"] == 1000
    assert len(load_dataset("drugs-xtb", "all")) + manifest["rejects"]["n"] == 1000


def test_smiles_overlap_counts_shared_molecules_and_the_card_states_it():
    from bench.cards import overlap_description
    from bench.data.dataset import smiles_overlap

    test = load_dataset("qm9-xtb", "test")
    some = [r.smiles for r in test[:5]] + ["not-a-molecule"]
    assert smiles_overlap(some, "qm9-xtb", "test") == 5
    assert smiles_overlap([r.smiles for r in load_dataset("qm9-xtb", "train")[:500]], "qm9-xtb", "test") == 0
    text = overlap_description({"n_used": 6, "overlap": {"qm9-xtb/test": 5, "drugs-xtb/all": 0}})
    assert text.endswith("qm9-xtb/test: 5 of 6, drugs-xtb/all: 0 of 6")


def test_the_drug_like_training_set_shares_no_molecule_with_the_drugs_test_set():
    from bench.data.dataset import smiles_overlap

    zinc = load_dataset("zinc-xtb", "all").arrays["smiles"].tolist()
    assert len(zinc) >= 100 and smiles_overlap(zinc, "drugs-xtb", "all") == 0
