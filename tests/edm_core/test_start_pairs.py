"""Start structures as corruptions: a labelled family trained on (start, ground
state) pairs learns to undo the start, which Gaussian noise alone never shows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from edm_core import EDMConfig
from edm_core.diffusion import Noise, StartCorruption
from edm_core.geometry import aligned_onto
from edm_core.train import Trainer, TrainSettings

SMALL = EDMConfig(nf=16, n_layers=2)


def kabsch_rmsd(probe: np.ndarray, reference: np.ndarray) -> float:
    """Float64 reference: RMSD after the optimal proper rotation (SVD of the covariance)."""
    p, r = probe - probe.mean(0), reference - reference.mean(0)
    u, _, vt = np.linalg.svd(p.T @ r)
    sign = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, sign]) @ vt
    return float(np.sqrt((((p @ rotation) - r) ** 2).sum(1).mean()))


def stretched(positions: np.ndarray, factor: float = 1.15) -> np.ndarray:
    """Water with both O-H bonds stretched: a systematic start error."""
    out = positions.copy()
    out[1:] = out[0] + factor * (out[1:] - out[0])
    return out


def water(bond: float, angle_deg: float) -> np.ndarray:
    half = np.radians(angle_deg) / 2
    return np.array([[0, 0, 0], [0, bond * np.sin(half), bond * np.cos(half)],
                     [0, -bond * np.sin(half), bond * np.cos(half)]])


def water_pairs(rng, n: int) -> tuple[list, list]:
    """(ground states, starts): water of widely spread bond lengths, so that a start
    (both bonds 15 % longer, rotated and shifted at random) looks like another ground
    state to a model of ground states; only a model of the pairs can undo it."""
    grounds, starts = [], []
    for _ in range(n):
        bond, angle = rng.uniform(0.9, 1.05), rng.uniform(95, 115)
        ground = water(bond, angle)
        grounds.append((np.array([8, 1, 1]), ground - ground.mean(0)))
        start = water(1.15 * bond, angle)
        starts.append(Rotation.random(random_state=rng).apply(start) + rng.normal(size=3))
    return grounds, starts


def test_aligned_onto_undoes_a_rigid_motion_but_not_a_reflection(rng):
    x = rng.normal(size=(8, 3))
    moved = Rotation.random(random_state=rng).apply(x) + [3.0, -1.0, 2.0]
    np.testing.assert_allclose(aligned_onto(moved, x), x, atol=1e-10)
    mirrored = x * [-1, 1, 1]
    rmsd = np.sqrt(((aligned_onto(mirrored, x) - x) ** 2).sum(1).mean())
    assert rmsd == pytest.approx(kabsch_rmsd(mirrored, x), rel=1e-9) and rmsd > 0.1
    linear = np.array([[0.0, 0, 0], [0, 0, 1.2]])
    np.testing.assert_allclose(np.linalg.norm(np.diff(aligned_onto(linear, x[:2]), axis=0)), 1.2)


def test_a_paired_molecule_lies_on_a_relaxation_path_from_its_start(rng):
    """z_t - alpha_t x is c d (+ sigma_t eps) with (sigma_t / sigma_hi)^2 <= c <= 1 and
    t <= hi; features are clean and their target zero; unpaired molecules keep
    their t and plain Gaussian noise."""
    grounds, starts = water_pairs(rng, 256)
    trainer = Trainer(SMALL, TrainSettings(t_max=0.05), grounds, [], "unused")
    model, diffusion = trainer.model, trainer.model.model
    x, oh, ch, mask = model.pack(grounds)
    z = model.normalize(x, oh, ch, mask)
    shifts = torch.as_tensor(np.stack([aligned_onto(s, g) - g for (_, g), s in zip(grounds, starts)]), dtype=z.dtype)
    paired = torch.arange(256) % 2 == 0
    corruption = StartCorruption(shifts * paired[:, None, None], paired, (20, 30))
    t_in = torch.randint(0, 1001, (256, 1), generator=torch.Generator().manual_seed(0))
    eps = diffusion.sample_noise(Noise.from_seed(1), mask)
    t_int, z_t, target = diffusion.start_corrupted(z, t_in, eps, corruption, torch.Generator().manual_seed(2))
    gamma = diffusion.gamma(t_int.to(z.dtype) / 1000)[:, :, None]
    alpha, sigma = diffusion.alpha(gamma), diffusion.sigma(gamma)
    torch.testing.assert_close(z_t, alpha * z + sigma * target)  # the target is the noise z_t implies
    torch.testing.assert_close(target[~paired], eps[~paired])
    assert torch.equal(t_int[~paired], t_in[~paired]) and int(t_int[paired].max()) <= 30
    assert torch.all(target[paired][..., 3:] == 0)
    sigma_hi = diffusion.sigma(diffusion.gamma(torch.tensor([[0.03]], dtype=z.dtype)))
    c_min = ((sigma.flatten(1) / sigma_hi) ** 2).flatten()
    seen_start, seen_noise = False, False
    for b in torch.nonzero(paired).flatten():
        residual = (z_t[b, :, :3] - alpha[b] * z[b, :, :3]).numpy()
        gaussian = (sigma[b] * eps[b, :, :3]).numpy()
        d = shifts[b].numpy()
        for u, candidate in ((0, residual), (1, residual - gaussian)):
            c = float((candidate * d).sum() / (d * d).sum())
            if np.allclose(candidate, c * d, atol=1e-5):
                assert c_min[b] - 1e-5 <= c <= 1 + 1e-5
                seen_start |= c > 1 - 1e-5
                seen_noise |= u == 1
                break
        else:
            pytest.fail(f"molecule {int(b)}: z_t is not alpha x + c d (+ sigma eps)")
    assert seen_start and seen_noise  # the start itself (t = n) and the ancestral variant occur


def test_start_rmsd_in_validation_matches_a_float64_kabsch(rng):
    grounds, starts = water_pairs(rng, 40)
    trainer = Trainer(SMALL, TrainSettings(t_max=0.05), grounds[:1], grounds, "unused", valid_starts=starts)
    diffusion = trainer.ema.model
    diffusion.predict_noise = lambda z, t, mask: torch.zeros_like(z)
    metrics = trainer.validation_losses()
    expected = np.mean([kabsch_rmsd(s, g) for (_, g), s in zip(grounds, starts)])
    assert metrics["start_rmsd"] == pytest.approx(expected, abs=1e-5)  # rounded to 5 decimals
    # predicting zero noise keeps the start: x0_hat = start / alpha_n
    assert metrics["start_x0_rmsd_n20"] == pytest.approx(expected, rel=0.01)


def test_training_on_pairs_teaches_the_network_to_undo_the_start(tmp_path, rng):
    """After the same training, one network call on the start (as z_20) moves it much
    closer to the ground state with start corruptions than with Gaussian noise alone."""
    grounds, starts = water_pairs(rng, 64)
    valid_grounds, valid_starts = water_pairs(rng, 16)
    result = {}
    for fraction in (0.0, 1.0):
        settings = TrainSettings(epochs=30, batch_size=16, lr=2e-3, ema_decay=0.0, t_max=0.05, seed=3,
                                 start_fraction=fraction)
        trainer = Trainer(SMALL, settings, grounds, valid_grounds, tmp_path / str(fraction),
                          train_starts=starts, valid_starts=valid_starts)
        result[fraction] = trainer.fit(progress=False)[-1]
    start = result[1.0]["start_rmsd"]
    assert result[0.0]["start_rmsd"] == start and start > 0.1
    for k in (20, 50):
        pairs, gaussian = result[1.0][f"start_x0_rmsd_n{k}"], result[0.0][f"start_x0_rmsd_n{k}"]
        assert pairs < 0.6 * start and pairs < 0.6 * gaussian, (k, pairs, gaussian, start)


def test_far_starts_are_left_out_and_bad_settings_refused(rng):
    grounds, starts = water_pairs(rng, 4)
    starts[1] = grounds[1][1] * 3.0  # RMSD far beyond 0.25 A: another structure, not a start
    trainer = Trainer(SMALL, TrainSettings(start_fraction=1.0), grounds, [], "unused", train_starts=starts)
    assert [s is None for s in trainer.train_shift] == [False, True, False, False]
    with pytest.raises(ValueError, match="start structure of shape"):
        Trainer(SMALL, TrainSettings(), grounds, [], "unused", train_starts=[s[:2] for s in starts])
    with pytest.raises(ValueError, match="3 start structures for 4 molecules"):
        Trainer(SMALL, TrainSettings(), grounds, [], "unused", train_starts=starts[:3])
    with pytest.raises(ValueError, match="start_fraction"):
        TrainSettings(start_fraction=1.5)
    with pytest.raises(ValueError, match="start_steps"):
        TrainSettings(start_steps=(50, 20))
