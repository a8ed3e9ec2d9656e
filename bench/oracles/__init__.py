"""Oracles: ASE calculators for energies and forces, with cached relaxations.

``get_oracle(name, **settings)`` is the one entry point; the registry is a plain
dict of ``"module:Class"`` strings so that listing oracles imports nothing heavy
(tblite and pyscf load inside the factories).

======  ======================================  =========================
name    method                                  code
======  ======================================  =========================
xtb     GFN2-xTB (default)                      tblite
dft     B3LYP/6-31G(2df,p), as QM9              pyscf (gpu4pyscf on CUDA)
mmff    MMFF94                                  RDKit
uff     UFF                                     RDKit
======  ======================================  =========================
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.errors import SettingsError
from bench.oracles.base import OPTIMIZERS, Oracle, RelaxResult, SinglePointResult, resolve_optimizer

ORACLES: dict[str, str] = {
    "xtb": "bench.oracles.xtb:XTBOracle",
    "dft": "bench.oracles.dft:DFTOracle",
    "mmff": "bench.oracles.forcefield:MMFFOracle",
    "uff": "bench.oracles.forcefield:UFFOracle",
}


def get_oracle(name: str, **settings: Any) -> Oracle:
    """Build the oracle ``name`` with ``settings`` (and optionally ``store=ResultStore``).

    Raises
    ------
    SettingsError
        For an unknown name (the message lists the choices) or bad settings
        (a ``ValueError`` too).
    """
    if name not in ORACLES:
        raise SettingsError(f"--oracle: unknown oracle {name!r}; choose from {sorted(ORACLES)}")
    module, cls = ORACLES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**settings)


__all__ = ["get_oracle", "ORACLES", "Oracle", "RelaxResult", "SinglePointResult", "OPTIMIZERS", "resolve_optimizer"]
