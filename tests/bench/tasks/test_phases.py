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
    step = np.linalg.norm(pos[1] - pos[0], axis=1).mean()  # per-atom displacement, averaged over atoms
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


def test_aggregation_over_hand_built_chains():
    from bench.tasks.phases import aggregate_phases

    atoms = molecule_from_smiles("CCO")
    early = phase_metrics(*chain_from(atoms.positions, atoms.numbers, wrong_until=2), "a")
    late = phase_metrics(*chain_from(atoms.positions, atoms.numbers, wrong_until=4), "b")
    agg = aggregate_phases(pd.concat([early, late])).set_index("steps_left")
    assert list(agg.index) == [5, 4, 3, 2, 1, 0] and (agg["n_molecules"] == 2).all()
    assert agg["molecule_elements_final_mean"].to_list() == [0, 0, 0.5, 0.5, 1, 1]
    assert agg.loc[3, "molecule_elements_final_std"] == pytest.approx(np.std([0, 1], ddof=1))
    n = len(atoms)
    assert agg.loc[3, "frac_atoms_element_final_mean"] == pytest.approx(((n - 1) / n + 1) / 2)
    assert agg.loc[0, "bond_length_error_ang_mean"] == 0 and np.isnan(agg.loc[5, "step_size_ang_mean"])
    assert exploration_end(pd.concat([early, late])) == 1


def test_chain_frames_decode_elements_and_positions_per_molecule():
    from bench.tasks.phases import chain_frames

    decoder = (1, 6, 7, 8, 9)
    chain = np.zeros((3, 2, 4, 3 + 5 + 1), dtype=np.float32)
    chain[..., :3] = np.arange(3 * 2 * 4 * 3).reshape(3, 2, 4, 3)
    chain[:, 0, :, 3 + 1] = 1.0  # molecule 0: carbons
    chain[0, 0, 0, 3 + 4] = 2.0  # ... except a fluorine in the first frame
    chain[:, 1, :, 3 + 3] = 1.0  # molecule 1: oxygens
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float32)[..., None]
    (n0, p0), (n1, p1) = chain_frames(chain, mask, decoder)
    assert n0.shape == (3, 3) and n1.shape == (3, 2) and p1.shape == (3, 2, 3)
    assert n0[0].tolist() == [9, 6, 6] and (n0[1:] == 6).all() and (n1 == 8).all()
    assert np.array_equal(p0, chain[:, 0, :3, :3])


def test_step_size_is_the_per_atom_norm_averaged_over_atoms():
    pos = np.zeros((2, 3, 3))
    pos[0] = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    pos[1] = pos[0] + [[3.0, 0, 0], [0, 4.0, 0], [0, 0, 0]]  # atoms move 3, 4 and 0 A
    df = phase_metrics(np.full((2, 3), 6), pos)
    assert df["step_size_ang"].iloc[1] == pytest.approx(7.0 / 3)  # not the Frobenius norm, 5


def test_final_means_final_from_that_frame_to_the_end():
    atoms = molecule_from_smiles("CCO")
    nums, pos = chain_from(atoms.positions, atoms.numbers, wrong_until=0, n_frames=6)
    nums[3, 0] = 9  # right at frames 0-2, wrong at 3, right again from 4
    df = phase_metrics(nums, pos)
    assert list(df["molecule_elements_final"]) == [False, False, False, False, True, True]
    assert exploration_end(df) == 1


def test_bond_final_compares_bond_counts_not_bond_partners(monkeypatch):
    from bench.tasks import phases

    # atom 0 bonds to atom 1 (order 2) in frame 0 and to atoms 1 and 2 (order 1 each) at the end:
    # its bond count, 2, is the final one from the start; atoms 1 and 2 change their counts
    first = np.array([[0, 2, 0], [2, 0, 0], [0, 0, 0]])
    last = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    frames = iter([first, last])
    monkeypatch.setattr(phases, "bond_orders", lambda numbers, positions, rule: next(frames))
    pos = np.array([[[0, 0, 0], [1.2, 0, 0], [0, 1.2, 0]]] * 2, dtype=float)
    df = phases.phase_metrics(np.full((2, 3), 6), pos)
    assert df["frac_atoms_bonds_final"].tolist() == pytest.approx([1 / 3, 1.0])


def test_settled_is_a_reversed_cumulative_and():
    from bench.tasks.phases import settled

    eq = np.array([[True, False], [False, True], [True, True]])
    assert settled(eq).tolist() == [[False, False], [False, True], [True, True]]
