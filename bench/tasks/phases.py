"""Phases of generation (the study's section 4.1, figure 2): per reverse-diffusion
step, how far the chain moves and how much of the final molecule is decided.

For one molecule's chain of frames (positions and decoded elements at every
step, the final frame last), per frame s, with the study's own definitions:

* ``step_size_ang``: the per-atom displacement norm from the previous frame,
  averaged over atoms;
* ``bond_length_error_ang``: mean |d_ij(s) - d_ij(final)| over pairs bonded in the final frame;
* ``frac_atoms_element_final`` and ``molecule_elements_final`` (all atoms);
* ``frac_atoms_bonds_final``: atoms whose bond count (the sum of their bond
  orders) equals the final one, and ``molecule_bonds_final`` (all atoms);
* ``frac_atoms_valid_valence`` (EDM's stability rule).

A property is "final" at frame s when it equals its final value at s and at
every later frame (it never changes again), not merely at s.

Bonds are perceived with EDM's distance tables (:mod:`bench.tasks.stability`).
:func:`chain_frames` turns a generation's latent chain into such frames and
:func:`aggregate_phases` averages the per-frame metrics over molecules (the
curves of figure 2, mean and standard deviation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.tasks.spec import Task
from bench.tasks.stability import atom_stable, bond_orders

#: The per-frame metrics that :func:`aggregate_phases` averages over molecules.
PHASE_METRICS = ("step_size_ang", "bond_length_error_ang", "frac_atoms_element_final", "molecule_elements_final",
                 "frac_atoms_bonds_final", "molecule_bonds_final", "frac_atoms_valid_valence")


def chain_frames(chain: np.ndarray, node_mask: np.ndarray, atomic_numbers: Sequence[int],
                 position_scale: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per molecule, the (numbers, positions) frames of a latent generation chain.

    Elements are decoded at every frame as EDM decodes z_0 (argmax of the one-hot
    block), so "element final" compares each frame's decoding with the last one.

    Parameters
    ----------
    chain : (n_frames, B, N, 3 + K + c) array
        Latents z_T .. z_0 (:meth:`edm_core.EDMDenoiser.generate` with ``keep_chain``).
    node_mask : (B, N, 1) array
    atomic_numbers : sequence of int
        The model's atom decoder (K elements), in one-hot order.
    position_scale : float
        Angstrom per unit of the position block (EDM: 1).

    Returns
    -------
    list of ((n_frames, n_atoms) int array, (n_frames, n_atoms, 3) array in Angstrom)
    """
    decoder = np.asarray(atomic_numbers)
    types = np.argmax(chain[..., 3:3 + len(decoder)], axis=-1)
    sizes = np.asarray(node_mask)[..., 0].sum(axis=1).astype(int)
    return [(decoder[types[:, b, :n]], chain[:, b, :n, :3].astype(float) * position_scale)
            for b, n in enumerate(sizes)]


def aggregate_phases(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over molecules of every phase metric per step.

    Molecule-level flags (``molecule_*``) average to the fraction of molecules.
    Returns one row per ``steps_left`` (descending, as the chain runs) with
    ``<metric>_mean``, ``<metric>_std`` and ``n_molecules``.
    """
    values = df[["steps_left", *PHASE_METRICS]].astype({m: float for m in PHASE_METRICS})
    grouped = values.groupby("steps_left")
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["n_molecules"] = grouped.size()
    return out.sort_index(ascending=False).reset_index()


def settled(equal_to_final: np.ndarray) -> np.ndarray:
    """Per frame and atom, whether the property equals its final value from that
    frame to the end: a reversed cumulative AND over frames (axis 0)."""
    return np.flip(np.logical_and.accumulate(np.flip(np.asarray(equal_to_final, dtype=bool), axis=0), axis=0), axis=0)


def phase_metrics(numbers: np.ndarray, positions: np.ndarray, molecule: str = "", rule: str = "qm9") -> pd.DataFrame:
    """Per-frame phase metrics of one chain.

    Parameters
    ----------
    numbers : (n_frames, n_atoms) int array
        Decoded elements at every frame.
    positions : (n_frames, n_atoms, 3) array, Angstrom
    molecule : str
        Identifier written in every row.
    rule : {"qm9", "geom"}
        EDM's bond rule (:data:`bench.tasks.stability.BOND_RULES`) of the model's elements.
    """
    numbers, positions = np.asarray(numbers), np.asarray(positions, dtype=float)
    if numbers.shape != positions.shape[:2]:
        raise ValueError(f"numbers {numbers.shape} and positions {positions.shape} disagree")
    orders = [bond_orders(numbers[s], positions[s], rule) for s in range(len(positions))]
    bonded = np.triu(orders[-1] > 0, k=1)
    d_final = np.linalg.norm(positions[-1][:, None] - positions[-1][None], axis=-1)
    elements_final = settled(numbers == numbers[-1])
    counts = np.stack([o.sum(axis=1) for o in orders])
    bonds_final = settled(counts == counts[-1])
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean(axis=1)
    rows = []
    for s in range(len(positions)):
        d = np.linalg.norm(positions[s][:, None] - positions[s][None], axis=-1)
        rows.append({
            "molecule": molecule, "frame": s, "steps_left": len(positions) - 1 - s,
            "step_size_ang": float(steps[s - 1]) if s else np.nan,
            "bond_length_error_ang": float(np.abs(d - d_final)[bonded].mean()) if bonded.any() else np.nan,
            "frac_atoms_element_final": float(elements_final[s].mean()),
            "molecule_elements_final": bool(elements_final[s].all()),
            "frac_atoms_bonds_final": float(bonds_final[s].mean()),
            "molecule_bonds_final": bool(bonds_final[s].all()),
            "frac_atoms_valid_valence": float(atom_stable(numbers[s], orders[s]).mean()),
        })
    return pd.DataFrame(rows)


def exploration_end(df: pd.DataFrame) -> int | None:
    """The last ``steps_left`` after which every molecule keeps its elements to the
    end (the end of the study's exploration phase), or None if never."""
    all_final = df.groupby("steps_left")["molecule_elements_final"].all().sort_index()
    # walk from the end of the chain (steps_left = 0) backwards while all are final
    last = None
    for steps_left, ok in all_final.items():
        if not ok:
            break
        last = steps_left
    return last


PHASES = Task(
    "phases", "phase metrics along de novo generation from noise, per reverse step (section 4.1)",
    command="phases", needs=frozenset({"denoiser"}),
    tables={"phases": ("method", "steps_left"), "phases_summary": ("method", "steps_left"),
            "exploration_end": ("method", "exploration_end_step")},
    metrics=("final_frac_atoms_valid_valence", "exploration_end_step"),
    leaderboard={"final_frac_atoms_valid_valence": True, "exploration_end_step": None}, figures=("phase_curves",))
