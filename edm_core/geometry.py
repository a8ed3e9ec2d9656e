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


def coincident_atoms_message(positions: np.ndarray) -> str | None:
    """Why the atoms at ``positions`` are coincident, or None when no two are closer
    than :data:`MIN_DISTANCE_ANG` (the message shared by the model's and the oracles' checks)."""
    if len(positions) < 2:
        return None
    i, j, d = closest_pair(positions)
    if d >= MIN_DISTANCE_ANG:
        return None
    return f"atoms {i} and {j} are {d:.3f} A apart (coincident; minimum {MIN_DISTANCE_ANG} A)"

