"""Shared fixtures: seeds, small molecules, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

# Triton's interpreter must be chosen before any kernel module is imported: on a
# host without CUDA the Triton tests run on the CPU through it (as in CI).
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test that draws numbers is reproducible."""
    return np.random.default_rng(20240913)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not present")
    return SHARED_DATA


def molecule_from_smiles(smiles: str, seed: int = 7) -> Atoms:
    """An MMFF-optimised RDKit geometry as ASE Atoms, charge and SMILES in ``info``."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    mol = Chem.AddHs(Chem.MolFromSmiles(canonical))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    atoms = Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())
    atoms.info.update(charge=Chem.GetFormalCharge(mol), multiplicity=1, smiles=canonical)
    return atoms


@pytest.fixture
def ethanol() -> Atoms:
    return molecule_from_smiles("CCO")


@pytest.fixture
def water() -> Atoms:
    """Water at the geometry of the study's B3LYP/6-31G(2df,p) reference."""
    return Atoms("OH2", positions=[(0, 0, 0.117790), (0, 0.755453, -0.471161), (0, -0.755453, -0.471161)])


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook signature
    """The reliability figures (malformed inputs, faults, kills, lost results) of this session."""
    from tests.reliability import report

    line = report()
    if line:
        terminalreporter.write_line(line)
