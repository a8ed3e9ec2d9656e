"""Tests of :func:`bench.data.read_molecules` on real third-party files and on
small files written here.

The real files (``shared/data/real_formats``, see its README) are read in
place and never copied into the project; tests that need them skip when the
folder is absent. Expected values come from the files' own text (parsed here
independently of the reader), from the README, or from a second file that
holds the same molecules (QM9 xyz vs EDM npz vs gdb9.sdf).
"""

from __future__ import annotations

import csv
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers, chemical_symbols
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem

import bench.data
from bench.data import Molecule, read_molecules
from bench.errors import InputError
from tests.reliability import MALFORMED, OVERSIZED, tally

REAL = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real_formats").resolve()
QM9_DIR = REAL / "qm9_xyz"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data files not present at {REAL}")

#: The QM9 files that are also in edm_qm9_test.npz (README, section 1).
IN_NPZ = ("005001", "052936", "057891", "103438", "109889", "133519", "133774")
QM9_KEYS = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")


def qm9_file(number: str) -> Path:
    return QM9_DIR / f"dsgdb9nsd_{number}.xyz"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def xyz_text(symbols: list[str], positions: np.ndarray, comment: str = "") -> str:
    body = "".join(f"{s} {x!r} {y!r} {z!r}\n" for s, (x, y, z) in zip(symbols, positions.tolist()))
    return f"{len(symbols)}\n{comment}\n{body}"


def mol_block(title: str, symbols: list[str], positions: np.ndarray) -> str:
    """A V2000 record written by hand from the CTfile specification (no bonds)."""
    atoms = "".join(
        f"{x:10.4f}{y:10.4f}{z:10.4f} {s:<3} 0  0  0  0  0  0  0  0  0  0  0  0\n"
        for s, (x, y, z) in zip(symbols, positions.tolist())
    )
    return f"{title}\n  handwritten\n\n{len(symbols):3d}  0  0  0  0  0  0  0  0  0999 V2000\n{atoms}M  END\n$$$$\n"


WATER = xyz_text(["O", "H", "H"], np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]))
METHANE = xyz_text(
    ["C", "H", "H", "H", "H"],
    np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]], float),
)


def assert_same(a: list[Molecule], b: list[Molecule]) -> None:
    assert [m.id for m in a] == [m.id for m in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numbers, y.numbers)
        np.testing.assert_array_equal(x.positions, y.positions)
        assert (x.charge, x.multiplicity, x.smiles, x.properties) == (y.charge, y.multiplicity, y.smiles, y.properties)


# --------------------------------------------------------------------------
# QM9 xyz


@needs_real
def test_every_qm9_file_reads_with_its_own_counts_and_fields():
    files = sorted(QM9_DIR.glob("dsgdb9nsd_*.xyz"))
    assert len(files) == 109
    for path in files:
        lines = path.read_text().split("\n")
        n = int(lines[0])
        (molecule,) = read_molecules(path)
        assert molecule.id == path.stem
        assert len(molecule.numbers) == n and molecule.positions.shape == (n, 3)
        assert [chemical_symbols[z] for z in molecule.numbers] == [line.split("\t")[0] for line in lines[2 : 2 + n]]
        assert molecule.properties["index"] == int(path.stem.split("_")[1])
        assert molecule.smiles == molecule.properties["smiles_relaxed"] == lines[n + 3].split("\t")[1]
        assert molecule.properties["inchi_gdb"] == lines[n + 4].split("\t")[0]
        assert len(molecule.properties["mulliken_charges"]) == n
        assert sum(molecule.properties["mulliken_charges"]) == pytest.approx(0.0, abs=1e-4)
        assert set(QM9_KEYS) <= set(molecule.properties)
        assert molecule.multiplicity == 1  # QM9 molecules are neutral closed shells


@needs_real
def test_qm9_methane_exact_numbers():
    (methane,) = read_molecules(qm9_file("000001"))
    assert methane.numbers.tolist() == [6, 1, 1, 1, 1]
    assert methane.positions[0].tolist() == [-0.0126981359, 1.0858041578, 0.0080009958]
    assert methane.positions[4].tolist() == [-0.5238136345, 1.4379326443, 0.9063972942]
    p = methane.properties
    assert (p["A"], p["mu"], p["gap"], p["U0"], p["Cv"]) == (157.7118, 0.0, 0.5048, -40.47893, 6.469)
    assert p["mulliken_charges"][0] == -0.535689
    assert p["frequencies"][0] == 1341.307 and len(p["frequencies"]) == 9
    assert (p["smiles_gdb"], p["inchi_relaxed"]) == ("C", "InChI=1S/CH4/h1H4")
    assert (methane.charge, methane.multiplicity) == (0, 1)
    assert methane.source.endswith("dsgdb9nsd_000001.xyz (record 1)")


@pytest.mark.parametrize(
    ("number", "atom", "column", "value"),
    [("005005", 7, 2, 7.9254e-6), ("004611", 2, 2, -4.0965e-6), ("052936", 7, None, 5e-6)],
)
@needs_real
def test_qm9_mathematica_exponents(number, atom, column, value):
    text = qm9_file(number).read_text()
    assert "*^" in text
    (molecule,) = read_molecules(qm9_file(number))
    got = molecule.properties["mulliken_charges"][atom] if column is None else molecule.positions[atom, column]
    assert got == value


@pytest.mark.parametrize(("number", "n_atoms"), [("000004", 4), ("000005", 3)])
@needs_real
def test_qm9_linear_molecules_bare_zeros_and_3n_minus_5_frequencies(number, n_atoms):
    (molecule,) = read_molecules(qm9_file(number))
    assert molecule.properties["A"] == 0.0
    assert len(molecule.properties["frequencies"]) == 3 * n_atoms - 5
    atom_lines = qm9_file(number).read_text().split("\n")[2 : 2 + n_atoms]
    assert molecule.positions.tolist() == [[float(v) for v in line.split("\t")[1:4]] for line in atom_lines]


@pytest.mark.parametrize(("number", "n_atoms"), [("001265", 12), ("003899", 8), ("130666", 11)])
@needs_real
def test_qm9_files_that_list_their_frequencies_twice(number, n_atoms):
    (molecule,) = read_molecules(qm9_file(number))
    frequencies = molecule.properties["frequencies"]
    assert len(frequencies) == 2 * (3 * n_atoms - 6)  # as in the archive file, not cut to 3N-6
    half = len(frequencies) // 2
    np.testing.assert_allclose(frequencies[:half], frequencies[half:], atol=1e-2)


@needs_real
def test_qm9_file_without_trailing_tab():
    assert not qm9_file("067017").read_text().split("\n")[1].endswith("\t")
    (molecule,) = read_molecules(qm9_file("067017"))
    assert molecule.properties["index"] == 67017
    assert molecule.properties["Cv"] == 31.876
    assert molecule.properties["U0"] == -401.914551


@needs_real
def test_qm9_zwitterions_are_neutral():
    zwitterions = []
    for path in sorted(QM9_DIR.glob("*.xyz")):
        lines = path.read_text().split("\n")
        gdb_smiles = lines[int(lines[0]) + 3].split("\t")[0]
        if "+]" in gdb_smiles and "-]" in gdb_smiles:
            zwitterions.append(path)
            ions = Chem.MolFromSmiles(gdb_smiles, sanitize=False)
            assert Chem.GetFormalCharge(ions) == 0  # independent reference: the charges cancel
    assert len(zwitterions) == 21  # README: 21 files with charged (zwitterionic) SMILES
    for path in zwitterions:
        (molecule,) = read_molecules(path)
        assert molecule.charge == 0 and molecule.multiplicity == 1
        assert "+]" in molecule.properties["smiles_gdb"]


@needs_real
def test_qm9_xyz_agree_with_the_edm_npz(npz_molecules):
    by_id = {m.id: m for m in npz_molecules}
    for number in IN_NPZ:
        (xyz,) = read_molecules(qm9_file(number))
        npz = by_id[f"qm9:{int(number)}"]
        np.testing.assert_array_equal(npz.numbers, xyz.numbers)
        np.testing.assert_allclose(npz.positions, xyz.positions, atol=1e-5, rtol=0)
        # The npz stores float32: U0 ~ -620 Ha is only good to its float32 spacing
        # (6e-5), so compare with the xyz value rounded to float32, exactly.
        assert abs(npz.properties["U0"] - xyz.properties["U0"]) <= abs(np.spacing(np.float32(xyz.properties["U0"])))
        for key in QM9_KEYS:
            assert npz.properties[key] == float(np.float32(xyz.properties[key])), (number, key)
        assert npz.properties["omega1"] == float(np.float32(max(xyz.properties["frequencies"])))


# --------------------------------------------------------------------------
# folders and archives


@needs_real
@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w"])
def test_folder_and_tar_equal_the_files_one_by_one(tmp_path, mode):
    paths = sorted(QM9_DIR.glob("*.xyz"))
    one_by_one = [m for path in paths for m in read_molecules(path)]
    folder = read_molecules(QM9_DIR)
    archive = tmp_path / f"qm9.{'tar' if mode == 'w' else 'tar.' + mode[2:]}"
    with tarfile.open(archive, mode) as tar:
        for path in paths:
            tar.add(path, arcname=f"dsgdb9nsd/{path.name}")
    tarred = read_molecules(archive)
    assert len(one_by_one) == 109
    assert_same(folder, one_by_one)
    assert_same(tarred, one_by_one)
    assert tarred[0].source == f"{archive}/dsgdb9nsd/dsgdb9nsd_000001.xyz (record 1)"
    assert not any(p.suffix == ".xyz" for p in tmp_path.rglob("*"))  # read in place, nothing extracted


def test_folder_reads_supported_files_sorted_and_ignores_others(tmp_path):
    write(tmp_path / "b.xyz", METHANE)
    write(tmp_path / "a.xyz", WATER)
    write(tmp_path / "notes.txt", "not a molecule")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.xyz", WATER)
    molecules = read_molecules(tmp_path)
    assert [m.id for m in molecules] == ["a", "b"]
    assert [len(m.numbers) for m in molecules] == [3, 5]


def test_empty_folder_and_corrupt_archive_raise(tmp_path):
    with tarfile.open(tmp_path / "docs.tar", "w") as tar:
        tar.addfile(tarfile.TarInfo("README.txt"))
    with pytest.raises(InputError, match=r"docs\.tar: no supported file in this archive"):
        read_molecules(tmp_path / "docs.tar")
    (tmp_path / "docs.tar").unlink()
    with pytest.raises(InputError, match="no supported file"):
        read_molecules(tmp_path)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    with pytest.raises(InputError, match=r"broken\.tar\.gz: cannot read the tar archive"):
        read_molecules(broken)


# --------------------------------------------------------------------------
# SDF


@needs_real
def test_gdb9_sdf_matches_the_qm9_xyz_files():
    molecules = read_molecules(REAL / "gdb9_excerpt.sdf")
    assert [m.id for m in molecules] == [f"gdb_{i}" for i in range(1, 22)]
    for i, molecule in enumerate(molecules[:10], start=1):
        (xyz,) = read_molecules(qm9_file(f"{i:06d}"))
        np.testing.assert_array_equal(molecule.numbers, xyz.numbers)
        np.testing.assert_allclose(molecule.positions, xyz.positions, atol=1e-4, rtol=0)
        assert (molecule.charge, molecule.properties) == (0, {})


@needs_real
def test_gdb9_csv_values_equal_the_xyz_line_2():
    csv_names = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u298", "h298", "g298", "cv")
    columns = dict(zip(QM9_KEYS, csv_names))
    with open(REAL / "gdb9_excerpt.sdf.csv", newline="") as handle:
        rows = {row["mol_id"]: row for row in csv.DictReader(handle)}
    for i in range(1, 11):
        (xyz,) = read_molecules(qm9_file(f"{i:06d}"))
        for key, column in columns.items():
            assert xyz.properties[key] == float(rows[f"gdb_{i}"][column]), (i, key)


@needs_real
def test_ligands_sdf_awkward_records():
    molecules = read_molecules(REAL / "ligands.sdf")
    assert [len(m.numbers) for m in molecules] == [46, 99, 34, 21, 71, 66, 72, 30, 30, 30]
    assert [m.id for m in molecules] == [
        "3ws9_ligand", "1jld_ligand", "1XP0_VDN_A_201", "SDF", "ligands:4", "ligands:5", "ligands:6",
        "ZINC03814457", "ZINC03814459", "ZINC03814460",
    ]  # fmt: skip
    jdq = molecules[5]  # touching fields such as "0.4083-1013.1176"
    record = (REAL / "ligands.sdf").read_text().split("$$$$\n")[5].split("\n")
    assert record[4].startswith("    2.6048    0.4083-1013.1176 Cl")
    atom_lines = record[4 : 4 + 66]  # independent reference: the V2000 fixed columns
    assert jdq.positions.tolist() == [[float(line[c : c + 10]) for c in (0, 10, 20)] for line in atom_lines]
    assert [chemical_symbols[z] for z in jdq.numbers] == [line[31:34].strip() for line in atom_lines]
    assert -1017.5 < jdq.positions[:, 2].min() < jdq.positions[:, 2].max() < -1012.4
    assert 1 not in molecules[2].numbers  # 1XP0: heavy atoms only
    assert {15, 16, 17} <= set(molecules[3].numbers.tolist())  # P, S, Cl
    assert molecules[0].properties["MOLECULAR_FORMULA"].replace(" ", "").startswith("C22")
    assert molecules[7].properties["id"] == "ZINC03814457"
    assert all(m.charge == 0 for m in molecules)


@needs_real
def test_cdk2_sdf_charges_and_data_fields():
    path = REAL / "ligands_cdk2_rdkit.sdf"
    records = [r for r in path.read_text().split("$$$$\n") if r.strip()]
    expected_charges = []
    for record in records:  # independent reference: the M  CHG lines, summed
        values = [int(v) for line in record.split("\n") if line.startswith("M  CHG") for v in line.split()[4::2]]
        expected_charges.append(sum(values))
    molecules = read_molecules(path)
    assert len(molecules) == len(records) == 47
    assert [m.charge for m in molecules] == expected_charges
    assert sum(c != 0 for c in expected_charges) == 8  # 11 records have M  CHG, 3 of them zwitterions
    assert [m.id for m in molecules] == [r.split("\n", 1)[0] for r in records]
    for molecule, record in zip(molecules, records):
        tags = re.findall(r"^> +<([^>]+)>", record, flags=re.M)
        assert tags and list(molecule.properties) == tags
        assert all(isinstance(v, str) for v in molecule.properties.values())
        assert molecule.properties["id"] == molecule.id
        assert molecule.multiplicity == (1 if (molecule.numbers.sum() - molecule.charge) % 2 == 0 else 2)


def test_sdf_titles_used_only_when_unique(tmp_path):
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]])
    text = "".join(mol_block(t, ["O", "H"], positions) for t in ["dup", "dup", "", "solo"])
    molecules = read_molecules(write(tmp_path / "set.sdf", text))
    assert [m.id for m in molecules] == ["set:0", "set:1", "set:2", "solo"]
    assert [m.multiplicity for m in molecules] == [2, 2, 2, 2]  # OH radical: odd electron count


def test_sdf_title_that_is_not_utf8_is_a_record_error(tmp_path):
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]])
    text = mol_block("caf\xe9", ["O", "H"], positions) + mol_block("fine", ["O", "H"], positions)
    (tmp_path / "latin1.sdf").write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.sdf \(record 1\): the title line .* is not UTF-8"):
        read_molecules(tmp_path / "latin1.sdf")
    with pytest.warns(UserWarning, match="not UTF-8"):
        assert [m.id for m in read_molecules(tmp_path / "latin1.sdf", on_error="skip")] == ["fine"]


def test_mol_file_and_charge_from_atom_block(tmp_path):
    block = mol_block("ammonium", ["N", "H", "H", "H", "H"], np.array(
        [[0, 0, 0], [0.6, 0.6, 0.6], [-0.6, -0.6, 0.6], [-0.6, 0.6, -0.6], [0.6, -0.6, -0.6]], float
    ))
    charged = block.replace(" N   0  0", " N   0  3", 1)  # atom-block charge code 3 = +1
    (molecule,) = read_molecules(write(tmp_path / "nh4.mol", charged))
    assert (molecule.id, molecule.charge, molecule.multiplicity) == ("ammonium", 1, 1)


def test_sdf_bad_record_raises_or_is_skipped(tmp_path):
    good = mol_block("first", ["O", "H"], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]]))
    bad = good.replace("first", "second").replace("    0.0000    0.9600", "    0.0000    0.96x0", 1)
    path = write(tmp_path / "three.sdf", good + bad + good.replace("first", "third"))
    with pytest.raises(InputError) as info:
        read_molecules(path)
    message = str(info.value)
    assert "three.sdf (record 2)" in message and "line 14" in message and "coordinates" in message
    with pytest.warns(UserWarning, match=r"three\.sdf \(record 2\)"):
        molecules = read_molecules(path, on_error="skip")
    assert [m.id for m in molecules] == ["first", "third"]


# --------------------------------------------------------------------------
# EDM npz and GEOM npy


@pytest.fixture(scope="module")
def npz_molecules() -> list[Molecule]:
    if not REAL.is_dir():
        pytest.skip(f"real data files not present at {REAL}")
    return read_molecules(REAL / "edm_qm9_test.npz")


@needs_real
def test_edm_npz_rows(npz_molecules):
    assert len(npz_molecules) == 13083
    sizes = [len(m.numbers) for m in npz_molecules]
    assert (min(sizes), max(sizes)) == (7, 29)
    assert npz_molecules[0].id == "qm9:11" and npz_molecules[-1].id == "qm9:133850"
    raw = np.load(REAL / "edm_qm9_test.npz")
    for k in (0, 4321, 13082):  # independent reference: the arrays themselves
        n = int(raw["num_atoms"][k])
        molecule = npz_molecules[k]
        np.testing.assert_array_equal(molecule.numbers, raw["charges"][k, :n])
        np.testing.assert_array_equal(molecule.positions, raw["positions"][k, :n].astype(float))
        assert molecule.properties["U0"] == float(raw["U0"][k])
        assert molecule.properties["index"] == int(raw["index"][k])
        assert molecule.properties["Cv_thermo"] == float(raw["Cv_thermo"][k])
    properties = npz_molecules[0].properties
    assert set(properties) == set(raw.files) - {"num_atoms", "charges", "positions"}
    assert type(properties["index"]) is int and type(properties["gap"]) is float
    assert set(np.concatenate([m.numbers for m in npz_molecules]).tolist()) == {1, 6, 7, 8, 9}


def npz_arrays() -> dict[str, np.ndarray]:
    charges = np.array([[8, 1, 1, 0, 0], [6, 1, 1, 1, 1]])
    positions = np.zeros((2, 5, 3))
    positions[0, :3] = [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]
    positions[1] = [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]
    return {"num_atoms": np.array([3, 5]), "charges": charges, "positions": positions, "gap": np.array([0.3, 0.5])}


def test_small_npz_without_index_and_its_errors(tmp_path):
    arrays = npz_arrays()
    np.savez(tmp_path / "small.npz", **arrays)
    molecules = read_molecules(tmp_path / "small.npz")
    assert [m.id for m in molecules] == ["small:0", "small:1"]
    assert [m.properties for m in molecules] == [{"gap": 0.3}, {"gap": 0.5}]
    np.savez(tmp_path / "dup.npz", **arrays, index=np.array([7, 7]))
    with pytest.raises(InputError, match=r"dup\.npz \(record 2, 'qm9:7'\).*duplicate id 'qm9:7'"):
        read_molecules(tmp_path / "dup.npz")
    del arrays["positions"]
    np.savez(tmp_path / "nopos.npz", **arrays)
    with pytest.raises(InputError, match=r"nopos\.npz: missing key\(s\) \['positions'\]"):
        read_molecules(tmp_path / "nopos.npz")
    arrays = npz_arrays()
    arrays["num_atoms"] = np.array([2, 5])  # the row holds 3 atoms
    np.savez(tmp_path / "count.npz", **arrays)
    with pytest.raises(InputError, match=r"count\.npz \(record 1\): num_atoms = 2, but the row has 3 atoms"):
        read_molecules(tmp_path / "count.npz")
    with pytest.warns(UserWarning, match=r"count\.npz \(record 1\)"):
        assert [m.id for m in read_molecules(tmp_path / "count.npz", on_error="skip")] == ["count:1"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"num_atoms": np.array([3.0, 5.0])}, r"num_atoms float64 \(2,\).*expected integer \(N,\)"),
        ({"charges": np.array([8, 6])}, r"charges int64 \(2,\)"),
        ({"positions": np.zeros((2, 5))}, r"positions float64 \(2, 5\)"),
    ],
)
def test_npz_with_the_wrong_layout_raises(tmp_path, change, reason):
    np.savez(tmp_path / "layout.npz", **{**npz_arrays(), **change})
    with pytest.raises(InputError, match=r"layout\.npz: .*" + reason):
        read_molecules(tmp_path / "layout.npz", on_error="skip")


def test_damaged_numpy_files_raise_input_error(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **npz_arrays())
    (tmp_path / "cut.npz").write_bytes(buffer.getvalue()[:200])
    np.save(tmp_path / "head.npy", geom_table()[0])
    data = (tmp_path / "head.npy").read_bytes()
    (tmp_path / "head.npy").write_bytes(data[:20] + b"(" + data[21:])  # unbalanced bracket in the header
    for name in ("cut.npz", "head.npy"):
        with pytest.raises(InputError, match=re.escape(name) + ": not a readable numpy file"):
            read_molecules(tmp_path / name, on_error="skip")


def geom_table() -> tuple[np.ndarray, np.ndarray]:
    """Three conformers (ids 0, 1, 2) of 3, 2 and 4 atoms, as EDM's build_geom_dataset writes them."""
    rows = [
        [0, 8, 0.0, 0.0, 0.1173], [0, 1, 0.0, 0.7572, -0.4692], [0, 1, 0.0, -0.7572, -0.4692],
        [1, 7, 0.0, 0.0, 0.0], [1, 7, 0.0, 0.0, 1.10],
        [2, 6, 0.0, 0.0, 0.0], [2, 8, 0.0, 0.0, 1.2], [2, 1, 0.94, 0.0, -0.54], [2, 1, -0.94, 0.0, -0.54],
    ]  # fmt: skip
    return np.array(rows, dtype=float), np.array([3, 2, 4])


def test_geom_npy_with_and_without_counts(tmp_path):
    table, counts = geom_table()
    np.save(tmp_path / "geom_drugs_30.npy", table)
    alone = read_molecules(tmp_path / "geom_drugs_30.npy")
    np.save(tmp_path / "geom_drugs_n_30.npy", counts)
    with_counts = read_molecules(tmp_path / "geom_drugs_30.npy")
    assert_same(alone, with_counts)
    assert [m.id for m in with_counts] == ["geom_drugs_30:0", "geom_drugs_30:1", "geom_drugs_30:2"]
    assert [m.numbers.tolist() for m in with_counts] == [[8, 1, 1], [7, 7], [6, 8, 1, 1]]
    np.testing.assert_array_equal(with_counts[2].positions, table[5:, 2:])
    assert [m.properties["conformer_id"] for m in with_counts] == [0, 1, 2]
    assert_same(read_molecules(tmp_path), with_counts)  # the counts file is not read as a molecule file
    with tarfile.open(tmp_path / "geom.tar", "w") as tar:
        tar.add(tmp_path / "geom_drugs_30.npy", arcname="g/geom_drugs_30.npy")
        tar.add(tmp_path / "geom_drugs_n_30.npy", arcname="g/geom_drugs_n_30.npy")
    assert [m.id for m in read_molecules(tmp_path / "geom.tar")] == [m.id for m in with_counts]


@pytest.mark.parametrize(
    ("counts", "reason"),
    [([3, 3, 3], r"geom_drugs_30\.npy: conformer 1 has 2 rows by its conformer id, but .*geom_drugs_n_30\.npy gives 3"),
     ([3, 2, 5], r"geom_drugs_30\.npy: .*geom_drugs_n_30\.npy counts 10 atoms in all, but there are 9 rows"),
     ([[3, 2, 4]], r"geom_drugs_n_30\.npy: expected a 1-D array of positive atom counts")],
)  # fmt: skip
def test_geom_counts_that_disagree_raise(tmp_path, counts, reason):
    table, _ = geom_table()
    np.save(tmp_path / "geom_drugs_30.npy", table)
    np.save(tmp_path / "geom_drugs_n_30.npy", np.array(counts))
    with pytest.raises(InputError, match=reason):
        read_molecules(tmp_path / "geom_drugs_30.npy", on_error="skip")


def test_geom_no_h_counts_file_name(tmp_path):
    table, _ = geom_table()
    np.save(tmp_path / "geom_drugs_no_h_30.npy", table)
    np.save(tmp_path / "geom_drugs_n_no_h_30.npy", np.array([9]))  # EDM's name for the no-H counts
    with pytest.raises(InputError, match="conformer 0 has 3 rows"):
        read_molecules(tmp_path / "geom_drugs_no_h_30.npy")


def test_npy_with_four_columns_raises(tmp_path):
    np.save(tmp_path / "geom_drugs_30.npy", geom_table()[0][:, 1:])
    with pytest.raises(InputError, match=r"geom_drugs_30\.npy: expected rows \[conformer_id, .*shape \(9, 4\)"):
        read_molecules(tmp_path / "geom_drugs_30.npy", on_error="skip")


# --------------------------------------------------------------------------
# plain xyz and error paths


def test_plain_xyz_frames_elements_and_comment_keys(tmp_path):
    assert [m.id for m in read_molecules(write(tmp_path / "w.xyz", WATER))] == ["w"]
    two = read_molecules(write(tmp_path / "two.xyz", WATER + METHANE + "\n\n"))
    assert [m.id for m in two] == ["two:0", "two:1"]
    assert two[1].positions[1].tolist() == [0.63, 0.63, 0.63]
    by_number = "3\n\n8 0 0 0.1173\n1 0 0.7572 -0.4692\n1 0 -0.7572 -0.4692\n"
    np.testing.assert_array_equal(read_molecules(write(tmp_path / "z.xyz", by_number))[0].numbers, [8, 1, 1])
    lower = "2\n\ncl 0 0 0\nCL 0 0 2.0\n"
    assert read_molecules(write(tmp_path / "cl.xyz", lower))[0].numbers.tolist() == [17, 17]
    ion = WATER.replace("\n\n", '\nProperties=species:S:1:pos:R:3 charge=-2 multiplicity=3 note="a b"\n', 1)
    (triplet,) = read_molecules(write(tmp_path / "ion.xyz", ion))
    assert (triplet.charge, triplet.multiplicity) == (-2, 3)
    radical = read_molecules(write(tmp_path / "r.xyz", WATER.replace("\n\n", "\ncharge=1\n", 1)))[0]
    assert (radical.charge, radical.multiplicity) == (1, 2)
    free_text = read_molecules(write(tmp_path / "f.xyz", WATER.replace("\n\n", "\n= odd comment ==\n", 1)))[0]
    assert (free_text.charge, free_text.multiplicity) == (0, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (WATER + METHANE[:-30], r"\(record 2\): line 6 declares 5 atoms, but only 4 atom lines follow \(truncated"),
        ("three\n\nO 0 0 0\n", r"\(record 1\): line 1: atom-count line 'three' is not an integer"),
        (WATER.replace("3", "2", 1), r"\(record 1\): line 1 declares 2 atoms, but line 5 is one more atom line"),
        (WATER.replace("3", "4", 1), r"\(record 1\): line 1 declares 4 atoms, but only 3 atom lines follow"),
        (WATER.replace("0.7572", "0.75x2", 1), r"\(record 1\): line 4: cannot parse '0.75x2' as a number"),
        (WATER.replace("O", "Xx", 1), r"\(record 1\): line 3: unknown element 'Xx'"),
        (WATER + METHANE.replace("0.63", "nan", 1), r"\(record 2\): non-finite .* atom\(s\) \[1\]"),
        (WATER.replace("0.7572 -0.4692", "0.0 0.1173", 1), r"\(record 1\): atoms 0 and 1 are 0.000 A apart"),
        (WATER.replace("\n\n", "\ncharge=1.5\n", 1), r"\(record 1\): line 2: charge=1.5 is not an integer"),
        (WATER.replace("\n\n", "\nmultiplicity=2\n", 1), r"\(record 1\): multiplicity 2 is impossible with 10 e"),
    ],
)
def test_bad_xyz_raises_naming_file_record_and_reason(tmp_path, text, reason):
    path = write(tmp_path / "bad.xyz", text)
    with pytest.raises(InputError, match=r"bad\.xyz " + reason):
        read_molecules(path)


@pytest.mark.parametrize("text", ["", "\n  \n", "\ufeff"])
def test_empty_file_raises_even_when_skipping(tmp_path, text):
    with pytest.raises(InputError, match=r"empty\.xyz: no molecules"):
        read_molecules(write(tmp_path / "empty.xyz", text), on_error="skip")


def test_not_utf8_raises(tmp_path):
    (tmp_path / "bin.xyz").write_bytes(b"3\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"bin\.xyz: not UTF-8 text"):
        read_molecules(tmp_path / "bin.xyz", on_error="skip")


@needs_real
def test_broken_qm9_file_names_line_and_reason(tmp_path):
    text = qm9_file("000001").read_text()
    bad = write(tmp_path / "dsgdb9nsd_000001.xyz", text.replace("1.0858041578", "1.08580415?8"))
    with pytest.raises(InputError, match=r"dsgdb9nsd_000001\.xyz \(record 1\): line 3: cannot parse '1\.08580415\?8'"):
        read_molecules(bad)
    short = write(tmp_path / "q.xyz", text.rsplit("\n", 2)[0] + "\n")
    with pytest.raises(InputError, match=r"q\.xyz \(record 1\): line 1 declares 5 atoms, so the QM9 file .* 10 lines"):
        read_molecules(short)
    header = write(tmp_path / "h.xyz", text.replace("\t6.469\t", "\t", 1))
    with pytest.raises(InputError, match=r"h\.xyz \(record 1\): line 2: expected 'gdb <index>' and 15 properties"):
        read_molecules(header)


def test_duplicate_ids_in_one_read(tmp_path):
    write(tmp_path / "m.xyz", WATER)
    write(tmp_path / "m.mol", mol_block("", ["O", "H"], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]])))
    write(tmp_path / "n.sdf", mol_block("m", ["O", "H"], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]])))
    with pytest.raises(InputError, match=r"n\.sdf \(record 1, 'm'\): duplicate id 'm' \(also .*m\.xyz \(record 1\)\)"):
        read_molecules(tmp_path)
    with pytest.warns(UserWarning, match="duplicate id 'm'"):
        molecules = read_molecules(tmp_path, on_error="skip")
    assert [m.id for m in molecules] == ["m:0", "m"]  # m.mol has no title: <stem>:<k>


def test_unsupported_missing_and_bad_on_error(tmp_path):
    with pytest.raises(InputError, match=r"x\.pdb: unsupported file type \(supported: \.xyz, \.sdf, .*\.tar\.gz"):
        read_molecules(write(tmp_path / "x.pdb", "ATOM"))
    with pytest.raises(InputError, match=r"nothing\.xyz: no such file or folder"):
        read_molecules(tmp_path / "nothing.xyz")
    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\), got 'ignore'"):
        read_molecules(tmp_path / "x.pdb", on_error="ignore")


def test_skip_keeps_the_good_frames_and_warns(tmp_path):
    path = write(tmp_path / "three.xyz", WATER + METHANE.replace("0.63", "O.63", 1) + WATER)
    with pytest.warns(UserWarning, match=r"skipped .*three\.xyz \(record 2\): line 9: cannot parse 'O\.63'"):
        molecules = read_molecules(path, on_error="skip")
    assert [m.id for m in molecules] == ["three:0", "three:2"]
    truncated = write(tmp_path / "cut.xyz", WATER + WATER + METHANE[:20])
    with pytest.warns(UserWarning, match=r"cut\.xyz \(record 3\).*truncated"):
        assert [m.id for m in read_molecules(truncated, on_error="skip")] == ["cut:0", "cut:1"]


def test_public_name():
    assert bench.data.read_molecules is read_molecules


# --------------------------------------------------------------------------
# property tests

ELEMENTS = ["H", "C", "N", "O", "F", "S", "Cl"]


@st.composite
def molecules(draw):
    """1-20 atoms on distinct points of a 3x3x3 grid (1.5 A), jittered by up to 0.3 A."""
    n = draw(st.integers(1, 20))
    cells = draw(st.lists(st.integers(0, 26), min_size=n, max_size=n, unique=True))
    jitter = draw(st.lists(st.floats(-0.3, 0.3), min_size=3 * n, max_size=3 * n))
    grid = np.array([np.unravel_index(c, (3, 3, 3)) for c in cells], dtype=float) * 1.5
    symbols = draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n))
    offset = draw(st.sampled_from([0.0, -1000.0]))  # -1000: SDF coordinate fields touch
    return symbols, grid + np.reshape(jitter, (n, 3)) + offset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(molecule=molecules())
def test_written_xyz_and_sdf_read_back(tmp_path, molecule):
    symbols, positions = molecule
    numbers = [atomic_numbers[s] for s in symbols]
    (from_xyz,) = read_molecules(write(tmp_path / "p.xyz", xyz_text(symbols, positions)))
    assert from_xyz.numbers.tolist() == numbers
    np.testing.assert_allclose(from_xyz.positions, positions, atol=1e-6, rtol=0)
    (from_sdf,) = read_molecules(write(tmp_path / "p.sdf", mol_block("p", symbols, positions)))
    assert from_sdf.numbers.tolist() == numbers
    written = np.vectorize(lambda v: float(f"{v:.4f}"))(positions)  # what the 10.4f fields hold
    np.testing.assert_allclose(from_sdf.positions, written, atol=1e-6, rtol=0)
    assert from_xyz.multiplicity == from_sdf.multiplicity == (1 if sum(numbers) % 2 == 0 else 2)


VALID = (WATER + METHANE).encode()


@st.composite
def corruptions(draw):
    kind = draw(st.sampled_from(["truncate", "character", "byte"]))
    at = draw(st.integers(0, len(VALID) - 1))
    if kind == "truncate":
        return VALID[:at]
    if kind == "byte":
        return VALID[:at] + bytes([draw(st.integers(0, 255))]) + VALID[at + 1 :]
    char = draw(st.characters(blacklist_categories=("Cs",)))
    return VALID[:at] + char.encode() + VALID[at + 1 :]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corruptions())
def test_corrupted_xyz_reads_or_raises_input_error(tmp_path, data):
    path = tmp_path / "c.xyz"
    path.write_bytes(data)
    tally(MALFORMED)
    try:
        molecules = read_molecules(path)
    except InputError as exc:
        assert "c.xyz" in str(exc)
        return
    assert 1 <= len(molecules) <= 2
    for molecule in molecules:
        assert molecule.positions.shape == (len(molecule.numbers), 3)
        assert np.all(np.isfinite(molecule.positions))



# --------------------------------------------------------------------------
# Bounded cost: limits per file, per molecule and per read


def _xyz_frames_text(n_frames: int) -> str:
    return "".join(f"2\nframe {i}\nH 0 0 0\nH 0.74 0 0\n" for i in range(n_frames))


def test_only_regular_files_are_read(tmp_path):
    (tmp_path / "zero.xyz").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="zero.xyz: not a regular file"):
        read_molecules(tmp_path / "zero.xyz")
    tally(OVERSIZED)


def test_a_file_past_the_byte_limit_is_refused_without_reading_on(tmp_path, monkeypatch):
    from bench.data import readers

    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1000)
    (tmp_path / "big.xyz").write_text(_xyz_frames_text(40))  # about 1.1 kB
    with pytest.raises(InputError, match="big.xyz: larger than 0 MiB, the limit per file"):
        read_molecules(tmp_path / "big.xyz")
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "big.xyz", arcname="big.xyz")
    with pytest.raises(InputError, match="a.tar.gz/big.xyz: larger than"):
        read_molecules(tmp_path / "a.tar.gz")
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 10**6)
    monkeypatch.setattr(readers, "MAX_LINES", 100)
    with pytest.raises(InputError, match="big.xyz: more than 100 lines, the limit per text file"):
        read_molecules(tmp_path / "big.xyz")
    tally(OVERSIZED, 3)


def test_a_compressed_npz_that_expands_past_the_limit_is_refused(tmp_path, monkeypatch):
    """A zip bomb: 8 MB of zeros compress to a few kB; the declared sizes are checked
    before any array is decompressed."""
    from bench.data import readers

    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 2**20)
    zeros = np.zeros((1000, 29, 3))
    np.savez_compressed(tmp_path / "bomb.npz", num_atoms=np.ones(1000, dtype=int),
                        charges=np.zeros((1000, 29), dtype=int), positions=zeros, junk=np.zeros(10**6))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    with pytest.raises(InputError, match=r"bomb.npz: its arrays expand to 9 MiB, more than the limit of 1 MiB per file"):
        read_molecules(tmp_path / "bomb.npz")
    tally(OVERSIZED)


def test_too_many_molecules_per_file_or_read_and_too_many_atoms_are_refused(tmp_path, monkeypatch):
    from bench.data import readers, validate

    monkeypatch.setattr(readers, "MAX_RECORDS", 3)
    (tmp_path / "four.xyz").write_text(_xyz_frames_text(4))
    with pytest.raises(InputError, match="four.xyz: more than 3 molecules, the limit per read"):
        read_molecules(tmp_path / "four.xyz")
    (tmp_path / "four.sdf").write_text("\n\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n" * 4)
    with pytest.raises(InputError, match="four.sdf: more than 3 molecules"):
        read_molecules(tmp_path / "four.sdf", on_error="skip")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        (folder / f"m{i}.xyz").write_text(_xyz_frames_text(1))
    with pytest.raises(InputError, match="this read: more than 3 molecules"):
        read_molecules(folder)
    monkeypatch.setattr(readers, "MAX_RECORDS", 10**6)
    n = validate.MAX_ATOMS + 1
    (tmp_path / "huge.xyz").write_text(f"{n}\n\n" + "".join(f"H {1.1 * i} 0 0\n" for i in range(n)))
    with pytest.raises(InputError, match=f"huge.xyz \\(record 1\\): {n} atoms, more than the limit of "
                                         f"{validate.MAX_ATOMS} per molecule"):
        read_molecules(tmp_path / "huge.xyz")
    tally(OVERSIZED, 4)
