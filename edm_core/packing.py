"""Training samples of several molecules side by side: size augmentation for EGNNs.

EDM's EGNN sums messages over every other atom (no cutoff, normalisation factor 1),
so its activations grow with the number of atoms, and a network trained only on
small molecules breaks on larger ones: a QM9 model (at most 29 atoms) gives a
position-noise error of ~10^5 on 40-50-atom molecules. Drug-like training sets of
at most 20 heavy atoms (about 50 atoms) are evaluated on GEOM-DRUGS molecules of up
to ~120. Packing two or three training molecules into one sample, each at contact
distance from the others, shows the network such sizes and distances; every molecule
keeps its own ground-state geometry, so the target is still "the ground state", only
of a larger system. Measured on a network trained on single molecules, packed samples
start with losses of 10^3-10^7 (gradient norms 10^6-10^9 against ~60): start packing
with a low probability, or from the first step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

#: Shortest distance between atoms of two packed molecules is drawn from this range
#: (Angstrom): non-bonded contact, beyond every covalent bond of EDM's tables.
GAP_ANG = (3.0, 6.0)


def place_beside(fixed: np.ndarray, moving: np.ndarray, gap: float, rng: np.random.Generator,
                 resolution: float = 0.1) -> np.ndarray:
    """``moving`` (centred), randomly rotated and shifted along a random direction from
    the centre of ``fixed`` to the offset (on a ``resolution`` grid) just past the
    last at which an atom of it is closer than ``gap`` to ``fixed``: it touches from
    outside, never wraps around."""
    rotated = Rotation.random(random_state=rng).apply(moving - moving.mean(axis=0))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    reach = np.linalg.norm(fixed - fixed.mean(axis=0), axis=1).max() + np.linalg.norm(rotated, axis=1).max() + gap
    offsets = np.arange(0.0, reach + 2 * resolution, resolution)  # the last is past reach, rounding aside
    shifted = rotated[None] + (fixed.mean(axis=0) + offsets[:, None] * direction)[:, None]  # (n_offsets, m, 3)
    closest = np.sqrt(((shifted[:, :, None] - fixed[None, None]) ** 2).sum(-1)).min(axis=(1, 2))
    too_close = np.flatnonzero(closest < gap)
    return shifted[too_close[-1] + 1 if too_close.size else 0]


def packed(molecules: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
           gap_range: tuple[float, float] = GAP_ANG) -> tuple[np.ndarray, np.ndarray]:
    """One sample holding every molecule of ``molecules`` (numbers, positions), each
    next to those before it at a random contact gap; positions centred."""
    numbers = [np.asarray(molecules[0][0])]
    positions = np.asarray(molecules[0][1], dtype=float)
    for z, pos in molecules[1:]:
        placed = place_beside(positions, np.asarray(pos, dtype=float), rng.uniform(*gap_range), rng)
        numbers.append(np.asarray(z))
        positions = np.concatenate([positions, placed])
    return np.concatenate(numbers), positions - positions.mean(axis=0)
