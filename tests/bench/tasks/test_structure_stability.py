"""The structure-stability task: EDM's bond rule on every method's structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import metrics
from bench.columns import Col, Status
from bench.data import load_dataset
from bench.tasks.relaxation import Start
from bench.tasks.spec import RunContext
from bench.tasks.structure_stability import structure_stability


def table_of(records, starts) -> pd.DataFrame:
    ctx = RunContext(records=records, oracle=None, grounds=[], starts=starts)
    return structure_stability(ctx)["stability"]


def pulled(record, atom: int, by: float = 1.5) -> np.ndarray:
    """The ground state with one atom moved ``by`` A away from the centre of the others."""
    pos = record.ground_positions.copy()
    direction = pos[atom] - np.delete(pos, atom, axis=0).mean(axis=0)
    pos[atom] += by * direction / np.linalg.norm(direction)
    return pos


def test_a_drugs_run_is_read_by_the_geom_rule_and_qm9_by_its_own():
    sulfur = [r for r in load_dataset("drugs-xtb", "all") if 16 in r.numbers][:3]
    qm9 = list(load_dataset("qm9-xtb", "test")[:3])
    assert len(sulfur) == 3
    for records, rule in ((qm9, "qm9"), (sulfur, "geom")):
        table = table_of(records, {("ground", None): [Start(r.ground_positions) for r in records]})
        assert set(table["bond_rule"]) == {rule}
        # the ground state read as a start gives the ground's own reading
        assert (table[Col.MOLECULE_STABLE] == table["ground_molecule_stable"]).all()


@pytest.fixture(scope="module")
def stable_molecules():
    qm9 = list(load_dataset("qm9-xtb", "test")[:20])
    found = [r for r in qm9 if table_of([r], {("g", None): [Start(r.ground_positions)]})[Col.MOLECULE_STABLE].all()]
    assert len(found) >= 4
    return found[:4]


def test_a_pulled_hydrogen_leaves_two_atoms_unstable(stable_molecules):
    hydrogens = [int(np.flatnonzero(r.numbers == 1)[0]) for r in stable_molecules]
    table = table_of(stable_molecules, {
        ("ground", None): [Start(r.ground_positions) for r in stable_molecules],
        ("pulled", None): [Start(pulled(r, h)) for r, h in zip(stable_molecules, hydrogens)]})
    by = dict(tuple(table.groupby(Col.METHOD)))
    assert by["ground"][Col.MOLECULE_STABLE].all() and not by["pulled"][Col.MOLECULE_STABLE].any()
    # the lone H and the heavy atom it left
    np.testing.assert_array_equal(by["pulled"][Col.N_ATOMS_STABLE].to_numpy(),
                                  by["ground"][Col.N_ATOMS_STABLE].to_numpy() - 2)


def test_metrics_pool_atoms_and_a_failed_output_takes_the_mmff_reading(stable_molecules):
    mols = stable_molecules
    h = [int(np.flatnonzero(r.numbers == 1)[0]) for r in mols]
    table = table_of(mols, {
        ("mmff", None): [Start(pulled(mols[0], h[0]))] + [Start(r.ground_positions) for r in mols[1:]],
        ("den", 0): [Start(None, "output has NaN")] + [Start(pulled(r, k)) for r, k in zip(mols[1:], h[1:])],
        ("den", 1): [Start(r.ground_positions) for r in mols]})
    failed = table[(table[Col.METHOD] == "den") & (table[Col.STATUS] == Status.OUTPUT_FAILED)]
    assert len(failed) == 1 and failed[Col.N_ATOMS_STABLE].iloc[0] == 0
    summary = metrics.summarise({"stability": table}, bootstrap=None).set_index(Col.METHOD)
    n_atoms = sum(r.n_atoms for r in mols)
    # seed 0: molecule 0 takes MMFF's reading (pulled: 2 unstable), molecules 1-3 pulled; seed 1: all stable
    assert summary.loc["den", "output_atom_stability"] == pytest.approx((2 * n_atoms - 8) / (2 * n_atoms))
    assert summary.loc["den", "output_molecule_stability"] == pytest.approx(4 / 8)
    assert summary.loc["den", "n_failed"] == 1
    assert summary.loc["mmff", "output_molecule_stability"] == pytest.approx(3 / 4)
    assert summary.loc["mmff", "output_atom_stability"] == pytest.approx((n_atoms - 2) / n_atoms)
    assert 0 <= summary.loc["den", "output_validity"] <= 1
