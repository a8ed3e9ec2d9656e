"""Datasets and readers: molecules in, records out.

The lowest layer of the harness: it imports no other part of ``bench`` but the
errors, and of ``edm_core`` only :mod:`edm_core.geometry` (torch-free: the
coincident-atom check that the model's own input validation uses too). The
dataset builder, which needs the oracles, is :mod:`bench.build`, a layer above.

Public names:

* :func:`load_dataset` - a shipped (``qm9-xtb``, ``drugs-xtb``) or built benchmark set.
* :func:`read_molecules` - the user's or the original files (QM9 xyz, SDF, EDM npz, GEOM npy).
* :class:`MoleculeRecord`, :class:`Molecule` - what they return.
"""

from bench.data.dataset import MoleculeSet, load_dataset, read_manifest
from bench.data.readers import read_molecules
from bench.data.records import Molecule, MoleculeRecord

__all__ = ["load_dataset", "read_molecules", "read_manifest", "MoleculeSet", "MoleculeRecord", "Molecule"]
