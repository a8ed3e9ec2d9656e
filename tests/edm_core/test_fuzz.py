"""Random molecules into the denoiser's entry points: every case either runs to
finite positions of the right shape or is refused with ModelInputError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edm_core import EDMConfig, EDMDenoiser, ModelInputError
from tests.reliability import MALFORMED, tally

torch.manual_seed(0)
MODEL = EDMDenoiser(EDMConfig(nf=8, n_layers=1)).eval()

coordinate = st.one_of(st.floats(-20, 20), st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))


@st.composite
def molecules(draw):
    n = draw(st.integers(0, 32))
    numbers = draw(st.lists(st.sampled_from([1, 6, 7, 8, 9, 17, 35, 0, 118]), min_size=n, max_size=n))
    positions = draw(st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=n, max_size=n))
    return np.array(numbers, dtype=int), np.array(positions, dtype=float).reshape(n, 3)


@settings(max_examples=80, deadline=None)
@given(mols=st.lists(molecules(), min_size=1, max_size=3), n_steps=st.integers(1, 4))
def test_relax_either_runs_or_refuses_clearly(mols, n_steps):
    tally(MALFORMED)
    try:
        out = MODEL.relax(mols, n_steps, seed=0, names=[f"m{i}" for i in range(len(mols))])
    except ModelInputError as exc:
        assert str(exc).startswith("m")  # names the molecule
        return
    for (numbers, _), pos in zip(mols, out.positions):
        assert pos.shape == (len(numbers), 3) and np.all(np.isfinite(pos))


@settings(max_examples=30, deadline=None)
@given(mol=molecules(), n=st.integers(1, 5))
def test_repeat_step_either_runs_or_refuses_clearly(mol, n):
    tally(MALFORMED)
    try:
        frames = MODEL.repeat_step(mol, n, n_repeats=3, burn_in=1, seed=0)
    except ModelInputError:
        return
    assert frames.shape == (2, len(mol[0]), 3) and np.all(np.isfinite(frames))


def test_edge_molecules_are_refused_by_name_or_relaxed_to_finite_positions():
    """The named hostile cases: a refusal names the molecule and says why; one
    refused molecule refuses the batch call (callers check molecules first, as the runner does)."""
    methane = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                        [0.63, -0.63, -0.63]])
    refused = {
        "no atoms": ((np.array([], dtype=int), np.zeros((0, 3))), "no atoms"),
        "too many": ((np.full(MODEL.config.max_n_nodes + 1, 6), np.arange(90.0).reshape(30, 3)), "at most 29"),
        "silicon": ((np.array([14, 1]), np.array([[0, 0, 0], [1.5, 0, 0]])), r"atomic number \[14\]"),
        "nan": ((np.array([6, 1]), np.array([[0, 0, 0], [np.nan, 0, 0]])), "positions must be finite"),
        "inf": ((np.array([6, 1]), np.array([[0, 0, 0], [0, np.inf, 0]])), "positions must be finite"),
        "coincident atoms": ((np.array([6, 1, 1]), np.array([[0, 0, 0], [1.1, 0, 0], [0, 0, 0.1]])),
                             r"atoms 0 and 2 are 0\.100 A apart \(coincident"),
        "far apart": ((np.array([1, 1]), np.array([[0, 0, 0], [0, 0, 1e30]])), r"atoms span 1e\+30 A"),
    }
    for name, (mol, reason) in refused.items():
        tally(MALFORMED)
        with pytest.raises(ModelInputError, match=rf"^{name}: .*{reason}"):
            MODEL.relax([(np.array([6, 1, 1, 1, 1]), methane), mol], 3, seed=0, names=["methane", name])
    accepted = {
        "single atom": (np.array([6]), np.zeros((1, 3))),
        "two fragments": (np.array([6, 1, 8, 1]), np.array([[0, 0, 0], [1.1, 0, 0], [9, 0, 0], [9.97, 0, 0]])),
    }
    for name, (numbers, positions) in accepted.items():
        tally(MALFORMED)
        (out,) = MODEL.relax([(numbers, positions)], 3, seed=0, names=[name]).positions
        assert out.shape == positions.shape and np.all(np.isfinite(out)), name


def test_the_closest_pair_search_is_exact_and_bounded(rng):
    import tracemalloc

    from edm_core.geometry import closest_pair

    pos = rng.uniform(0, 5, size=(60, 3))
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.diag(np.full(60, np.inf))
    i, j = np.unravel_index(np.argmin(d), d.shape)
    assert closest_pair(pos) == (min(i, j), max(i, j), pytest.approx(d.min()))
    same = pos.copy()
    same[17] = same[3]
    assert closest_pair(same) == (3, 17, 0.0)
    big = rng.uniform(0, 100, size=(30_000, 3))  # an N x N matrix would be 21.6 GB
    tracemalloc.start()
    closest_pair(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20
