"""RDKit force fields (MMFF94, UFF) as ASE calculators: the classical baselines.

A force field needs bonds. When ``atoms.info["smiles"]`` is given and its
explicit-hydrogen RDKit molecule has the same atoms in the same order (as every
edm-bench dataset record does), its topology is used; otherwise bonds are
perceived from the geometry with RDKit's ``rdDetermineBonds`` and the charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from bench.errors import OracleFailure, UnsupportedMoleculeError
from bench.oracles.base import Oracle, charge_and_multiplicity
from bench.units import EV_TO_KCAL_MOL


def rdkit_molecule(atoms: Atoms) -> Any:
    """An RDKit molecule (explicit H, one conformer) with the atoms of ``atoms`` in order.

    Raises
    ------
    UnsupportedMoleculeError
        If no bond topology can be found for the geometry.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    charge, _ = charge_and_multiplicity(atoms)
    mol = None
    smiles = atoms.info.get("smiles")
    if smiles:
        template = Chem.MolFromSmiles(smiles)
        if template is not None:
            template = Chem.AddHs(template)
            if [a.GetAtomicNum() for a in template.GetAtoms()] == atoms.numbers.tolist():
                mol = Chem.Mol(template)
    if mol is None:
        xyz = f"{len(atoms)}\n\n" + "\n".join(
            f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)
        )
        mol = Chem.MolFromXYZBlock(xyz)
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=charge)
        except Exception as exc:
            raise UnsupportedMoleculeError(f"cannot perceive bonds for a force field ({exc})") from exc
    mol.RemoveAllConformers()
    conf = Chem.Conformer(len(atoms))
    for i, p in enumerate(atoms.positions):
        conf.SetAtomPosition(i, p.tolist())
    mol.AddConformer(conf, assignId=True)
    return mol


class ForceFieldCalculator(Calculator):
    """ASE calculator around an RDKit force field (energy in eV, forces in eV/A)."""

    implemented_properties = ["energy", "forces"]
    default_parameters = {"variant": "MMFF94"}

    def __init__(self, mol: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from rdkit.Chem import AllChem

        variant = self.parameters["variant"]
        if variant.startswith("MMFF"):
            props = AllChem.MMFFGetMoleculeProperties(mol, mmffVariant=variant)
            if props is None:
                raise UnsupportedMoleculeError(f"{variant} has no parameters for this molecule")
            self._ff = AllChem.MMFFGetMoleculeForceField(mol, props)
        else:
            if not AllChem.UFFHasAllMoleculeParams(mol):
                raise UnsupportedMoleculeError("UFF has no parameters for this molecule")
            self._ff = AllChem.UFFGetMoleculeForceField(mol)
        if self._ff is None:
            raise UnsupportedMoleculeError(f"{variant}: RDKit could not set up the force field")

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        pos = self.atoms.positions.ravel().tolist()
        energy = self._ff.CalcEnergy(pos)
        grad = np.asarray(self._ff.CalcGrad(pos)).reshape(-1, 3)
        self.results["energy"] = energy / EV_TO_KCAL_MOL
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = -grad / EV_TO_KCAL_MOL


@dataclass(frozen=True)
class ForceFieldSettings:
    """Which RDKit force field (``MMFF94``, ``MMFF94s`` or ``UFF``)."""

    variant: str = "MMFF94"

    def __post_init__(self) -> None:
        if self.variant not in ("MMFF94", "MMFF94s", "UFF"):
            raise ValueError(f"Unknown force field {self.variant!r}, choose from MMFF94, MMFF94s, UFF")


class _ForceFieldOracle(Oracle):
    Settings = ForceFieldSettings

    def make_calculator(self, atoms: Atoms) -> Calculator:
        _, mult = charge_and_multiplicity(atoms)
        if mult != 1:
            raise UnsupportedMoleculeError(f"{self.name}: open-shell molecules (multiplicity {mult}) are not supported")
        try:
            return ForceFieldCalculator(rdkit_molecule(atoms), variant=self.settings.variant)
        except UnsupportedMoleculeError:
            raise
        except Exception as exc:
            raise OracleFailure(f"{self.name}: {exc}") from exc

    def check(self, atoms: Atoms, name: str = "molecule") -> None:
        super().check(atoms, name)
        _, mult = charge_and_multiplicity(atoms)
        if mult != 1:
            raise UnsupportedMoleculeError(
                f"{name}: {self.name} treats closed-shell molecules only (multiplicity {mult})")

    def versions(self) -> dict[str, str]:
        return {"rdkit": version("rdkit")}


class MMFFOracle(_ForceFieldOracle):
    """MMFF94 (RDKit) energies and forces."""

    name = "mmff"

    def __init__(self, store: Any = None, executor: Any = None, variant: str = "MMFF94") -> None:
        super().__init__(store, executor, variant=variant)


class UFFOracle(_ForceFieldOracle):
    """UFF (RDKit) energies and forces."""

    name = "uff"

    def __init__(self, store: Any = None, executor: Any = None, variant: str = "UFF") -> None:
        super().__init__(store, executor, variant=variant)
