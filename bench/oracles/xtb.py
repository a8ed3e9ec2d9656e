"""GFN2-xTB, the default oracle, through one of two codes.

* ``backend="tblite"`` (default): tblite's ASE calculator, the maintained
  implementation of the GFN methods;
* ``backend="xtb-python"``: the xtb-python 22.1 API (libxtb 6.5), the code the
  study ran. Install it with ``pip install 'edm-bench[xtb-python]'`` (``make test``
  does); the two agree to about 1e-7 eV on energies (README, "Oracles").

The backend is part of the oracle's settings, so of every cache key and manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from bench.errors import SettingsError
from bench.oracles.base import Oracle, charge_and_multiplicity

#: The GFN2-xTB parametrisation covers H to Rn.
_XTB_ELEMENTS = frozenset(range(1, 87))
#: The codes that compute GFN-xTB here, and the distribution that provides each.
BACKENDS = {"tblite": "tblite", "xtb-python": "xtb"}
_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")


@dataclass(frozen=True)
class XTBSettings:
    """Settings of the xTB calculator (the codes' defaults)."""

    method: str = "GFN2-xTB"
    accuracy: float = 1.0
    electronic_temperature_k: float = 300.0
    max_iterations: int = 250
    backend: str = "tblite"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise SettingsError(f"oracle 'xtb': unknown method {self.method!r}; choose from {', '.join(_METHODS)}")
        if self.backend not in BACKENDS:
            raise SettingsError(f"oracle 'xtb': unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.backend == "xtb-python" and self.method == "IPEA1-xTB":
            raise SettingsError("oracle 'xtb': backend 'xtb-python' has no IPEA1-xTB through its ASE calculator")
        if not (math.isfinite(self.accuracy) and self.accuracy > 0):
            raise SettingsError(f"oracle 'xtb': accuracy must be a finite number > 0, got {self.accuracy}")
        if not (math.isfinite(self.electronic_temperature_k) and self.electronic_temperature_k >= 0):
            raise SettingsError("oracle 'xtb': electronic_temperature_k must be a finite number >= 0 (K), got "
                                f"{self.electronic_temperature_k}")
        if self.max_iterations < 1:
            raise SettingsError(f"oracle 'xtb': max_iterations must be >= 1, got {self.max_iterations}")


class XTBOracle(Oracle):
    """GFN2-xTB energies and forces via tblite (default) or xtb-python.

    A non-converged SCF makes either code raise; the base class turns that into
    an :class:`~bench.errors.OracleFailure`.

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
        charge, mult = charge_and_multiplicity(atoms)
        s = self.settings
        if s.backend == "xtb-python":
            try:
                from xtb.ase.calculator import XTB
            except ImportError as exc:
                raise SettingsError("oracle 'xtb': backend 'xtb-python' needs the xtb package "
                                    "(pip install 'edm-bench[xtb-python]')") from exc
            # xtb-python reads the total charge and the unpaired electrons from the
            # atoms' initial charges and magnetic moments (this copy's, not the caller's).
            charges, moments = np.zeros(len(atoms)), np.zeros(len(atoms))
            charges[0], moments[0] = charge, mult - 1
            atoms.set_initial_charges(charges)
            atoms.set_initial_magnetic_moments(moments)
            return XTB(method=s.method, accuracy=s.accuracy, electronic_temperature=s.electronic_temperature_k,
                       max_iterations=s.max_iterations)
        from tblite.ase import TBLite

        return TBLite(method=s.method, charge=charge, multiplicity=mult, accuracy=s.accuracy,
                      electronic_temperature=s.electronic_temperature_k, max_iterations=s.max_iterations,
                      verbosity=0)

    def versions(self) -> dict[str, str]:
        package = BACKENDS[self.settings.backend]
        try:
            return {package: version(package)}
        except PackageNotFoundError:
            return {package: "not installed"}
