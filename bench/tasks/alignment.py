"""Along the denoiser path: energy above the ground state (the study's figure 4)
and the alignment of denoising steps with forces and with the way to the
ground state (figure 6).

For a path of frames ``x_0 .. x_L`` (the start, each reverse step, the final
decode), at every frame ``s``:

* ``Delta_k = x_{s+k} - x_s`` (the sum of the next k steps), for k in ``ks``;
* ``f`` = oracle forces at ``x_s``;
* ``gs = g - x_s`` with ``g`` the oracle relaxation of the path's last frame, as
  the study did (``cos_d{k}_gs``; it pulls the cosine towards 1 near the end of
  any smooth path, and is only meaningful when that relaxation converged,
  ``path_ground_converged``);
* ``rgs = r - x_s`` with ``r`` the molecule's fixed reference ground state
  (``cos_d{k}_rgs``);
* per-atom cosine similarities, averaged over the atoms where both vectors are
  nonzero.

The alignment gaps that summarise these columns are metrics (:mod:`bench.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.columns import Col
from bench.data.records import MoleculeRecord
from bench.oracles.base import Oracle
from bench.tasks.relaxation import GroundReference
from bench.tasks.spec import RunContext, Task
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
               grounds: Sequence[GroundReference], ks: Sequence[int] = (1, 10, 30), fmax: float = 0.03,
               method: str = "", seed: int | None = None) -> pd.DataFrame:
    """One row per (molecule, frame): energy above ground (kcal/mol) and the cosines.

    Parameters
    ----------
    records : the molecules
    paths : per record, an (L + 1, n_atoms, 3) array of path frames (Angstrom), or None
    oracle : energies, forces and the relaxation to the path's ground state
    ks : look-ahead lengths for Delta_k
    grounds : the records' reference ground states under ``oracle``
        (:func:`bench.tasks.relaxation.ground_references`)
    fmax : threshold of the relaxation of the path's end (eV/A)
    method, seed : written in every row
    """
    todo = [(rec, path, ground) for rec, path, ground in zip(records, paths, grounds) if path is not None]
    ends = []
    for rec, path, _ in todo:
        end = rec.to_atoms("start")
        end.positions = path[-1]
        ends.append((end, rec.id))
    ground_states = oracle.relax_many(ends, fmax=fmax)
    items = []
    for rec, path, _ in todo:
        for frame in path:
            atoms = rec.to_atoms("start")
            atoms.positions = frame
            items.append((atoms, rec.id))
    points = iter(oracle.single_point_many(items))
    rows = []
    for (rec, path, ground), gs in zip(todo, ground_states):
        for s in range(len(path)):
            sp = next(points)
            ok = sp.ok and ground.ok
            row = {Col.ID: rec.id, Col.METHOD: method, Col.SEED: seed, Col.FRAME: s, Col.STEPS_LEFT: len(path) - 1 - s,
                   Col.ENERGY_ABOVE_GROUND: (sp.energy_ev - ground.energy_ev) * EV_TO_KCAL_MOL if ok else np.nan,
                   Col.PATH_GROUND_CONVERGED: gs.converged, Col.STATUS: sp.status}
            to_gs = gs.positions_ang - path[s]
            to_rgs = ground.positions - path[s] if ground.ok else np.full_like(path[s], np.nan)
            if sp.ok:
                row["cos_f_gs"] = mean_atom_cosine(sp.forces_ev_ang, to_gs)
            for k in ks:
                if s + k < len(path):
                    delta = path[s + k] - path[s]
                    row[f"cos_d{k}_gs"] = mean_atom_cosine(delta, to_gs)
                    row[f"cos_d{k}_rgs"] = mean_atom_cosine(delta, to_rgs)
                    row[f"cos_d{k}_f"] = mean_atom_cosine(delta, sp.forces_ev_ang) if sp.ok else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def summarise_alignment(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and frame: mean and std over molecules of every cosine and of
    the energy (the curves of the study's figures 4 and 6)."""
    value_cols = [c for c in df.columns if c.startswith("cos_") or c == Col.ENERGY_ABOVE_GROUND]
    per_frame = df.groupby([Col.METHOD, Col.FRAME])[value_cols].agg(["mean", "std"])
    per_frame.columns = [f"{c}_{stat}" for c, stat in per_frame.columns]
    return per_frame.reset_index()


def _path_tables(ctx: RunContext) -> dict[str, pd.DataFrame]:
    frames = [along_path(ctx.records, paths, ctx.oracle, ctx.grounds, fmax=ctx.fmax_ev_ang, method=method, seed=seed)
              for (method, seed), paths in ctx.paths.items()]
    return {"path": pd.concat(frames, ignore_index=True)} if frames else {}


FORCE_ALIGNMENT = Task(
    "force-alignment", "along each denoiser's path (first seed, largest n): energies, and the cosines of its steps "
    "with the forces and with the way to the ground state",
    needs=frozenset({"denoiser", "paths", "forces", "relaxations"}),
    tables={"path": (Col.ID, Col.METHOD, Col.SEED, Col.FRAME, Col.STEPS_LEFT, Col.ENERGY_ABOVE_GROUND,
                     Col.PATH_GROUND_CONVERGED, Col.STATUS)},
    metrics=("alignment_gap", "alignment_gap_fixed_gs"), gated=("alignment_gap",),
    figures=("energy_path", "alignment", "alignment_epoch"), compute=_path_tables)
