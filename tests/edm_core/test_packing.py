"""Packed training samples: molecules side by side, geometry kept, gap respected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist, pdist

from edm_core.packing import packed, place_beside
from edm_core.train import Trainer, TrainSettings

from tests.edm_core.test_train import SMALL, toy_molecules


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gap=st.floats(2.0, 7.0), n=st.integers(1, 12), m=st.integers(1, 12))
def test_the_placed_molecule_keeps_its_shape_and_sits_at_the_gap(seed, gap, n, m):
    rng = np.random.default_rng(seed)
    fixed, moving = rng.normal(scale=1.5, size=(n, 3)), rng.normal(scale=1.5, size=(m, 3))
    placed = place_beside(fixed, moving, gap, rng)
    # a rigid motion: every internal distance kept
    np.testing.assert_allclose(pdist(placed), pdist(moving), atol=1e-9)
    assert cdist(fixed, placed).min() >= gap - 1e-9
    # one grid step (0.1 A) back towards the fixed molecule's centre, it would be too close
    shift = placed.mean(axis=0) - fixed.mean(axis=0)
    offset = np.linalg.norm(shift)
    if offset > 1e-9:
        back = placed - 0.1 * shift / offset
        assert cdist(fixed, back).min() < gap + 1e-9  # (the grid point itself may round to the gap)


def test_a_packed_sample_holds_every_molecule_centred(rng):
    water, methane = toy_molecules(rng, 2)[1], toy_molecules(rng, 2)[0]
    numbers, positions = packed([methane, water, water], rng, gap_range=(3.0, 3.0))
    np.testing.assert_array_equal(numbers, np.concatenate([methane[0], water[0], water[0]]))
    np.testing.assert_allclose(positions.mean(axis=0), 0, atol=1e-12)
    parts = np.split(positions, [5, 8])
    for part, (_, original) in zip(parts, [methane, water, water]):
        np.testing.assert_allclose(pdist(part), pdist(original), atol=1e-9)
    assert cdist(parts[0], parts[1]).min() >= 3.0 - 1e-9
    assert min(cdist(parts[2], np.concatenate(parts[:2])).min(), 99) >= 3.0 - 1e-9


def test_packing_settings_are_checked():
    with pytest.raises(ValueError, match="pack"):
        TrainSettings(pack=(0.5, 0.6))
    with pytest.raises(ValueError, match="start_fraction"):
        TrainSettings(pack=(0.5, 0.5), start_fraction=0.5)


def test_a_packed_run_trains_on_larger_samples_and_resumes_identically(tmp_path, rng):
    data = toy_molecules(rng, 16)
    settings_ = TrainSettings(epochs=2, batch_size=4, pack=(0.0, 0.5, 0.5), ema_decay=0.0, seed=3)
    trainer = Trainer(SMALL, settings_, data, data[:4], tmp_path / "a")
    for _ in range(5):
        samples, rows = trainer._samples(np.arange(4, 10))
        # two or three molecules each (3 methanes, 3 waters), every molecule of the batch once
        assert len(samples) in (2, 3) and sum(len(z) for z, _ in samples) == 3 * 5 + 3 * 3
        assert all(len(z) >= 6 for z, _ in samples)
        np.testing.assert_array_equal(rows, np.arange(len(samples)))
    straight = Trainer(SMALL, settings_, data, data[:4], tmp_path / "b")
    straight.fit(progress=False)
    killed = Trainer(SMALL, settings_, data, data[:4], tmp_path / "c")
    killed.fit(progress=False, stop_after_steps=6)
    resumed = Trainer(SMALL, settings_, data, data[:4], tmp_path / "c")
    resumed.fit(progress=False)
    for key, value in straight.model.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.model.state_dict()[key].numpy(), value.numpy())
