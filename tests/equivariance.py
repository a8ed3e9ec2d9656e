"""One E(3) equivariance check for every model and backend test.

A function of a molecule (atomic numbers, positions in Angstrom) returns a
per-atom vector part (positions, or displacements such as noise or forces) and
optionally a per-atom invariant part (type channels). Equivariance under a
random orthogonal map R (reflections included), a translation t and a
permutation P of the atoms means::

    f(P z, P x R^T + t) = (P v R^T [+ t for positions], P h)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: (vector part (n, 3), invariant part (n, k) or None) of a molecule.
Equivariant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def random_orthogonal(rng: np.random.Generator, reflect: bool | None = None) -> np.ndarray:
    """A uniformly random 3 x 3 orthogonal matrix; a reflection when ``reflect``
    (or at random when None)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    if reflect or (reflect is None and rng.random() < 0.5):
        q[:, 0] *= -1
    return q


def assert_equivariant(fn: Equivariant, numbers: np.ndarray, positions: np.ndarray, rng: np.random.Generator,
                       atol: float, vectors_are_positions: bool = False, permute: bool = True,
                       reflect: bool | None = None) -> None:
    """Check ``fn`` on the molecule and on a randomly rotated (or reflected),
    translated and permuted copy.

    ``vectors_are_positions``: the vector part moves with the translation (a
    relaxed structure) rather than only rotating (noise, forces, displacements).
    """
    rotation = random_orthogonal(rng, reflect)
    shift = rng.normal(size=3) * 5.0
    perm = rng.permutation(len(numbers)) if permute else np.arange(len(numbers))
    v, h = fn(numbers, positions)
    v2, h2 = fn(numbers[perm], positions[perm] @ rotation.T + shift)
    expected = (np.asarray(v) @ rotation.T + (shift if vectors_are_positions else 0.0))[perm]
    np.testing.assert_allclose(v2, expected, atol=atol, err_msg="vector part not equivariant")
    if h is not None:
        np.testing.assert_allclose(h2, np.asarray(h)[perm], atol=atol, err_msg="invariant part not invariant")
