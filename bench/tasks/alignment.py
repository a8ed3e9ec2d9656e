"""Along the denoiser path: energy above the ground state (the study's figure 4)
and the alignment of denoising steps with forces and with the way to the
ground state (figure 6).

For a path of frames ``x_0 .. x_L`` (the start, each reverse step, the final
decode) and the oracle ground state ``g`` reached by relaxing the path's last
frame with the oracle (as the study did), at every frame ``s``:

* ``Delta_k = x_{s+k} - x_s`` (the sum of the next k steps), for k in ``ks``;
* ``f`` = oracle forces at ``x_s``; ``gs = g - x_s``;
* per atom cosine similarities ``cos(Delta_k, f)``, ``cos(Delta_k, gs)``,
  ``cos(f, gs)``, averaged over the atoms where both vectors are nonzero.

The alignment gap of a method is the mean over frames of
``cos(Delta_10, gs) - cos(Delta_10, f)``: positive when the denoiser heads for
the minimum more than it follows the forces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.data.records import MoleculeRecord
from bench.oracles.base import Oracle
from bench.tasks.relaxation import ground_references
from bench.units import EV_TO_KCAL_MOL

#: Vectors shorter than this (Angstrom or eV/A) have no direction.
_TINY = 1e-9


def mean_atom_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity per atom (rows), averaged over atoms where both are nonzero."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > _TINY) & (nb > _TINY)
    if not ok.any():
        return float("nan")
    return float(np.mean(np.sum(a[ok] * b[ok], axis=1) / (na[ok] * nb[ok])))


def along_path(records: Sequence[MoleculeRecord], paths: Sequence[np.ndarray | None], oracle: Oracle,
               ks: Sequence[int] = (1, 10, 30), fmax: float = 0.03, method: str = "",
               ground_fmax: float | None = None) -> pd.DataFrame:
    """One row per (molecule, frame): energy above ground (kcal/mol) and the cosines.

    Parameters
    ----------
    records : the molecules
    paths : per record, an (L + 1, n_atoms, 3) array of path frames (Angstrom), or None
    oracle : energies, forces and the relaxation to the path's ground state
    ks : look-ahead lengths for Delta_k
    fmax : threshold of the relaxation to the ground state (eV/A)
    ground_fmax : relax the dataset's ground state with the oracle first (another
        level of theory than the dataset's), see :func:`ground_references`
    """
    todo = [(rec, path) for rec, path in zip(records, paths) if path is not None]
    ends = []
    for rec, path in todo:
        end = rec.to_atoms("start")
        end.positions = path[-1]
        ends.append((end, rec.id))
    ground_states = oracle.relax_many(ends, fmax=fmax)
    grounds = ground_references([rec for rec, _ in todo], oracle, ground_fmax)
    items = []
    for rec, path in todo:
        for frame in path:
            atoms = rec.to_atoms("start")
            atoms.positions = frame
            items.append((atoms, rec.id))
    points = iter(oracle.single_point_many(items))
    rows = []
    for (rec, path), gs, ground in zip(todo, ground_states, grounds):
        for s in range(len(path)):
            sp = next(points)
            ok = sp.ok and ground.ok
            row = {"id": rec.id, "method": method, "frame": s, "steps_left": len(path) - 1 - s,
                   "energy_above_ground_kcal_mol": (sp.energy_ev - ground.energy_ev) * EV_TO_KCAL_MOL if ok
                   else np.nan, "path_ground_converged": gs.converged, "status": sp.status}
            to_gs = gs.positions_ang - path[s]
            if sp.ok:
                row["cos_f_gs"] = mean_atom_cosine(sp.forces_ev_ang, to_gs)
            for k in ks:
                if s + k < len(path):
                    delta = path[s + k] - path[s]
                    row[f"cos_d{k}_gs"] = mean_atom_cosine(delta, to_gs)
                    row[f"cos_d{k}_f"] = mean_atom_cosine(delta, sp.forces_ev_ang) if sp.ok else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def summarise_alignment(df: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """Per method and frame: mean and std of every cosine and of the energy; plus
    per method the alignment gap (mean of cos(Delta_k, gs) - cos(Delta_k, f))."""
    value_cols = [c for c in df.columns if c.startswith("cos_") or c == "energy_above_ground_kcal_mol"]
    per_frame = df.groupby(["method", "frame"])[value_cols].agg(["mean", "std"])
    per_frame.columns = [f"{c}_{stat}" for c, stat in per_frame.columns]
    return per_frame.reset_index()


def alignment_gap(df: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """Per method: mean over frames and molecules of cos(Delta_k, gs) - cos(Delta_k, f)."""
    col_gs, col_f = f"cos_d{k}_gs", f"cos_d{k}_f"
    if col_gs not in df:
        return {}
    gap = (df[col_gs] - df[col_f]).groupby(df["method"]).mean()
    return {m: float(v) for m, v in gap.items()}
