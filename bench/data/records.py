"""Molecule records: what the readers and the dataset loader return.

Two kinds, because a benchmark set and a user's file carry different facts:

* :class:`Molecule` (from :func:`bench.data.read_molecules`): one geometry as a
  file gives it, with the file's own properties.
* :class:`MoleculeRecord` (from :func:`bench.data.load_dataset`): a benchmark
  molecule with its classical start (MMFF94) and its oracle ground state.

Units: positions in Angstrom, energies in eV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms


def _atoms(numbers: np.ndarray, positions: np.ndarray, charge: int, multiplicity: int, **info: Any) -> Atoms:
    atoms = Atoms(numbers=np.asarray(numbers), positions=np.asarray(positions, dtype=float))
    atoms.info.update(charge=int(charge), multiplicity=int(multiplicity), **{k: v for k, v in info.items() if v})
    return atoms


@dataclass(frozen=True, eq=False)
class Molecule:
    """One molecule read from a file.

    Attributes
    ----------
    id : str
        Unique within the file or folder read (the file's own name or index).
    numbers : (n_atoms,) int array
    positions : (n_atoms, 3) float array, Angstrom
    charge : int
        Total formal charge (0 when the file does not say).
    multiplicity : int
        Spin multiplicity (lowest allowed by the electron count when not given).
    smiles : str
        SMILES when the file gives one (QM9 xyz: the relaxed SMILES), else ''.
    properties : dict
        The file's own per-molecule values (QM9: the 15 scalars in their units).
    source : str
        File (and record) it came from.
    """

    id: str
    numbers: np.ndarray
    positions: np.ndarray
    charge: int = 0
    multiplicity: int = 1
    smiles: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_atoms(self) -> Atoms:
        """ASE ``Atoms`` with charge, multiplicity and SMILES in ``atoms.info``."""
        return _atoms(self.numbers, self.positions, self.charge, self.multiplicity, smiles=self.smiles, id=self.id)


@dataclass(frozen=True, eq=False)
class MoleculeRecord:
    """One molecule of a benchmark dataset.

    Attributes
    ----------
    id : str
    smiles : str
        Canonical SMILES; the atom order is that of RDKit's
        ``AddHs(MolFromSmiles(smiles))``.
    numbers : (n_atoms,) int array
    charge, multiplicity : int
    start_positions : (n_atoms, 3) float array, Angstrom
        The classical start: RDKit ETKDG embedding optimised with MMFF94.
    ground_positions : (n_atoms, 3) float array, Angstrom
        The oracle ground state (GFN2-xTB, tight relaxation; see the set's manifest).
    start_energy, ground_energy : float, eV
        Oracle energies of the two geometries.
    split : str
        ``train``, ``valid`` or ``test``.
    """

    id: str
    smiles: str
    numbers: np.ndarray
    charge: int
    multiplicity: int
    start_positions: np.ndarray
    ground_positions: np.ndarray
    start_energy: float
    ground_energy: float
    split: str = ""

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def to_atoms(self, which: str = "start") -> Atoms:
        """ASE ``Atoms`` of the ``"start"`` or ``"ground"`` geometry, with charge,
        multiplicity, SMILES and id in ``atoms.info``."""
        if which not in ("start", "ground"):
            raise ValueError(f"which must be 'start' or 'ground', got {which!r}")
        pos = self.start_positions if which == "start" else self.ground_positions
        return _atoms(self.numbers, pos, self.charge, self.multiplicity, smiles=self.smiles, id=self.id)
