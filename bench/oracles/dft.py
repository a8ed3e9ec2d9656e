"""B3LYP/6-31G(2df,p), the level of theory of QM9, through pyscf or Psi4.

Defaults follow the study: the VWN-RPA form of B3LYP (``b3lypg``, as Gaussian
and Psi4 use), pyscf's ``6-31G(2df,p)`` (not basis_set_exchange's, which differs
in the hydrogen p shell), spherical functions, tight SCF. Closed shells use RKS,
open shells UKS.

Backends (``backend``): ``pyscf`` (default; on a CUDA host with gpu4pyscf,
``device="auto"`` runs the same calculation on the GPU) and ``psi4``, the code the
study ran: the ``psi4`` command (Debian's package, or a conda Psi4, which installs
the same command) runs an input that this module writes, with the basis set
written from pyscf's in Gaussian-94 format so that both codes use one basis. The
same settings object is translated per code; a setting that Psi4 cannot honour
is refused (:class:`~bench.errors.SettingsError`). Psi4's input and output files
are kept in :func:`psi4_files` (one folder per calculation).

An SCF that does not converge within ``max_cycle``, a Psi4 that exits with an
error or is not installed raise :class:`~bench.errors.OracleFailure`; it is
recorded as a failure with its message, never as a number.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from bench.errors import OracleFailure, SettingsError
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
    backend: str = "pyscf"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "gpu"):
            raise SettingsError(f"oracle 'dft': unknown device {self.device!r}; choose from auto, cpu, gpu")
        if not 0 <= self.grid_level <= 9:
            raise SettingsError(f"oracle 'dft': grid_level must be in 0..9, got {self.grid_level}")
        if not self.conv_tol_hartree > 0 or self.max_cycle < 1:
            raise SettingsError("oracle 'dft': conv_tol_hartree must be > 0 and max_cycle >= 1")
        if self.backend not in ("pyscf", "psi4"):
            raise SettingsError(f"oracle 'dft': unknown backend {self.backend!r}; choose from pyscf, psi4")
        if self.backend == "psi4":
            if self.xc not in PSI4_FUNCTIONALS:
                raise SettingsError(f"oracle 'dft': backend 'psi4' cannot run xc {self.xc!r} as pyscf defines it; "
                                    f"choose from {sorted(PSI4_FUNCTIONALS)}")
            if self.grid_level not in PSI4_GRIDS:
                raise SettingsError(f"oracle 'dft': backend 'psi4' has no grid matching pyscf's grid_level "
                                    f"{self.grid_level}; choose from {sorted(PSI4_GRIDS)}")
            if self.device == "gpu":
                raise SettingsError("oracle 'dft': backend 'psi4' runs on the CPU only (device 'gpu' is pyscf's)")


#: pyscf functional name -> the same functional in Psi4 (B3LYP with VWN-RPA is Psi4's ``b3lyp``).
PSI4_FUNCTIONALS = {"b3lypg": "b3lyp"}
#: pyscf grid level -> Psi4's (radial, spherical) points per atom of similar size.
PSI4_GRIDS = {3: (75, 302), 4: (99, 590), 5: (150, 974)}


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


def psi4_files() -> Path:
    """Where Psi4's input and output files are kept: ``$EDM_BENCH_PSI4_DIR``, or
    ``runs/psi4`` beside the default results store."""
    return Path(os.environ.get("EDM_BENCH_PSI4_DIR", "runs/psi4"))


def gaussian94_basis(basis: str, elements: set[int]) -> str:
    """pyscf's ``basis`` for ``elements`` in Gaussian-94 format (one block per element;
    a generally contracted shell is written as one shell per contraction)."""
    from pyscf import gto

    lines = []
    for z in sorted(elements):
        symbol = chemical_symbols[z]
        lines += ["****", f"{symbol} 0"]
        for shell in gto.basis.load(basis, symbol):
            l, primitives = shell[0], np.array(shell[1:], dtype=float)
            for column in range(1, primitives.shape[1]):
                used = primitives[primitives[:, column] != 0]
                lines.append(f"{'SPDFGHI'[l]} {len(used)} 1.00")
                lines += [f"  {e:.10e}  {c:.10e}" for e, c in zip(used[:, 0], used[:, column])]
    return "\n".join([*lines, "****"])


def psi4_input(settings: DFTSettings, numbers: np.ndarray, positions: np.ndarray, charge: int,
               multiplicity: int) -> str:
    """A Psi4 input (psithon) for the energy and gradient of one geometry, with the
    settings translated; it writes ``result.json`` (Hartree, Hartree/bohr)."""
    s = settings
    radial, spherical = PSI4_GRIDS[s.grid_level]
    atoms = "\n".join(f"{chemical_symbols[int(z)]} {x:.10f} {y:.10f} {w:.10f}" for z, (x, y, w) in
                      zip(numbers, positions))
    return f"""memory 2 GB
molecule {{
{charge} {multiplicity}
{atoms}
units angstrom
symmetry c1
no_reorient
no_com
}}
basis {{
assign edmbench
[ edmbench ]
{"cartesian" if s.cart else "spherical"}
{gaussian94_basis(s.basis, set(int(z) for z in numbers))}
}}
set {{
  reference {"rks" if multiplicity == 1 else "uks"}
  scf_type {"df" if s.density_fit else "pk"}
  e_convergence {s.conv_tol_hartree:g}
  d_convergence {max(s.conv_tol_hartree ** 0.5 / 10, 1e-10):g}
  maxiter {s.max_cycle}
  fail_on_maxiter true
  dft_radial_points {radial}
  dft_spherical_points {spherical}
}}
g, wfn = gradient("{PSI4_FUNCTIONALS[s.xc]}", return_wfn=True)
import json
with open("result.json", "w") as handle:
    json.dump({{"energy": wfn.energy(), "gradient": g.np.tolist()}}, handle)
"""


class Psi4Calculator(Calculator):
    """ASE calculator that runs the ``psi4`` command on an input it writes.

    Each calculation runs in its own folder under :func:`psi4_files` (named by
    the input's hash), and the folder is kept: ``input.dat``, ``output.dat`` and
    ``result.json``.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, settings: DFTSettings, charge: int, multiplicity: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.charge, self.multiplicity = settings, charge, multiplicity

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        command = shutil.which("psi4")
        if command is None:
            raise OracleFailure("dft: backend 'psi4' needs Psi4's psi4 command on PATH (apt-get install psi4, or "
                                "a conda Psi4)")
        text = psi4_input(self.settings, self.atoms.numbers, self.atoms.positions, self.charge, self.multiplicity)
        folder = psi4_files() / hashlib.sha256(text.encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "input.dat").write_text(text)
        (folder / "result.json").unlink(missing_ok=True)
        threads = os.environ.get("OMP_NUM_THREADS", "1")
        try:
            run = subprocess.run([command, "-n", threads, "input.dat", "output.dat"], cwd=folder, capture_output=True,
                                 text=True, timeout=24 * 3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OracleFailure(f"dft: psi4 did not run ({exc}); files in {folder}") from exc
        result = folder / "result.json"
        if run.returncode != 0 or not result.is_file():
            output = (folder / "output.dat").read_text(errors="replace") if (folder / "output.dat").is_file() else ""
            reason = "SCF not converged" if "SCFConvergenceError" in output + run.stderr else \
                f"exit status {run.returncode}"
            tail = (run.stderr.strip() or output.strip()).splitlines()[-3:]
            raise OracleFailure(f"dft: psi4 failed ({reason}): {' | '.join(tail)}; files in {folder}")
        doc = json.loads(result.read_text())
        self.results["energy"] = float(doc["energy"]) * HARTREE_TO_EV
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = -np.asarray(doc["gradient"], dtype=float) * HARTREE_TO_EV / BOHR_TO_ANG


@functools.lru_cache(maxsize=1)
def psi4_version() -> str:
    """The version the ``psi4`` command reports, or why there is none (asked once per process)."""
    command = shutil.which("psi4")
    if command is None:
        return "not installed"
    try:
        with tempfile.TemporaryDirectory() as folder:  # psi4 leaves timer.dat in its working folder
            return subprocess.run([command, "--version"], cwd=folder, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"


class DFTOracle(Oracle):
    """B3LYP/6-31G(2df,p) energies and forces with pyscf (gpu4pyscf on CUDA).

    About 40-90 s per gradient for a QM9 molecule on 2 CPU cores: run it on a
    few molecules, on Dask, or on a GPU.
    """

    name = "dft"
    Settings = DFTSettings

    def make_calculator(self, atoms: Atoms) -> Calculator:
        charge, mult = charge_and_multiplicity(atoms)
        if self.settings.backend == "psi4":
            return Psi4Calculator(self.settings, charge, mult)
        return PySCFCalculator(self.settings, charge, mult)

    def versions(self) -> dict[str, str]:
        # the basis set is pyscf's in both backends
        out = {"pyscf": version("pyscf")}
        if self.settings.backend == "psi4":
            out["psi4"] = psi4_version()
        try:
            out["gpu4pyscf"] = version("gpu4pyscf")
        except PackageNotFoundError:
            pass
        return out
