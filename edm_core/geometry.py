"""Geometry checks shared by the model's and the oracles' input validation.

Torch-free on purpose: :mod:`bench.data` and :mod:`bench.oracles` import it in
worker processes that must not pay for importing torch.
"""

from __future__ import annotations

import numpy as np


#: Two atoms closer than this (Angstrom) are taken as coincident: no bonded pair
#: in any molecule of interest is shorter than 0.5 A (H2: 0.74 A). The network
#: would still return finite numbers for them, but no meaningful ones.
MIN_DISTANCE_ANG = 0.3

#: Largest span (Angstrom) of a molecule along any axis. A micrometre is far beyond
#: any molecule (GEOM-DRUGS' largest spans about 40 A), and squared distances of
#: such spans stay far inside float32's range, where 1e30 A would overflow to inf.
MAX_SPAN_ANG = 1.0e4


def closest_pair(positions: np.ndarray) -> tuple[int, int, float]:
    """The two closest atoms ``(i, j, distance)`` with ``i < j`` (at least two finite atoms).

    A KD-tree nearest-neighbour query: memory and time grow as N log N, so a file
    of 30,000 atoms costs megabytes, not the 21 GB of an N x N distance matrix.
    """
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=float)
    dist, index = cKDTree(positions).query(positions, k=2)
    i = int(np.argmin(dist[:, 1]))
    # with coincident atoms the query may list the partner before the atom itself
    j = int(index[i, 1] if index[i, 1] != i else index[i, 0])
    return min(i, j), max(i, j), float(dist[i, 1])


def geometry_problem(positions: np.ndarray) -> str | None:
    """Why the finite ``positions`` are not a molecule, or None: a span beyond
    :data:`MAX_SPAN_ANG` or two atoms closer than :data:`MIN_DISTANCE_ANG` (the
    message shared by the model's and the oracles' checks)."""
    if len(positions) < 2:
        return None
    span = float(np.max(np.ptp(positions, axis=0)))
    if span > MAX_SPAN_ANG:
        return f"atoms span {span:.3g} A (at most {MAX_SPAN_ANG:.0e} A; not a molecule)"
    i, j, d = closest_pair(positions)
    if d >= MIN_DISTANCE_ANG:
        return None
    return f"atoms {i} and {j} are {d:.3f} A apart (coincident; minimum {MIN_DISTANCE_ANG} A)"


def diameter(positions: np.ndarray) -> float:
    """The largest interatomic distance (Angstrom; 0 for fewer than two atoms).

    All pairs (``pdist``): meant for molecules a model takes (at most a few
    hundred atoms), after the size check.
    """
    from scipy.spatial.distance import pdist

    positions = np.asarray(positions, dtype=float)
    return float(pdist(positions).max()) if len(positions) > 1 else 0.0


def aligned_onto(probe: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``probe`` rigidly moved onto ``reference`` (same atom order): centred on the
    reference's centroid and rotated by the Kabsch rotation (scipy's ``align_vectors``,
    proper rotations only) that minimises the RMSD."""
    import warnings

    from scipy.spatial.transform import Rotation

    probe, reference = np.asarray(probe, dtype=float), np.asarray(reference, dtype=float)
    p, r = probe - probe.mean(axis=0), reference - reference.mean(axis=0)
    if len(probe) < 2:
        return p + reference.mean(axis=0)
    with warnings.catch_warnings():  # a linear molecule: any rotation about its axis is optimal
        warnings.simplefilter("ignore", UserWarning)
        rotation, _ = Rotation.align_vectors(r, p)
    return rotation.apply(p) + reference.mean(axis=0)
