"""Checks that a molecule can be used, run before any calculation.

Every check raises :class:`bench.errors.InputError` with the molecule's name and
the reason, so that a batch runner can record it and go on with the others.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase.data import chemical_symbols

from bench.errors import InputError, UnsupportedMoleculeError
from edm_core.geometry import geometry_problem


def default_multiplicity(numbers: np.ndarray, charge: int) -> int:
    """The lowest spin multiplicity compatible with the electron count (1 or 2)."""
    n_electrons = int(np.sum(numbers)) - int(charge)
    return 1 if n_electrons % 2 == 0 else 2


#: Most atoms one molecule may have (GEOM-DRUGS' largest has 181).
MAX_ATOMS = 1_000


def check_molecule(
    name: str,
    numbers: np.ndarray,
    positions: np.ndarray,
    charge: int = 0,
    multiplicity: int = 1,
    elements: Iterable[int] | None = None,
) -> None:
    """Raise :class:`InputError` if the molecule cannot be computed.

    Parameters
    ----------
    name : str
        Identifier used in error messages (molecule id, file and record).
    numbers : (n_atoms,) int array
        Atomic numbers.
    positions : (n_atoms, 3) float array, Angstrom
    charge : int
        Total formal charge.
    multiplicity : int
        Spin multiplicity 2S + 1; must have the parity of the electron count.
    elements : iterable of int, optional
        Atomic numbers the caller supports; others raise
        :class:`UnsupportedMoleculeError`.
    """
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=float)
    if numbers.ndim != 1 or len(numbers) == 0:
        raise InputError(f"{name}: a molecule needs at least one atom")
    if len(numbers) > MAX_ATOMS:
        raise InputError(f"{name}: {len(numbers)} atoms, more than the limit of {MAX_ATOMS} per molecule "
                         "(a denoiser's pair network grows with the square of the atom count)")
    if positions.shape != (len(numbers), 3):
        raise InputError(f"{name}: positions have shape {positions.shape}, expected ({len(numbers)}, 3)")
    bad = [int(z) for z in numbers if not 1 <= int(z) < len(chemical_symbols)]
    if bad:
        raise InputError(f"{name}: invalid atomic number(s) {bad}")
    if not np.all(np.isfinite(positions)):
        rows = np.unique(np.nonzero(~np.isfinite(positions))[0]).tolist()
        raise InputError(f"{name}: non-finite (NaN or inf) coordinates for atom(s) {rows}")
    if (reason := geometry_problem(positions)) is not None:
        raise InputError(f"{name}: {reason}")
    if multiplicity < 1:
        raise InputError(f"{name}: multiplicity must be >= 1, got {multiplicity}")
    n_electrons = int(np.sum(numbers)) - int(charge)
    if n_electrons < 0:
        raise InputError(f"{name}: charge {charge} leaves {n_electrons} electrons")
    if (n_electrons + multiplicity - 1) % 2 != 0:
        raise InputError(
            f"{name}: multiplicity {multiplicity} is impossible with {n_electrons} electrons "
            f"(charge {charge}); use {default_multiplicity(numbers, charge)}"
        )
    if elements is not None:
        allowed = set(int(z) for z in elements)
        unsupported = sorted(set(int(z) for z in numbers) - allowed)
        if unsupported:
            raise UnsupportedMoleculeError(
                f"{name}: element(s) {[chemical_symbols[z] for z in unsupported]} not supported; "
                f"supported: {[chemical_symbols[z] for z in sorted(allowed)]}"
            )
