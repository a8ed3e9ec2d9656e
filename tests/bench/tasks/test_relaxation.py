"""Relaxation-task metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.columns import Col
from bench.tasks.relaxation import Start, add_speedup, energy_above_ground, relax_from_starts, summarise_relax
from bench.units import EV_TO_KCAL_MOL


def frame(rows):
    base = {Col.STATUS: "ok", Col.N_ATOMS: 3, Col.N_FORCE_CALLS: 1, Col.WALL_S: 0.1, Col.CONVERGED: True}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_speedup_and_energy_delta_against_the_mmff_row():
    df = add_speedup(frame([
        {Col.ID: "a", Col.METHOD: "mmff", Col.N_STEPS: 40, Col.RELAXED_ENERGY: -10.0},
        {Col.ID: "a", Col.METHOD: "den", Col.N_STEPS: 10, Col.RELAXED_ENERGY: -10.01},
        {Col.ID: "b", Col.METHOD: "mmff", Col.N_STEPS: 20, Col.RELAXED_ENERGY: -5.0},
        {Col.ID: "b", Col.METHOD: "den", Col.N_STEPS: 30, Col.RELAXED_ENERGY: -5.0},
        {Col.ID: "c", Col.METHOD: "mmff", Col.N_STEPS: 0, Col.RELAXED_ENERGY: -1.0},
        {Col.ID: "c", Col.METHOD: "den", Col.N_STEPS: 3, Col.RELAXED_ENERGY: -1.0},
    ]))
    den = df[df[Col.METHOD] == "den"].set_index(Col.ID)
    assert den.loc["a", Col.SPEEDUP] == pytest.approx(0.75)
    assert den.loc["b", Col.SPEEDUP] == pytest.approx(-0.5)
    assert np.isnan(den.loc["c", Col.SPEEDUP])  # nothing to speed up: undefined, not infinite
    assert den.loc["a", Col.DELTA_E] == pytest.approx(0.01 * EV_TO_KCAL_MOL)  # MMFF-started ended higher: > 0
    summary = summarise_relax(df).set_index(Col.METHOD)
    assert summary.loc["den", "median_speedup"] == pytest.approx(0.125)
    assert summary.loc["den", "fraction_slower"] == pytest.approx(0.5)
    # molecule a's delta (0.23 kcal/mol) is above the 0.2 cut: only b stays
    assert summary.loc["den", "n_same_basin"] == 1
    assert summary.loc["den", "median_speedup_same_basin"] == pytest.approx(-0.5)
    assert (df.loc[df[Col.METHOD] == "mmff", Col.SPEEDUP].dropna() == 0).all()


def test_a_failed_reference_leaves_the_speedup_undefined():
    df = add_speedup(frame([
        {Col.ID: "a", Col.METHOD: "mmff", Col.N_STEPS: 5, Col.RELAXED_ENERGY: np.nan, Col.STATUS: "failed"},
        {Col.ID: "a", Col.METHOD: "den", Col.N_STEPS: 3, Col.RELAXED_ENERGY: -1.0},
    ]))
    assert df[Col.SPEEDUP].isna().all()


class ToyRecord:
    """A 1-D harmonic 'molecule': two H atoms; ground state at the MMFF start shifted."""

    def __init__(self, rid: str, stretch: float) -> None:
        self.id, self.n_atoms, self.numbers = rid, 2, np.array([1, 1])
        self.ground_positions = np.array([[0.0, 0, 0], [0.74, 0, 0]])
        self.start_positions = np.array([[0.0, 0, 0], [0.74 + stretch, 0, 0]])

    def to_atoms(self, which: str = "start"):
        from ase import Atoms

        pos = self.start_positions if which == "start" else self.ground_positions
        atoms = Atoms("H2", positions=pos)
        atoms.info.update(charge=0, multiplicity=1)
        return atoms


def test_a_denoiser_returning_the_ground_state_scores_zero_energy_and_full_speedup():
    from bench.oracles import get_oracle

    xtb = get_oracle("xtb")
    ground = xtb.relax(ToyRecord("h2", 0.0).to_atoms("ground"), fmax=1e-4).positions_ang
    rec = ToyRecord("h2", 0.3)
    rec.ground_positions = ground
    starts = {"mmff": [Start(rec.start_positions)], "exact": [Start(ground)], "broken": [Start(None, "no output")]}
    energy = energy_above_ground([rec], starts, xtb, progress=False).set_index(Col.METHOD)
    assert energy.loc["exact", Col.ENERGY_ABOVE_GROUND] == pytest.approx(0.0, abs=1e-6)
    assert energy.loc["mmff", Col.ENERGY_ABOVE_GROUND] > 1.0
    assert energy.loc["broken", Col.STATUS] == "no_start"
    relax = relax_from_starts([rec], starts, xtb, progress=False).set_index(Col.METHOD)
    # starting at the minimum takes 0 steps: speedup 1 - 0 / n_mmff = 1 exactly
    assert relax.loc["exact", Col.N_STEPS] == 0 and relax.loc["exact", Col.SPEEDUP] == 1.0
    assert relax.loc["mmff", Col.SPEEDUP] == 0.0
    assert relax.loc["broken", Col.STATUS] == "no_start" and np.isnan(relax.loc["broken", Col.SPEEDUP])


def test_bootstrap_interval_of_the_median_covers_it_and_shrinks_with_n(rng):
    from bench.tasks.relaxation import bootstrap_median_ci

    small = rng.normal(size=20)
    large = rng.normal(size=2000)
    lo, hi = bootstrap_median_ci(small)
    assert lo < np.median(small) < hi
    lo2, hi2 = bootstrap_median_ci(large)
    assert hi2 - lo2 < (hi - lo) / 4  # ~ 1/sqrt(n)
    assert lo2 < 0 < hi2  # the true median of N(0, 1)
    assert all(np.isnan(bootstrap_median_ci(np.array([1.0]))))
