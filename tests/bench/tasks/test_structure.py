"""Symmetry-aware aligned RMSD against a float64 Kabsch written here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.tasks.structure import best_rmsd
from tests.conftest import molecule_from_smiles


def kabsch_rmsd(p: np.ndarray, q: np.ndarray) -> float:
    """RMSD of p onto q after the optimal rotation and translation (float64 SVD)."""
    p, q = p - p.mean(axis=0), q - q.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(np.mean(np.sum((p @ rot - q) ** 2, axis=1))))


def test_rmsd_is_aligned_and_matches_kabsch_on_an_asymmetric_heavy_graph(rng):
    mol = molecule_from_smiles("CCO")
    ref = mol.positions
    probe = ref + rng.normal(0, 0.1, ref.shape)
    moved = probe @ Rotation.random(random_state=3).as_matrix().T + [4.0, -2.0, 1.0]
    heavy, full = best_rmsd(mol.info["smiles"], mol.numbers, moved, ref)
    idx = np.flatnonzero(mol.numbers > 1)
    assert heavy == pytest.approx(kabsch_rmsd(probe[idx], ref[idx]), abs=1e-6)
    # all atoms: the symmetry of the hydrogens can only lower it below the identity mapping
    assert full <= kabsch_rmsd(probe, ref) + 1e-9 and full > 0


def test_swapping_equivalent_atoms_costs_nothing():
    mol = molecule_from_smiles("CC")
    hs = np.flatnonzero(mol.numbers == 1)
    swapped = mol.positions.copy()
    swapped[[hs[0], hs[1]]] = swapped[[hs[1], hs[0]]]  # two hydrogens of one methyl group exchanged
    assert kabsch_rmsd(swapped, mol.positions) > 0.5
    heavy, full = best_rmsd(mol.info["smiles"], mol.numbers, swapped, mol.positions)
    assert heavy == pytest.approx(0.0, abs=1e-6) and full == pytest.approx(0.0, abs=1e-6)


def test_a_smiles_that_does_not_describe_the_atoms_gives_nan():
    mol = molecule_from_smiles("CCO")
    assert all(np.isnan(best_rmsd("CCN", mol.numbers, mol.positions, mol.positions)))
    assert all(np.isnan(best_rmsd("", mol.numbers, mol.positions, mol.positions)))
