"""Stability and validity of every method's structure, by EDM's bond rule for the dataset.

EDM scores generated molecules by perceiving bonds from distances and asking whether
every atom has an allowed valence (stability) and whether RDKit accepts the bonding
(validity). The same reading of a *relaxed* structure says whether a denoiser keeps
the molecule a chemist would draw: a row per (molecule, method, seed) of the start
each method hands to the oracle. One rule serves the whole run, chosen from the
dataset's elements (:func:`bench.tasks.stability.bond_rule_for`: EDM's QM9 rule
within H, C, N, O, F, its GEOM rule, single-bond margins and single-bond validity,
for drug-like sets), so that every method is read the same way.

The metrics (:mod:`bench.metrics`: ``output_atom_stability``,
``output_molecule_stability``, ``output_validity``) apply the suite's failure rule: a
method whose output failed (a row with status ``output_failed``, read as no stable
atom) takes the MMFF start's reading of that molecule, and the molecule counts. The
ground state's own reading (``ground_molecule_stable``) is in every row, for scale:
under the GEOM rule many real drug-like ground states are not "stable".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.columns import Col, Status
from bench.tasks.spec import RunContext, Task
from bench.tasks.stability import atom_stable, bond_orders, bond_rule_for, largest_fragment_smiles

COLUMNS = (Col.ID, Col.METHOD, Col.SEED, Col.START_STEP, Col.STATUS, Col.N_ATOMS, "bond_rule",
           Col.N_ATOMS_STABLE, Col.MOLECULE_STABLE, Col.VALID, "ground_molecule_stable")


def read_structure(numbers: np.ndarray, positions: np.ndarray, rule: str) -> tuple[int, bool, bool]:
    """(stable atoms, molecule stable, RDKit-valid) of one structure under ``rule``."""
    stable = atom_stable(numbers, bond_orders(numbers, positions, rule))
    return int(stable.sum()), bool(stable.all()), largest_fragment_smiles(numbers, positions, rule) is not None


def structure_stability(ctx: RunContext) -> dict[str, pd.DataFrame]:
    """The stability table of every start of the run (no oracle work)."""
    rule = bond_rule_for(np.unique(np.concatenate([r.numbers for r in ctx.records])))
    ground = [bool(atom_stable(r.numbers, bond_orders(r.numbers, r.ground_positions, rule)).all())
              for r in ctx.records]
    rows = []
    for (method, seed), starts in ctx.starts.items():
        for record, start, ground_stable in zip(ctx.records, starts, ground):
            if start.positions is None:
                status, reading = Status.OUTPUT_FAILED, (0, False, False)
            else:
                status, reading = Status.OK, read_structure(record.numbers, start.positions, rule)
            rows.append(dict(zip(COLUMNS, (record.id, method, seed, start.start_step, str(status), record.n_atoms,
                                           rule, *reading, ground_stable))))
    return {"stability": pd.DataFrame(rows, columns=list(COLUMNS))}


STRUCTURE_STABILITY = Task(
    "structure-stability",
    "EDM's stability and validity of each method's structure (the dataset's bond rule)",
    tables={"stability": COLUMNS},
    metrics=("output_atom_stability", "output_molecule_stability", "output_validity"),
    compute=structure_stability)
