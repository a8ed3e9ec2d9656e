"""Phase metrics on hand-built chains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.tasks.phases import exploration_end, phase_metrics
from tests.conftest import molecule_from_smiles


def chain_from(final: np.ndarray, numbers: np.ndarray, wrong_until: int, n_frames: int = 6):
    """Frames that move linearly onto ``final``; element 0 is wrong before ``wrong_until``."""
    start = final + np.linspace(0.5, -0.5, final.size).reshape(final.shape)
    pos = np.stack([start + (final - start) * s / (n_frames - 1) for s in range(n_frames)])
    nums = np.repeat(numbers[None], n_frames, axis=0)
    nums[:wrong_until, 0] = 9  # a fluorine where the final has something else
    return nums, pos


def test_hand_built_chain_metrics():
    atoms = molecule_from_smiles("CCO")
    nums, pos = chain_from(atoms.positions, atoms.numbers, wrong_until=2)
    df = phase_metrics(nums, pos, "ethanol")
    n = len(atoms)
    assert list(df["frac_atoms_element_final"]) == pytest.approx([(n - 1) / n] * 2 + [1.0] * 4)
    assert list(df["molecule_elements_final"]) == [False, False, True, True, True, True]
    step = np.linalg.norm(pos[1] - pos[0])
    assert df["step_size_ang"].iloc[1:].to_numpy() == pytest.approx([step] * 5)  # equal linear steps
    assert df["bond_length_error_ang"].iloc[-1] == 0 and df["bond_length_error_ang"].iloc[0] > 0
    last = df.iloc[-1]
    assert last["frac_atoms_bonds_final"] == 1.0 and last["molecule_bonds_final"]
    assert last["frac_atoms_valid_valence"] == 1.0  # MMFF ethanol is EDM-stable
    assert exploration_end(df) == 3  # from 3 steps before the end on, the elements are final


def test_exploration_end_over_molecules():
    a = pd.DataFrame({"steps_left": [2, 1, 0], "molecule_elements_final": [True, True, True]})
    b = pd.DataFrame({"steps_left": [2, 1, 0], "molecule_elements_final": [False, True, True]})
    assert exploration_end(pd.concat([a, b])) == 1
    c = pd.DataFrame({"steps_left": [1, 0], "molecule_elements_final": [False, False]})
    assert exploration_end(c) is None
    with pytest.raises(ValueError, match="disagree"):
        phase_metrics(np.zeros((2, 3), int), np.zeros((2, 4, 3)))
