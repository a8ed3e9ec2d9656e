"""Training: the loss goes down, a killed run resumes to the same state, clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_core import EDMConfig, load_checkpoint
from edm_core.train import GradientClipper, Trainer, TrainSettings

SMALL = EDMConfig(nf=16, n_layers=2)


def toy_molecules(rng, n: int) -> list:
    """Water-like and methane-like molecules with jitter: a learnable toy set."""
    out = []
    water = np.array([[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]])
    methane = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                        [0.63, -0.63, -0.63]])
    for i in range(n):
        if i % 2:
            out.append((np.array([8, 1, 1]), water + rng.normal(scale=0.02, size=water.shape)))
        else:
            out.append((np.array([6, 1, 1, 1, 1]), methane + rng.normal(scale=0.02, size=methane.shape)))
    return out


def test_training_lowers_the_validation_loss(tmp_path, rng):
    data = toy_molecules(rng, 32)
    settings = TrainSettings(epochs=25, batch_size=8, lr=2e-3, ema_decay=0.0, seed=1)
    trainer = Trainer(SMALL, settings, data, data[:16], tmp_path / "run")
    before = trainer.validation_loss(trainer.model)
    history = trainer.fit(progress=False)
    assert history[-1]["valid_loss"] < 0.6 * before
    assert len(history) == 25 and history[-1]["step"] == 100


def test_a_killed_run_resumes_to_the_same_state(tmp_path, rng):
    data = toy_molecules(rng, 24)
    settings = TrainSettings(epochs=3, batch_size=8, lr=1e-3, lr_final=1e-4, ema_decay=0.9, seed=2)
    straight = Trainer(SMALL, settings, data, data[:8], tmp_path / "a")
    straight.fit(progress=False)

    killed = Trainer(SMALL, settings, data, data[:8], tmp_path / "b")
    killed.fit(progress=False, stop_after_steps=5)  # dies in epoch 2; state on disk is epoch 1's
    resumed = Trainer(SMALL, settings, data, data[:8], tmp_path / "b")
    assert resumed.epoch == 1 and resumed.step == 3
    resumed.fit(progress=False)
    for key, value in straight.model.model.state_dict().items():
        torch.testing.assert_close(resumed.model.model.state_dict()[key], value, rtol=0, atol=0)
    def without_time(history):
        return [{k: v for k, v in h.items() if k != "wall_s"} for h in history]

    assert without_time(resumed.history) == without_time(straight.history)


def test_epoch_checkpoints_load_and_carry_a_card(tmp_path, rng):
    data = toy_molecules(rng, 8)
    trainer = Trainer(SMALL, TrainSettings(epochs=2, batch_size=4, checkpoint_every=1), data, data,
                      tmp_path / "run", data_description={"dataset": "toy"})
    trainer.fit(progress=False)
    model = load_checkpoint(tmp_path / "run" / "epoch_0002")
    assert model.metadata["epoch"] == 2 and model.metadata["data"]["dataset"] == "toy"
    assert model.metadata["n_parameters"] == model.n_parameters
    assert np.isfinite(model.metadata["valid_loss"])


def test_t_max_restricts_the_sampled_times(rng):
    from edm_core.diffusion import Noise

    model = Trainer(SMALL, TrainSettings(t_max=0.05), toy_molecules(rng, 4), [], "unused").model
    seen = []
    original = model.model.predict_noise
    model.model.predict_noise = lambda z, t, m: (seen.append(t.clone()), original(z, t, m))[1]
    x, oh, ch, mask = model.pack(toy_molecules(rng, 64))
    model.model.l2_loss(model.normalize(x, oh, ch, mask), mask, Noise.from_seed(0), t_max=0.05)
    t = torch.cat(seen)
    assert t.max() <= 0.05 + 1e-9 and t.min() >= 0
    with pytest.raises(ValueError, match="t_max"):
        TrainSettings(t_max=0.0)


def test_gradient_clipper_follows_the_queue_rule():
    clipper = GradientClipper()
    assert clipper.max_norm == pytest.approx(1.5 * 3000)
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 5.0)  # norm 10
    assert clipper(p) == pytest.approx(10.0)
    q = np.array([3000.0, 10.0])
    assert clipper.max_norm == pytest.approx(1.5 * q.mean() + 2 * q.std())
    p.grad = torch.full((4,), 1e6)
    limit = clipper.max_norm
    clipper(p)
    assert float(p.grad.norm()) == pytest.approx(limit, rel=1e-5)  # clipped
    assert clipper.queue[-1] == pytest.approx(limit)  # the clip value is what gets recorded


def test_bucketed_batches_partition_the_set_with_little_padding(rng):
    from edm_core.train import batches

    sizes = rng.integers(3, 30, size=1000)
    for bucket in (False, True):
        cut = batches(sizes, 16, np.random.default_rng(0), bucket=bucket)
        assert sorted(np.concatenate(cut).tolist()) == list(range(1000))
    padded = lambda cut: sum(len(b) * sizes[b].max() for b in cut)  # noqa: E731
    random_cut = batches(sizes, 16, np.random.default_rng(0))
    bucketed = batches(sizes, 16, np.random.default_rng(0), bucket=True)
    assert padded(bucketed) < 0.75 * padded(random_cut)
    # the batches are not in size order (the training sees sizes mixed over an epoch)
    maxima = [sizes[b].max() for b in bucketed]
    assert maxima != sorted(maxima)


def test_cosine_learning_rate_runs_from_lr_to_lr_final():
    settings = TrainSettings(epochs=11, lr=1e-3, lr_final=1e-5)
    assert settings.lr_at(0) == pytest.approx(1e-3)
    assert settings.lr_at(10) == pytest.approx(1e-5)
    assert settings.lr_at(5) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert TrainSettings(lr=2e-4).lr_at(7) == 2e-4
    with pytest.raises(ValueError, match="lr_final"):
        TrainSettings(lr=1e-4, lr_final=1e-3)


def test_x0_error_of_a_zero_noise_predictor_is_sigma_over_alpha(rng):
    """Predicting zero noise leaves the whole noise in x0_hat: RMS = sigma_k / alpha_k
    times the centring factor sqrt((n - 1) / n) of zero-mean position noise."""
    data = toy_molecules(rng, 400)
    trainer = Trainer(SMALL, TrainSettings(t_max=0.05, batch_size=100), data[:1], data, "unused")
    diffusion = trainer.ema.model
    diffusion.predict_noise = lambda z, t, mask: torch.zeros_like(z)
    metrics = trainer.validation_losses()
    sizes = np.array([len(n) for n, _ in data])
    centring = np.sqrt(np.sum(sizes - 1) / np.sum(sizes))
    for k in (10, 30, 50):
        gamma = diffusion.gamma(torch.tensor([[k / 1000]]))
        expected = float(torch.sqrt(torch.sigmoid(gamma) / torch.sigmoid(-gamma))) * centring
        assert metrics[f"x0_rmse_n{k}"] == pytest.approx(expected, rel=0.05)
    assert metrics["valid_position_mse"] == pytest.approx(centring**2, rel=0.05)
