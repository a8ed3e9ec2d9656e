"""Unit conversions used at the edges (inside, energies are eV and lengths Angstrom).

Values from ASE's CODATA 2014 set so that every part of the suite and ASE agree.
"""

from ase import units as _u

#: kcal/mol per eV (23.0605...).
EV_TO_KCAL_MOL: float = 1.0 / (_u.kcal / _u.mol)
#: eV per Hartree.
HARTREE_TO_EV: float = _u.Hartree
#: Angstrom per Bohr.
BOHR_TO_ANG: float = _u.Bohr
