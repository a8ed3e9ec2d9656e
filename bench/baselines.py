"""Classical baseline "denoisers": geometries a practitioner has without any model.

Each baseline maps a dataset record to start positions (Angstrom, same atom
order), so tasks treat them exactly like a denoiser's output.

* ``mmff``  - the MMFF94 start itself (a no-op; the reference every speedup is against).
* ``uff``   - the MMFF start re-optimised with UFF (RDKit, ASE BFGS, fmax 0.01 eV/A).
* ``etkdg`` - RDKit ETKDG embedding without any force-field optimisation (seeded).
* ``xtb``   - the MMFF start pre-relaxed with GFN2-xTB (BFGS, fmax 0.03 eV/A): what
  practitioners do before DFT today; a baseline for runs whose oracle is DFT.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.data.records import MoleculeRecord
from bench.errors import OracleFailure

#: Seed of the ETKDG baseline (the dataset builder's default seed).
ETKDG_SEED = 20240913


def mmff_start(record: MoleculeRecord) -> np.ndarray:
    """The stored MMFF94 start."""
    return record.start_positions.copy()


def _relaxed_with(oracle_name: str, fmax: float) -> Callable[[MoleculeRecord], np.ndarray]:
    def relaxed(record: MoleculeRecord) -> np.ndarray:
        from bench.oracles import get_oracle

        res = get_oracle(oracle_name).relax(record.to_atoms("start"), fmax=fmax, max_steps=2000, name=record.id)
        if res.status == "failed":
            raise OracleFailure(f"{record.id}: {oracle_name} pre-relaxation failed: {res.message}")
        return res.positions_ang - res.positions_ang.mean(axis=0)

    relaxed.__doc__ = f"The MMFF start relaxed with {oracle_name} (BFGS, fmax {fmax} eV/A)."
    return relaxed


uff_relaxed = _relaxed_with("uff", 0.01)
xtb_relaxed = _relaxed_with("xtb", 0.03)


def etkdg_embedding(record: MoleculeRecord) -> np.ndarray:
    """A fresh ETKDG embedding of the record's SMILES, not optimised."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(record.smiles))
    if [a.GetAtomicNum() for a in mol.GetAtoms()] != record.numbers.tolist():
        raise ValueError(f"{record.id}: SMILES atom order does not match the record")
    params = AllChem.ETKDGv3()
    params.randomSeed = ETKDG_SEED
    if AllChem.EmbedMolecule(mol, params) < 0:
        params.useRandomCoords = True  # as the dataset builder: strained cages need random starts
        if AllChem.EmbedMolecule(mol, params) < 0:
            raise OracleFailure(f"{record.id}: ETKDG embedding failed")
    pos = mol.GetConformer().GetPositions()
    return pos - pos.mean(axis=0)


BASELINES: dict[str, Callable[[MoleculeRecord], np.ndarray]] = {
    "mmff": mmff_start,
    "uff": uff_relaxed,
    "etkdg": etkdg_embedding,
    "xtb": xtb_relaxed,
}


def resolve_baseline(name: str) -> Callable[[MoleculeRecord], np.ndarray]:
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}, choose from {sorted(BASELINES)}")
    return BASELINES[name]
