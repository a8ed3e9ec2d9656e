"""EDM's bond perception and stability metrics (the EDM code's ``bond_analyze`` and ``check_stability``).

Bond order from the distance d (pm) with the tables of :mod:`bench.tasks.bond_tables`:
1 if ``d < single + 10``; 2 if also a double entry exists and ``d < double + 5``;
3 if also a triple entry exists and ``d < triple + 3``; else 0. An atom is stable
when the sum of its bond orders is an allowed valence; a molecule when all its
atoms are. EDM on QM9: 98.7 % of atoms and 82.0 % of molecules stable.

Two rules, as EDM applies them (:data:`BOND_RULES`):

* ``"qm9"``: the pair (atom i, atom j), i < j, is looked up as it comes, and RDKit
  validity uses the perceived orders.
* ``"geom"`` (GEOM-DRUGS, EDM's ``geom_predictor``): the pair is looked up in
  atom-type order (the GEOM decoder is sorted by atomic number, so the lighter
  element first: C-S finds its double-bond entry whatever the atom order), a pair
  without an entry is no bond, and RDKit validity takes every perceived bond as
  single (``limit_bonds_to_one``). On H, C, N, O, F the two rules agree in
  stability (those tables are symmetric).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from bench.tasks.bond_tables import ALLOWED_VALENCE, DOUBLE_PM, MARGINS_PM, SINGLE_PM, TRIPLE_PM
from bench.tasks.spec import Task


def bond_order(a: str, b: str, distance_pm: float) -> int:
    """EDM's bond order of elements ``a`` and ``b`` at ``distance_pm``."""
    single = SINGLE_PM.get(a, {}).get(b)
    if single is None or distance_pm >= single + MARGINS_PM["single"]:
        return 0
    double = DOUBLE_PM.get(a, {}).get(b)
    if double is None or distance_pm >= double + MARGINS_PM["double"]:
        return 1
    triple = TRIPLE_PM.get(a, {}).get(b)
    if triple is None or distance_pm >= triple + MARGINS_PM["triple"]:
        return 2
    return 3


def _threshold_table(table: dict[str, dict[str, int]], margin: int) -> np.ndarray:
    """(n_elements, n_elements) thresholds in pm (table + margin) indexed by atomic
    numbers; pairs without an entry get -inf, so no distance passes."""
    out = np.full((len(chemical_symbols), len(chemical_symbols)), -np.inf)
    for a, row in table.items():
        for b, value in row.items():
            out[atomic_numbers[a], atomic_numbers[b]] = value + margin
    return out


#: The bond tables as arrays indexed by atomic numbers: bond perception for
#: every pair at once (the phases analysis perceives bonds in ~10^5 frames).
_SINGLE, _DOUBLE, _TRIPLE = (_threshold_table(t, MARGINS_PM[k]) for t, k in
                             ((SINGLE_PM, "single"), (DOUBLE_PM, "double"), (TRIPLE_PM, "triple")))


#: EDM's bond-perception rules: ``qm9`` (its QM9 models) and ``geom`` (GEOM-DRUGS).
BOND_RULES = ("qm9", "geom")

#: The elements of EDM's QM9 decoder; a model or set with any other element is
#: judged by the GEOM rule.
QM9_ELEMENTS = frozenset({1, 6, 7, 8, 9})


def bond_rule_for(elements: Iterable[int]) -> str:
    """The rule EDM applies to molecules of these elements: ``qm9`` within H, C, N,
    O, F (the QM9 decoder), else ``geom``."""
    return "qm9" if set(int(z) for z in elements) <= QM9_ELEMENTS else "geom"


def _check_rule(rule: str) -> None:
    if rule not in BOND_RULES:
        raise ValueError(f"unknown bond rule {rule!r}; choose from {list(BOND_RULES)}")


def bond_orders(numbers: np.ndarray, positions_ang: np.ndarray, rule: str = "qm9") -> np.ndarray:
    """(n, n) symmetric matrix of bond orders (diagonal 0), :func:`bond_order`
    applied to every pair at once. The tables are not symmetric (C-S has a double
    entry, S-C none): under ``rule="qm9"`` each pair i < j is looked up as (atom i,
    atom j), under ``"geom"`` as (lighter element, heavier element)."""
    _check_rule(rule)
    z = np.asarray(numbers, dtype=int)
    d_pm = 100.0 * np.linalg.norm(positions_ang[:, None] - positions_ang[None], axis=-1)
    if rule == "geom":
        pair = (np.minimum(z[:, None], z[None, :]), np.maximum(z[:, None], z[None, :]))
    else:
        pair = (z[:, None], z[None, :])
    single = d_pm < _SINGLE[pair]
    double = single & (d_pm < _DOUBLE[pair])
    triple = double & (d_pm < _TRIPLE[pair])
    upper = np.triu(single.astype(int) + double + triple, k=1)
    return upper + upper.T


def atom_stable(numbers: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """(n,) bool: each atom's bond-order sum is one of its allowed valences."""
    valence = orders.sum(axis=1)
    out = np.zeros(len(numbers), dtype=bool)
    for i, z in enumerate(numbers):
        allowed = ALLOWED_VALENCE.get(chemical_symbols[int(z)])
        allowed = [allowed] if isinstance(allowed, int) else (allowed or [])
        out[i] = int(valence[i]) in allowed
    return out


def stability(molecules: Sequence[tuple[np.ndarray, np.ndarray]], rule: str = "qm9") -> dict[str, float]:
    """Fractions of stable atoms and of stable molecules (EDM's metrics, under ``rule``)."""
    stable = [atom_stable(numbers, bond_orders(numbers, positions, rule)) for numbers, positions in molecules]
    n_atoms = sum(len(s) for s in stable)
    return {"atom_stability": sum(int(s.sum()) for s in stable) / max(n_atoms, 1),
            "molecule_stability": sum(bool(s.all()) for s in stable) / max(len(molecules), 1)}


def to_rdkit(numbers: np.ndarray, orders: np.ndarray):
    """An RDKit molecule with EDM's perceived bonds, or None if RDKit cannot sanitize it
    (the suite decides validity here, so RDKit's own valence warnings are silenced)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.RWMol()
    for z in numbers:
        mol.AddAtom(Chem.Atom(int(z)))
    kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    for i, j in zip(*np.nonzero(np.triu(orders, k=1))):
        mol.AddBond(int(i), int(j), kinds[int(orders[i, j])])
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several types for invalid valences and kekulisation
        return None
    return mol.GetMol()


def largest_fragment_smiles(numbers: np.ndarray, positions_ang: np.ndarray, rule: str = "qm9") -> str | None:
    """Canonical SMILES (hydrogens implicit) of the largest fragment of the molecule
    EDM's perceived bonds describe (every bond single under the ``geom`` rule), or
    None when RDKit finds it invalid: EDM's validity counts a sample valid if this exists."""
    from rdkit import Chem

    orders = bond_orders(numbers, positions_ang, rule)
    mol = to_rdkit(numbers, np.minimum(orders, 1) if rule == "geom" else orders)
    if mol is None:
        return None
    frags = Chem.GetMolFrags(mol, asMols=True)
    return Chem.MolToSmiles(Chem.RemoveHs(max(frags, key=lambda m: m.GetNumAtoms())))


def generation_table(molecules: Sequence[tuple[np.ndarray, np.ndarray]], rule: str = "qm9") -> pd.DataFrame:
    """One row per generated molecule: atom count, stable-atom fraction, molecule
    stability, RDKit validity and the SMILES behind uniqueness and novelty."""
    rows = []
    for k, (numbers, positions) in enumerate(molecules):
        stable = atom_stable(numbers, bond_orders(numbers, positions, rule))
        smiles = largest_fragment_smiles(numbers, positions, rule)
        rows.append({"sample": k, "n_atoms": len(numbers), "formula": Atoms(numbers=numbers).get_chemical_formula(),
                     "frac_atoms_stable": float(stable.mean()) if len(stable) else 0.0,
                     "n_atoms_stable": int(stable.sum()), "molecule_stable": bool(stable.all()),
                     "valid": smiles is not None, "smiles": smiles or ""})
    return pd.DataFrame(rows, columns=["sample", "n_atoms", "formula", "frac_atoms_stable", "n_atoms_stable",
                                       "molecule_stable", "valid", "smiles"])


def canonical_smiles(smiles: Iterable[str]) -> set[str]:
    """RDKit canonical forms of ``smiles`` (unparsable ones left out), so that
    generated and training SMILES compare as strings."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mols = (Chem.MolFromSmiles(s) for s in smiles)
    return {Chem.MolToSmiles(m) for m in mols if m is not None}


def metrics_from_table(table: pd.DataFrame, training_canonical: set[str] | None = None) -> dict[str, float]:
    """EDM's sample-quality metrics from :func:`generation_table` rows: stability
    (atoms, molecules), validity, uniqueness among valid, novelty of the unique
    valid SMILES against ``training_canonical`` (canonical SMILES)."""
    n = max(len(table), 1)
    valid = table.loc[table["valid"], "smiles"]
    unique = set(valid)
    out = {"atom_stability": int(table["n_atoms_stable"].sum()) / max(int(table["n_atoms"].sum()), 1),
           "molecule_stability": float(table["molecule_stable"].sum()) / n,
           "validity": len(valid) / n, "uniqueness": len(unique) / max(len(valid), 1)}
    if training_canonical is not None:
        out["novelty"] = len(unique - training_canonical) / max(len(unique), 1)
    return out


def generation_metrics(molecules: Sequence[tuple[np.ndarray, np.ndarray]],
                       training_smiles: set[str] | None = None, rule: str = "qm9") -> dict[str, float]:
    """EDM's sample-quality metrics: stability (atoms, molecules), RDKit validity
    (largest fragment), uniqueness among valid, novelty against ``training_smiles``."""
    training = None if training_smiles is None else canonical_smiles(training_smiles)
    return metrics_from_table(generation_table(molecules, rule), training)


GENERATION = Task(
    "generation", "EDM's sample quality of de novo generation: stability, validity, uniqueness, novelty",
    command="generation", needs=frozenset({"denoiser"}), tables={"samples": ("method",)},
    metrics=("molecule_stability", "atom_stability", "validity", "uniqueness", "novelty"),
    leaderboard={"molecule_stability": True, "atom_stability": True, "validity": True, "uniqueness": True,
                 "novelty": True}, figures=("generation_quality",))
