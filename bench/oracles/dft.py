"""B3LYP/6-31G(2df,p), the level of theory of QM9, through pyscf.

Defaults follow PROTOCOLS.md: the VWN-RPA form of B3LYP (``b3lypg``, as Gaussian
and Psi4 use), pyscf's ``6-31G(2df,p)`` (not basis_set_exchange's, which differs
in the hydrogen p shell), spherical functions, tight SCF. Closed shells use RKS,
open shells UKS. On a CUDA host with gpu4pyscf installed, ``device="auto"`` runs
the same calculation on the GPU.

An SCF that does not converge within ``max_cycle`` raises
:class:`~bench.errors.OracleFailure`; it is recorded as a failure, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from bench.errors import OracleFailure
from bench.oracles.base import Oracle, charge_and_multiplicity
from bench.units import BOHR_TO_ANG, HARTREE_TO_EV


@dataclass(frozen=True)
class DFTSettings:
    """pyscf settings; every field is part of the result's identity."""

    xc: str = "b3lypg"
    basis: str = "6-31g(2df,p)"
    cart: bool = False
    grid_level: int = 3
    conv_tol_hartree: float = 1e-9
    max_cycle: int = 100
    density_fit: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"Unknown device {self.device!r}, choose from auto, cpu, gpu")
        if not 0 <= self.grid_level <= 9:
            raise ValueError(f"grid_level must be in 0..9, got {self.grid_level}")


def gpu4pyscf_available() -> bool:
    """Whether gpu4pyscf is importable and sees a CUDA device (probed on call)."""
    try:
        import cupy

        import gpu4pyscf  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class PySCFCalculator(Calculator):
    """ASE calculator for a pyscf Kohn-Sham calculation (energy and forces).

    The density matrix of the previous geometry seeds the next SCF, which
    roughly halves the SCF cycles along a relaxation.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, settings: DFTSettings, charge: int, multiplicity: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.charge = charge
        self.multiplicity = multiplicity
        self._dm: Any = None
        self.use_gpu = settings.device == "gpu" or (settings.device == "auto" and gpu4pyscf_available())

    def build_scf(self, atoms: Atoms) -> Any:
        """The pyscf mean-field object for ``atoms`` (not yet run)."""
        from pyscf import dft, gto

        s = self.settings
        mol = gto.M(
            atom=[(int(z), tuple(p)) for z, p in zip(atoms.numbers, atoms.positions)],
            unit="Angstrom", basis=s.basis, charge=self.charge, spin=self.multiplicity - 1,
            cart=s.cart, verbose=0,
        )
        mf = dft.RKS(mol) if self.multiplicity == 1 else dft.UKS(mol)
        mf.xc = s.xc
        mf.grids.level = s.grid_level
        mf.conv_tol = s.conv_tol_hartree
        mf.max_cycle = s.max_cycle
        if s.density_fit:
            mf = mf.density_fit()
        return mf.to_gpu() if self.use_gpu else mf

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        mf = self.build_scf(self.atoms)
        energy = mf.kernel(dm0=self._dm)
        if not mf.converged:
            raise OracleFailure(f"dft: SCF not converged in {self.settings.max_cycle} cycles (last E = {energy} Ha)")
        grad = np.asarray(mf.nuc_grad_method().kernel())
        if hasattr(grad, "get"):  # cupy array from gpu4pyscf
            grad = grad.get()
        self._dm = mf.make_rdm1()
        self.results["energy"] = float(energy) * HARTREE_TO_EV
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = -np.asarray(grad, dtype=float) * HARTREE_TO_EV / BOHR_TO_ANG


class DFTOracle(Oracle):
    """B3LYP/6-31G(2df,p) energies and forces with pyscf (gpu4pyscf on CUDA).

    About 40-90 s per gradient for a QM9 molecule on 2 CPU cores: run it on a
    few molecules, on Dask, or on a GPU.
    """

    name = "dft"
    Settings = DFTSettings

    def make_calculator(self, atoms: Atoms) -> Calculator:
        charge, mult = charge_and_multiplicity(atoms)
        return PySCFCalculator(self.settings, charge, mult)

    def versions(self) -> dict[str, str]:
        out = {"pyscf": version("pyscf")}
        try:
            out["gpu4pyscf"] = version("gpu4pyscf")
        except PackageNotFoundError:
            pass
        return out
