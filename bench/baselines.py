"""Classical baseline "denoisers": geometries a practitioner has without any model.

Each baseline maps a dataset record and its oracle ground state to start
positions (Angstrom, same atom order), so tasks treat them exactly like a
denoiser's output.

* ``mmff``  - the MMFF94 start itself (a no-op; the reference every speedup is against).
* ``uff``   - the MMFF start re-optimised with UFF (RDKit, ASE BFGS, fmax 0.01 eV/A).
* ``etkdg`` - RDKit ETKDG embedding without any force-field optimisation (seeded).
* ``xtb``   - the MMFF start pre-relaxed with GFN2-xTB (BFGS, fmax 0.03 eV/A): what
  practitioners do before DFT today; a baseline for runs whose oracle is DFT
  (refused when the oracle is xTB itself: it would be the answer, at no cost).
* ``ceiling`` - the oracle's own ground state with seeded Gaussian noise of
  :data:`CEILING_SIGMA_ANG` per coordinate: the best a denoiser could do, through
  the same pipeline, so that every table shows how far from it a method is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from bench.data.records import MoleculeRecord
from bench.errors import InputError, OracleFailure

#: Seed of the ETKDG baseline (the dataset builder's default seed).
ETKDG_SEED = 20240913


#: Per-coordinate standard deviation of the ceiling row's noise on the ground state, Angstrom.
CEILING_SIGMA_ANG = 0.005

#: A baseline: (record, the oracle's ground-state positions) -> start positions.
Baseline = Callable[[MoleculeRecord, np.ndarray], np.ndarray]


def mmff_start(record: MoleculeRecord, ground: np.ndarray) -> np.ndarray:
    """The stored MMFF94 start."""
    return record.start_positions.copy()


def _relaxed_with(oracle_name: str, fmax: float) -> Baseline:
    def relaxed(record: MoleculeRecord, ground: np.ndarray) -> np.ndarray:
        from bench.oracles import get_oracle

        res = get_oracle(oracle_name).relax(record.to_atoms("start"), fmax=fmax, max_steps=2000, name=record.id)
        if res.status == "failed":
            raise OracleFailure(f"{record.id}: {oracle_name} pre-relaxation failed: {res.message}")
        return res.positions_ang - res.positions_ang.mean(axis=0)

    relaxed.__doc__ = f"The MMFF start relaxed with {oracle_name} (BFGS, fmax {fmax} eV/A)."
    return relaxed


uff_relaxed = _relaxed_with("uff", 0.01)
xtb_relaxed = _relaxed_with("xtb", 0.03)


def etkdg_embedding(record: MoleculeRecord, ground: np.ndarray) -> np.ndarray:
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


def perturbed_ground(record: MoleculeRecord, ground: np.ndarray) -> np.ndarray:
    """The oracle ground state plus N(0, CEILING_SIGMA_ANG^2) on every coordinate,
    seeded by the molecule's id (the same noise in every run), centred."""
    seed = int.from_bytes(hashlib.sha256(record.id.encode()).digest()[:8], "little")
    pos = np.asarray(ground, dtype=float) + np.random.default_rng(seed).normal(0.0, CEILING_SIGMA_ANG, ground.shape)
    return pos - pos.mean(axis=0)


BASELINES: dict[str, Baseline] = {
    "mmff": mmff_start,
    "uff": uff_relaxed,
    "etkdg": etkdg_embedding,
    "xtb": xtb_relaxed,
    "ceiling": perturbed_ground,
}


#: Baselines that pre-relax the start with an oracle, and that oracle's name.
PRE_RELAXATIONS = {"uff": "uff", "xtb": "xtb"}


def resolve_baseline(name: str, oracle: str | None = None) -> Baseline:
    """The baseline called ``name``; refuses a pre-relaxation with the run's own oracle."""
    if name not in BASELINES:
        raise InputError(f"--methods: unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if oracle is not None and PRE_RELAXATIONS.get(name) == oracle:
        raise InputError(f"--methods: baseline {name!r} is a pre-relaxation with the run's oracle {oracle!r} itself "
                         "(speedup 1 at an uncounted cost); use it with another oracle, e.g. --oracle dft")
    return BASELINES[name]
