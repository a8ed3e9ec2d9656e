"""Path alignment metrics on hand-built paths."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tasks.alignment import along_path, mean_atom_cosine
from bench.tasks.relaxation import ground_references
from tests.bench.tasks.test_relaxation import ToyRecord


def grounds(oracle, rec):
    return ground_references([rec], oracle)


def test_mean_atom_cosine_on_known_vectors():
    a = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]])
    b = np.array([[2.0, 0, 0], [0, -1, 0], [1, 0, 0]])
    assert mean_atom_cosine(a, b) == pytest.approx(0.0)  # +1 and -1; the zero vector is skipped
    assert mean_atom_cosine(a[:1], b[:1]) == pytest.approx(1.0)
    assert np.isnan(mean_atom_cosine(np.zeros((2, 3)), b[:2]))


def test_a_path_straight_to_the_minimum_is_aligned_with_the_ground_state():
    from bench.oracles import get_oracle

    xtb = get_oracle("xtb")
    rec = ToyRecord("h2", 0.4)
    ground = xtb.relax(rec.to_atoms("ground"), fmax=1e-4).positions_ang
    rec.ground_positions = ground - ground.mean(axis=0)
    rec.start_positions = rec.start_positions - rec.start_positions.mean(axis=0)
    ground = rec.ground_positions  # both centred: the atoms move symmetrically, along their forces
    # a straight line from the stretched start to the minimum, in 12 equal steps
    path = np.stack([rec.start_positions + (ground - rec.start_positions) * s / 12 for s in range(13)])
    df = along_path([rec], [path], xtb, grounds(xtb, rec), ks=(1, 10), method="line")
    assert len(df) == 13
    first = df.iloc[0]
    assert first["cos_d1_gs"] == pytest.approx(1.0, abs=1e-6)
    assert first["cos_d1_f"] == pytest.approx(1.0, abs=1e-3)  # the bond force points along the line too
    assert first["energy_above_ground_kcal_mol"] > 1.0
    assert df.iloc[-1]["energy_above_ground_kcal_mol"] == pytest.approx(0.0, abs=1e-3)
    assert np.isnan(df.iloc[5]["cos_d10_gs"])  # no 10 steps left: undefined
    assert first["cos_d1_rgs"] == pytest.approx(1.0, abs=1e-6)  # the fixed ground state lies on the line too
    assert df["path_ground_converged"].all()


def test_a_path_away_from_the_minimum_has_negative_cosines():
    from bench.oracles import get_oracle

    xtb = get_oracle("xtb")
    rec = ToyRecord("h2", 0.3)
    ground = xtb.relax(rec.to_atoms("ground"), fmax=1e-4).positions_ang
    rec.ground_positions = ground
    away = rec.start_positions.copy()
    away[1, 0] += 0.2  # stretch further
    path = np.stack([rec.start_positions, away, rec.start_positions])  # ends where it started
    df = along_path([rec], [path], xtb, grounds(xtb, rec), ks=(1,), method="away")
    assert df.iloc[0]["cos_d1_gs"] == pytest.approx(-1.0, abs=1e-6)
    assert df.iloc[0]["cos_d1_f"] == pytest.approx(-1.0, abs=1e-3)
