"""A test oracle that fails on request: the reliability faults, injected one molecule at a time.

It lives in an importable module (not in a test file) because worker processes
and Dask workers rebuild the oracle from its class, by reference.

The fault travels with the molecule, in ``atoms.info``, so that one batch can
mix good and failing molecules:

``fault``
    ``"raise"`` (an exception inside the QC code), ``"scf"`` (SCF not
    converged), ``"nan-forces"``, ``"inf-energy"``, ``"kill"`` (the worker
    process is SIGKILLed), ``"kill-once"`` (SIGKILLed the first time only:
    ``marker`` names a file that records it), ``"refuse"`` (the calculator
    cannot be built for this molecule: an :class:`UnsupportedMoleculeError`),
    ``"no-calculator"`` (the calculator cannot be built at all: an
    :class:`OracleFailure`).
``fault_at``
    The energy-and-forces evaluation (counted from 1) that fails; 3 fails a
    relaxation after two steps.

The energies are ASE's EMT plus ``100 * charge + 10 * multiplicity`` eV (the
forces are EMT's): what reached the calculator can be read off the energy.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

from bench.errors import OracleFailure, UnsupportedMoleculeError
from bench.oracles.base import Oracle, charge_and_multiplicity

FAULTS = ("raise", "scf", "nan-forces", "inf-energy", "kill", "kill-once", "refuse", "no-calculator")


def charge_offset_ev(charge: int, multiplicity: int) -> float:
    """The energy the fault oracle adds for a molecule's charge and multiplicity."""
    return 100.0 * charge + 10.0 * multiplicity


class FaultyEMT(EMT):
    """EMT that fails as told at one evaluation."""

    def __init__(self, fault: str, fault_at: int, marker: str, offset_ev: float) -> None:
        super().__init__()
        self.fault, self.fault_at, self.marker, self.offset_ev = fault, fault_at, marker, offset_ev
        self.n_calls = 0

    def calculate(self, *args: Any, **kwargs: Any) -> None:
        super().calculate(*args, **kwargs)
        self.results["energy"] += self.offset_ev
        self.results["free_energy"] = self.results["energy"]
        self.n_calls += 1
        if self.n_calls == self.fault_at:
            self._fail()

    def _fail(self) -> None:
        if self.fault == "raise":
            raise RuntimeError("injected: segmentation fault in the QC code")
        if self.fault == "scf":
            raise OracleFailure("SCF not converged in 2 cycles (injected)")
        if self.fault == "nan-forces":
            self.results["forces"] = self.results["forces"] * np.nan
        elif self.fault == "inf-energy":
            self.results["energy"] = np.inf
        elif self.fault == "kill" or (self.fault == "kill-once" and not Path(self.marker).exists()):
            if self.fault == "kill-once":
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class FaultSettings:
    """No settings: the faults travel with the molecules."""


class FaultOracle(Oracle):
    """EMT energies with the fault of ``atoms.info["fault"]`` injected."""

    name = "fault-test"
    Settings = FaultSettings

    def make_calculator(self, atoms: Atoms) -> Calculator:
        fault = atoms.info.get("fault", "")
        if fault == "refuse":
            raise UnsupportedMoleculeError("fault-test has no parameters for this molecule (injected)")
        if fault == "no-calculator":
            raise OracleFailure("fault-test: the calculator could not be started (injected)")
        offset = charge_offset_ev(*charge_and_multiplicity(atoms))
        return FaultyEMT(fault, int(atoms.info.get("fault_at", 1)), str(atoms.info.get("marker", "")), offset)


def with_fault(atoms: Atoms, fault: str, fault_at: int = 1, marker: str = "") -> Atoms:
    """A copy of ``atoms`` that fails as told in :class:`FaultOracle`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}, choose from {FAULTS}")
    out = atoms.copy()
    out.info.update(fault=fault, fault_at=fault_at, marker=marker)
    return out
