"""The shared equivariance check fails for what is not equivariant."""

from __future__ import annotations

import numpy as np
import pytest

from tests.equivariance import assert_equivariant, random_orthogonal


def test_the_check_passes_equivariant_maps_and_catches_the_others(rng):
    numbers, pos = np.array([6, 1, 8, 1]), rng.normal(size=(4, 3))
    centred = lambda z, x: (x - x.mean(axis=0), z[:, None] * 1.0)  # noqa: E731 - rotates, ignores shifts
    assert_equivariant(centred, numbers, pos, rng, atol=1e-12)
    assert_equivariant(lambda z, x: (x, None), numbers, pos, rng, atol=1e-12, vectors_are_positions=True)
    with pytest.raises(AssertionError, match="vector part"):  # moves with the translation: not a displacement
        assert_equivariant(lambda z, x: (x, None), numbers, pos, rng, atol=1e-9)
    with pytest.raises(AssertionError, match="vector part"):  # chirality-dependent: fails under a reflection
        assert_equivariant(lambda z, x: (np.cross(x[1] - x[0], x[2] - x[0]) * np.ones((4, 1)), None), numbers,
                           pos, rng, atol=1e-9, reflect=True)
    with pytest.raises(AssertionError, match="invariant part"):  # an invariant that depends on the frame
        assert_equivariant(lambda z, x: (x - x.mean(axis=0), x[:, :1]), numbers, pos, rng, atol=1e-9)


def test_random_orthogonal_is_orthogonal_with_the_asked_handedness(rng):
    for reflect in (True, False):
        q = random_orthogonal(rng, reflect)
        np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(q) == pytest.approx(-1.0 if reflect else 1.0)
