"""Position-only diffusion, schedules as data, and learned start steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_core import EDMConfig, EDMDenoiser
from edm_core.diffusion import Noise
from edm_core.schedule import alpha2_from_alpha_sigma, alpha2_table, gamma_table, polynomial_alpha2
from edm_core.time_predictor import PredictorConfig, TimePredictor, pack_molecules

TINY_POS = EDMConfig(nf=16, n_layers=2, position_only=True)


def molecules(rng, sizes=(4, 7, 5)):
    return [(rng.choice([1, 6, 7, 8], size=n), rng.normal(scale=1.2, size=(n, 3))) for n in sizes]


# -- schedules ---------------------------------------------------------------------------------
def test_cosine_schedule_matches_the_closed_form_where_no_beta_is_clipped():
    t = np.arange(1001) / 1000
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    a2 = alpha2_table(1000, schedule="cosine")
    np.testing.assert_allclose(a2[:990], (f / f[0])[:990], rtol=1e-9)
    assert np.all(np.diff(a2) <= 0) and a2[-1] < 1e-6


def test_a_tabulated_schedule_reproduces_the_named_one_it_was_read_from():
    a2 = polynomial_alpha2(1000)
    alpha2 = alpha2_from_alpha_sigma(np.sqrt(a2), np.sqrt(1 - a2))
    np.testing.assert_allclose(gamma_table(1000, schedule="tabulated", table=alpha2), gamma_table(1000), rtol=1e-9)
    config = EDMConfig(nf=8, n_layers=1, diffusion_noise_schedule="tabulated", diffusion_alpha2=tuple(alpha2))
    torch.testing.assert_close(EDMDenoiser(config).model.gamma.gamma, EDMDenoiser(EDMConfig(nf=8, n_layers=1)).model.gamma.gamma)


def test_a_tabulated_schedule_with_another_T_runs_the_sampler():
    a2 = alpha2_table(200, schedule="cosine")
    config = EDMConfig(nf=8, n_layers=1, diffusion_steps=200, diffusion_noise_schedule="tabulated",
                       diffusion_alpha2=tuple(a2))
    den = EDMDenoiser(config).eval()
    out = den.relax(molecules(np.random.default_rng(0))[:1], 150, seed=0)
    assert np.isfinite(out.positions[0]).all()
    with pytest.raises(ValueError, match="n_steps must be in 1..200"):
        den.relax(molecules(np.random.default_rng(0))[:1], 201)


@pytest.mark.parametrize("bad, message", [
    (dict(alpha=[1.0, 0.5], sigma=[0.0, 0.5]), "variance preserving"),
    (dict(alpha=[1.0, 0.8], sigma=[0.0]), "one length"),
])
def test_a_schedule_that_is_not_variance_preserving_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        alpha2_from_alpha_sigma(**bad)


@pytest.mark.parametrize("table, message", [
    (np.linspace(1, 0, 10), "T \\+ 1 = 1001"),
    (np.concatenate([[0.9], np.linspace(0.99, 0.0, 1000)]), "never increase"),
    (np.full(1001, np.nan), "finite"),
])
def test_a_bad_table_is_refused(table, message):
    with pytest.raises(ValueError, match=message):
        alpha2_table(1000, schedule="tabulated", table=table)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        alpha2_table(1000, schedule="linear")


# -- position-only diffusion -------------------------------------------------------------------
def test_position_only_noising_and_steps_never_touch_the_atom_types(rng):
    den = EDMDenoiser(TINY_POS).eval()
    x, one_hot, charges, mask = den.pack(molecules(rng))
    z = den.normalize(x, one_hot, charges, mask)
    t = torch.full((3, 1), 0.3)
    z_t, eps = den.model.noised(z, t, mask, Noise.from_seed(0))
    torch.testing.assert_close(z_t[..., 3:], z[..., 3:])
    assert eps[..., 3:].abs().max() == 0 and eps[..., :3].abs().max() > 0
    with torch.no_grad():
        z_s = den.model.reverse_step(z_t, 100, mask, Noise.from_seed(1))
    torch.testing.assert_close(z_s[..., 3:], z[..., 3:])
    assert den.capabilities.generate is False
    with pytest.raises(ValueError, match="position-only"):
        den.generate(2)


def test_the_position_only_loss_is_the_position_error_alone(rng):
    den = EDMDenoiser(TINY_POS)
    x, one_hot, charges, mask = den.pack(molecules(rng))
    eps = torch.zeros((3, x.shape[1], 3 + den.model.n_features))
    eps_hat = eps.clone()
    eps_hat[..., 3:] = 5.0  # a feature error must not count
    eps_hat[0, 0, 0] = 2.0
    errors = den.model.molecule_errors(eps, eps_hat, mask)
    np.testing.assert_allclose(errors.numpy(), [4.0 / (3 * x.shape[1]), 0, 0])


class IdealPositions:
    """The noise a perfect position-only model would predict, for known ground states."""

    def __init__(self, ground: list[tuple[np.ndarray, np.ndarray]], timesteps: int = 1000) -> None:
        self.ground = ground
        self.gamma = torch.as_tensor(gamma_table(timesteps))
        self.T = timesteps

    def __call__(self, positions, numbers, node_mask, t):
        target = torch.zeros_like(positions)
        for i, (_, pos) in enumerate(self.ground):
            target[i, :len(pos)] = torch.as_tensor(pos - pos.mean(0), dtype=positions.dtype)
        g = self.gamma[torch.round(t[:, 0] * self.T).long()][:, None, None].to(positions.dtype)
        eps = (positions - torch.sqrt(torch.sigmoid(-g)) * target) / torch.sqrt(torch.sigmoid(g))
        return eps * node_mask


def test_an_ideal_position_only_network_relaxes_to_the_ground_state(rng):
    ground = molecules(rng, sizes=(5,))
    start = [(ground[0][0], ground[0][1] + rng.normal(scale=0.05, size=ground[0][1].shape))]
    config = EDMConfig(atom_decoder=("H", "C", "N", "O"), include_charges=False, nf=1, n_layers=1,
                       position_only=True)
    den = EDMDenoiser.from_network(config, IdealPositions(ground), "ideal")
    out = den.relax(start, 50, noise_scale=0.0)
    expected = ground[0][1] - ground[0][1].mean(0) + start[0][1].mean(0)
    np.testing.assert_allclose(out.positions[0], expected, atol=1e-4)
    np.testing.assert_array_equal(out.decoded_numbers[0], ground[0][0])


def test_a_position_network_with_a_wrong_output_fails_naming_the_shape(rng):
    config = EDMConfig(atom_decoder=("H", "C", "N", "O"), include_charges=False, nf=1, n_layers=1,
                       position_only=True)
    den = EDMDenoiser.from_network(config, lambda x, z, m, t: torch.zeros((*x.shape[:2], 4)), "wide")
    with pytest.raises(ValueError, match="expected .*3\\) \\(the noise on positions"):
        den.relax(molecules(rng)[:1], 5)


# -- learned start steps -----------------------------------------------------------------------
class ReadSize:
    """A predictor that reads t = (number of atoms) / T: molecule i starts at n_i."""

    def __init__(self, T: int = 1000, constant: int | None = None) -> None:
        self.T, self.constant, self.calls = T, constant, 0

    def __call__(self, positions, numbers, node_mask):
        self.calls += 1
        n = node_mask.sum(dim=(1, 2)) if self.constant is None else torch.full((len(numbers),), float(self.constant))
        return (n / self.T)[:, None]


def test_itp_counts_down_from_each_molecules_own_reading(rng):
    torch.manual_seed(0)
    den = EDMDenoiser(EDMConfig(nf=16, n_layers=2)).eval()
    den.time_predictor = ReadSize()
    mols = molecules(rng)
    out = den.relax(mols, "auto-itp", noise_scale=0.0)
    np.testing.assert_array_equal(out.start_steps, [4, 7, 5])
    np.testing.assert_array_equal(out.network_evaluations, [5, 8, 6])
    for mol, got in zip(mols, out.positions):  # the same as a fixed start at that molecule's n
        np.testing.assert_allclose(got, den.relax([mol], len(mol[0]), noise_scale=0.0).positions[0], atol=1e-5)


def test_as_reads_again_every_step_and_stops_at_the_cap(rng):
    den = EDMDenoiser(EDMConfig(nf=16, n_layers=2)).eval()
    den.time_predictor = ReadSize(constant=5)  # always looks as noisy as step 5: never reaches 0
    out = den.relax(molecules(rng), "auto-as", max_steps=12)
    np.testing.assert_array_equal(out.start_steps, [5, 5, 5])
    np.testing.assert_array_equal(out.network_evaluations, [13, 13, 13])
    assert den.time_predictor.calls == 13  # the first reading and one after each step
    den.time_predictor = ReadSize(constant=0)
    np.testing.assert_array_equal(den.relax(molecules(rng), "auto-as").network_evaluations, [1, 1, 1])


def test_auto_without_a_predictor_or_with_a_bad_one_is_refused(rng):
    den = EDMDenoiser(EDMConfig(nf=16, n_layers=2)).eval()
    with pytest.raises(ValueError, match="no time-step predictor"):
        den.relax(molecules(rng), "auto-itp")
    den.time_predictor = lambda p, z, m: torch.full((len(z), 1), float("nan"))
    with pytest.raises(ValueError, match="finite times"):
        den.relax(molecules(rng), "auto-itp")
    with pytest.raises(ValueError, match="one of auto-itp, auto-as"):
        den.relax(molecules(rng), "auto-sometimes")
    with pytest.raises(ValueError, match="fixed start step"):
        den.relax(molecules(rng), "auto-as", evaluations=2)


def test_the_time_predictor_is_invariant_and_permutation_blind(rng):
    torch.manual_seed(0)
    predictor = TimePredictor(PredictorConfig(hidden=16, n_layers=2, n_rbf=16)).eval()
    numbers, pos = molecules(rng, sizes=(6,))[0]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    perm = rng.permutation(6)
    variants = [(numbers, pos), (numbers, pos @ q.T + rng.normal(size=3)), (numbers[perm], pos[perm])]
    with torch.no_grad():
        t = [float(predictor(*pack_molecules([v]))) for v in variants]
    np.testing.assert_allclose(t, t[0], rtol=1e-5)
    assert 0 < t[0] < predictor.config.t_range
    with torch.no_grad():  # padding does not change a molecule's reading
        batch = predictor(*pack_molecules([(numbers, pos), molecules(rng, sizes=(9,))[0]]))
    np.testing.assert_allclose(float(batch[0]), t[0], rtol=1e-5)


def test_training_the_time_predictor_records_its_step_error(rng):
    from edm_core.time_predictor import PredictorTraining, train_time_predictor

    mols = molecules(rng, sizes=(4, 5, 6, 7, 5, 4))
    predictor, record = train_time_predictor(mols, mols[:3], alpha2_table(1000),
                                             PredictorConfig(hidden=8, n_layers=1, n_rbf=8),
                                             PredictorTraining(epochs=2, batch_size=2), progress=False)
    assert [h["epoch"] for h in record["history"]] == [1, 2] and record["n_train"] == 6
    assert 0 <= record["valid_step_mae"] <= 100 and record["valid_step_mae"] == record["history"][-1]["valid_step_mae"]
    with torch.no_grad():
        t = predictor(*pack_molecules(mols))
    assert t.shape == (6, 1) and bool(((t > 0) & (t < 0.1)).all())
