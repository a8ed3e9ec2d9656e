"""Phases of generation (the study's section 4.1, figure 2): per reverse-diffusion
step, how far the chain moves and how much of the final molecule is decided.

For one molecule's chain of frames (positions and decoded elements at every
step, the final frame last), per frame s:

* ``step_size_ang``: L2 norm of the position change from the previous frame;
* ``bond_length_error_ang``: mean |d_ij(s) - d_ij(final)| over pairs bonded in the final frame;
* ``frac_atoms_element_final`` and ``molecule_elements_final`` (all atoms);
* ``frac_atoms_bonds_final`` (bond-order row equal to the final) and ``molecule_bonds_final``;
* ``frac_atoms_valid_valence`` (EDM's stability rule).

Bonds are perceived with EDM's distance tables (:mod:`bench.tasks.stability`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.tasks.stability import atom_stable, bond_orders


def phase_metrics(numbers: np.ndarray, positions: np.ndarray, molecule: str = "") -> pd.DataFrame:
    """Per-frame phase metrics of one chain.

    Parameters
    ----------
    numbers : (n_frames, n_atoms) int array
        Decoded elements at every frame.
    positions : (n_frames, n_atoms, 3) array, Angstrom
    molecule : str
        Identifier written in every row.
    """
    numbers, positions = np.asarray(numbers), np.asarray(positions, dtype=float)
    if numbers.shape != positions.shape[:2]:
        raise ValueError(f"numbers {numbers.shape} and positions {positions.shape} disagree")
    final_orders = bond_orders(numbers[-1], positions[-1])
    bonded = np.triu(final_orders > 0, k=1)
    d_final = np.linalg.norm(positions[-1][:, None] - positions[-1][None], axis=-1)
    rows = []
    for s in range(len(positions)):
        orders = bond_orders(numbers[s], positions[s])
        d = np.linalg.norm(positions[s][:, None] - positions[s][None], axis=-1)
        elements_final = numbers[s] == numbers[-1]
        bonds_final = np.all(orders == final_orders, axis=1)
        rows.append({
            "molecule": molecule, "frame": s, "steps_left": len(positions) - 1 - s,
            "step_size_ang": float(np.linalg.norm(positions[s] - positions[s - 1])) if s else np.nan,
            "bond_length_error_ang": float(np.abs(d - d_final)[bonded].mean()) if bonded.any() else np.nan,
            "frac_atoms_element_final": float(elements_final.mean()),
            "molecule_elements_final": bool(elements_final.all()),
            "frac_atoms_bonds_final": float(bonds_final.mean()),
            "molecule_bonds_final": bool(bonds_final.all()),
            "frac_atoms_valid_valence": float(atom_stable(numbers[s], orders).mean()),
        })
    return pd.DataFrame(rows)


def exploration_end(df: pd.DataFrame) -> int | None:
    """The last ``steps_left`` after which every molecule keeps its elements to the
    end (the end of the study's exploration phase), or None if never."""
    settled = df.groupby("steps_left")["molecule_elements_final"].all().sort_index()
    # walk from the end of the chain (steps_left = 0) backwards while all are final
    last = None
    for steps_left, ok in settled.items():
        if not ok:
            break
        last = steps_left
    return last
