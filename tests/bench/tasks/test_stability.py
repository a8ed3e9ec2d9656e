"""EDM's bond perception and stability on known molecules, and the tables against the spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.tasks import bond_tables
from bench.tasks.stability import atom_stable, bond_order, bond_orders, stability
from tests.conftest import molecule_from_smiles


def test_tables_equal_the_spec_json(shared_data):
    spec = json.loads((shared_data.parent / "docs" / "edm_bond_tables.json").read_text())
    assert bond_tables.SINGLE_PM == spec["single"] and bond_tables.DOUBLE_PM == spec["double"]
    assert bond_tables.TRIPLE_PM == spec["triple"] and bond_tables.ALLOWED_VALENCE == spec["allowed_valence"]
    assert bond_tables.MARGINS_PM == spec["margins_pm"]


def test_bond_order_thresholds():
    assert bond_order("C", "C", 153.0) == 1 and bond_order("C", "C", 164.0) == 0
    assert bond_order("C", "C", 138.9) == 2 and bond_order("C", "C", 139.0) == 1  # double 134 + 5
    assert bond_order("C", "C", 122.9) == 3 and bond_order("C", "C", 123.0) == 2  # triple 120 + 3
    assert bond_order("H", "Xe", 50.0) == 0  # no table entry: no bond


@pytest.mark.parametrize("smiles", ["C", "O", "CCO", "C=C", "C#C", "C=O", "CC(=O)N", "C#N", "FC(F)F"])
def test_mmff_geometries_of_known_molecules_are_stable(smiles):
    atoms = molecule_from_smiles(smiles)
    orders = bond_orders(atoms.numbers, atoms.positions)
    assert atom_stable(atoms.numbers, orders).all(), smiles


def test_a_stretched_bond_breaks_stability():
    atoms = molecule_from_smiles("CCO")
    pos = atoms.positions.copy()
    o = int(np.nonzero(atoms.numbers == 8)[0][0])
    pos[o] += (pos[o] - pos[1]) * 0.8  # pull the O far out
    result = stability([(atoms.numbers, atoms.positions), (atoms.numbers, pos)])
    assert result["molecule_stability"] == 0.5
    assert 0.5 < result["atom_stability"] < 1.0


def test_generation_metrics_on_known_molecules():
    from bench.tasks.stability import generation_metrics

    mols = [molecule_from_smiles(s) for s in ("CCO", "CCO", "C=C", "CC(=O)N")]
    samples = [(a.numbers, a.positions) for a in mols]
    methane = molecule_from_smiles("C")
    ch5 = np.vstack([methane.positions, methane.positions[0] - 1.09 * methane.positions[1]
                     / np.linalg.norm(methane.positions[1] - methane.positions[0])])
    samples.append((np.array([6, 1, 1, 1, 1, 1]), ch5))  # a five-bonded carbon: unstable and invalid
    m = generation_metrics(samples, training_smiles={"OCC", "C=C"})
    assert m["molecule_stability"] == pytest.approx(4 / 5)
    assert m["validity"] == pytest.approx(4 / 5)
    assert m["uniqueness"] == pytest.approx(3 / 4)  # ethanol twice
    assert m["novelty"] == pytest.approx(1 / 3)  # only the amide is new
