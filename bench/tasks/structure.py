"""Structural accuracy: RMSD of a structure to the oracle ground state, as MoreRed
and the Riemannian-denoising papers report it.

The RMSD is RDKit's ``rdMolAlign.GetBestRMS``: the probe is aligned onto the
reference (Kabsch) under every symmetry-equivalent atom mapping of the molecular
graph, and the smallest RMSD is kept, so that a rotated methyl group or a swapped
pair of equivalent oxygens is not counted as an error. Heavy-atom RMSD uses the
graph without hydrogens; all-atom RMSD keeps them (the number of mappings grows
with each methyl group; :data:`MAX_MATCHES` bounds it).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Largest number of symmetry mappings tried per molecule (RDKit's ``maxMatches``).
MAX_MATCHES = 10_000


@lru_cache(maxsize=4096)
def _graphs(smiles: str, n_atoms: int) -> tuple[object, object] | None:
    """(all-atom, heavy-atom) RDKit molecules of a record's SMILES, or None when the
    SMILES does not give the record's atom count (no graph to map atoms with)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return None
    mol = Chem.AddHs(mol)
    if mol.GetNumAtoms() != n_atoms:
        return None
    return mol, Chem.RemoveHs(mol, sanitize=False)


def _with_conformer(mol: object, positions: np.ndarray) -> object:
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, (x, y, z) in enumerate(np.asarray(positions, dtype=float)):
        conf.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    mol.AddConformer(conf, assignId=True)
    return mol


def best_rmsd(smiles: str, numbers: np.ndarray, probe: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(heavy-atom, all-atom) symmetry-aware aligned RMSD of ``probe`` to ``reference``, Angstrom.

    Parameters
    ----------
    smiles : str
        The record's canonical SMILES; its atom order (``AddHs(MolFromSmiles)``) is
        the order of ``numbers`` and of the positions.
    numbers : (n_atoms,) int array
    probe, reference : (n_atoms, 3) arrays, Angstrom

    Returns NaN for both when the SMILES does not describe these atoms.
    """
    from rdkit.Chem import rdMolAlign

    numbers = np.asarray(numbers)
    graphs = _graphs(smiles, len(numbers))
    if graphs is None or [a.GetAtomicNum() for a in graphs[0].GetAtoms()] != numbers.tolist():
        return float("nan"), float("nan")
    full, heavy = graphs
    heavy_index = np.flatnonzero(numbers > 1)
    probe, reference = np.asarray(probe, dtype=float), np.asarray(reference, dtype=float)
    if len(heavy_index) < 2:  # one heavy atom: aligned, it sits on the reference's
        rmsd_heavy = 0.0
    else:
        rmsd_heavy = rdMolAlign.GetBestRMS(_with_conformer(heavy, probe[heavy_index]),
                                           _with_conformer(heavy, reference[heavy_index]), maxMatches=MAX_MATCHES)
    rmsd_all = rdMolAlign.GetBestRMS(_with_conformer(full, probe), _with_conformer(full, reference),
                                     maxMatches=MAX_MATCHES)
    return float(rmsd_heavy), float(rmsd_all)
