"""GFN2-xTB through tblite's ASE calculator (the default oracle)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from ase import Atoms
from ase.calculators.calculator import Calculator

from bench.oracles.base import Oracle, charge_and_multiplicity

#: tblite's GFN2-xTB parametrisation covers H to Rn.
_XTB_ELEMENTS = frozenset(range(1, 87))


@dataclass(frozen=True)
class XTBSettings:
    """Settings of the tblite calculator (tblite's defaults)."""

    method: str = "GFN2-xTB"
    accuracy: float = 1.0
    electronic_temperature_k: float = 300.0
    max_iterations: int = 250

    def __post_init__(self) -> None:
        if self.method not in ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB"):
            raise ValueError(f"Unknown xTB method {self.method!r}, choose from GFN2-xTB, GFN1-xTB, IPEA1-xTB")
        if self.accuracy <= 0 or self.max_iterations < 1:
            raise ValueError("accuracy must be > 0 and max_iterations >= 1")


class XTBOracle(Oracle):
    """GFN2-xTB energies and forces via ``tblite.ase.TBLite``.

    A non-converged SCF makes tblite raise; the base class turns that into an
    :class:`~bench.errors.OracleFailure`.

    Examples
    --------
    >>> from ase.build import molecule
    >>> round(XTBOracle().single_point(molecule("H2O")).energy_ev, 3)
    -137.968
    """

    name = "xtb"
    Settings = XTBSettings
    elements = _XTB_ELEMENTS

    def make_calculator(self, atoms: Atoms) -> Calculator:
        from tblite.ase import TBLite

        charge, mult = charge_and_multiplicity(atoms)
        s = self.settings
        return TBLite(
            method=s.method,
            charge=charge,
            multiplicity=mult,
            accuracy=s.accuracy,
            electronic_temperature=s.electronic_temperature_k,
            max_iterations=s.max_iterations,
            verbosity=0,
        )

    def versions(self) -> dict[str, str]:
        return {"tblite": version("tblite")}
