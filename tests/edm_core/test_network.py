"""The EDM network and checkpoints against the spec: original-format files built
from the spec's key names, an independent float64 reference, equivariance, masks."""

from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest
import torch

from edm_core import CheckpointError, EDMConfig, EDMDenoiser, ModelInputError, load_checkpoint, save_checkpoint
from edm_core.diffusion import Noise
from tests.edm_core.reference import eps_hat_reference
from tests.equivariance import assert_equivariant, random_orthogonal

QM9_TYPES = [1, 6, 7, 8, 9]


def spec_state_dict(n_types: int, charges: bool, nf: int, n_layers: int, rng: np.random.Generator) -> dict:
    """A random state dict with exactly the keys and shapes of an original EDM checkpoint."""
    f = n_types + int(charges) + 1

    def lin(name: str, out: int, inp: int, bias: bool = True, scale: float = 0.3) -> dict:
        d = {f"{name}.weight": torch.tensor(rng.normal(scale=scale / np.sqrt(inp), size=(out, inp)),
                                            dtype=torch.float32)}
        if bias:
            d[f"{name}.bias"] = torch.tensor(rng.normal(scale=0.1, size=out), dtype=torch.float32)
        return d

    x = np.arange(1001) / 1000
    a2 = np.concatenate([[1.0], (1 - x**2) ** 2])
    a2 = np.cumprod(np.clip(a2[1:] / a2[:-1], 0.001, 1.0)) * (1 - 2e-5) + 1e-5
    state = {"buffer": torch.zeros(1), "gamma.gamma": torch.tensor(-(np.log(a2) - np.log(1 - a2)), dtype=torch.float32)}
    state |= lin("dynamics.egnn.embedding", nf, f) | lin("dynamics.egnn.embedding_out", f, nf)
    for i in range(n_layers):
        p = f"dynamics.egnn.e_block_{i}."
        state |= lin(p + "gcl_0.edge_mlp.0", nf, 2 * nf + 2) | lin(p + "gcl_0.edge_mlp.2", nf, nf)
        state |= lin(p + "gcl_0.node_mlp.0", nf, 2 * nf) | lin(p + "gcl_0.node_mlp.2", nf, nf)
        state |= lin(p + "gcl_0.att_mlp.0", 1, nf)
        state |= lin(p + "gcl_equiv.coord_mlp.0", nf, 2 * nf + 2) | lin(p + "gcl_equiv.coord_mlp.2", nf, nf)
        state |= lin(p + "gcl_equiv.coord_mlp.4", 1, nf, bias=False, scale=1.0)
    return state


def write_original(path, dataset: str, charges: bool, nf: int, n_layers: int, rng, old_pickle: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(
        dataset=dataset, remove_h=False, model="egnn_dynamics", nf=nf, n_layers=n_layers, inv_sublayers=1,
        attention=True, tanh=True, norm_constant=1, sin_embedding=False, include_charges=charges,
        normalize_factors=[1, 4, 10], diffusion_steps=1000, diffusion_noise_schedule="polynomial_2",
        diffusion_noise_precision=1e-5, diffusion_loss_type="l2", ema_decay=0.9999, lr=1e-4, batch_size=64,
        clip_grad=True, condition_time=True, conditioning=[], context_node_nf=0, device=torch.device("cpu"),
    )
    if not old_pickle:
        args.normalization_factor, args.aggregation_method = 1, "sum"
    (path / "args.pickle").write_bytes(pickle.dumps(args))
    n_types = 5 if dataset == "qm9" else 16
    state = spec_state_dict(n_types, charges, nf, n_layers, rng)
    torch.save(state, path / "generative_model_ema.npy")
    return state


def random_molecule(rng, n: int, types=QM9_TYPES):
    numbers = rng.choice(types, size=n)
    positions = rng.normal(scale=1.2, size=(n, 3))
    return numbers, positions


def z_of(model: EDMDenoiser, molecules):
    x, one_hot, charges, mask = model.pack(molecules)
    return model.normalize(x, one_hot, charges, mask), mask


@pytest.mark.parametrize(("dataset", "charges", "n_keys"), [("qm9", True, 141), ("geom", False, 66)])
def test_published_configurations_load_with_no_key_left_over(tmp_path, rng, dataset, charges, n_keys):
    state = write_original(tmp_path / dataset, dataset, charges, nf=256, n_layers=9 if dataset == "qm9" else 4,
                           rng=rng)
    assert len(state) == n_keys
    model = load_checkpoint(tmp_path / dataset)
    assert set(model.model.state_dict()) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(model.model.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize(("dataset", "charges"), [("qm9", True), ("qm9", False), ("geom", False)])
def test_forward_matches_the_float64_reference(tmp_path, rng, dataset, charges):
    nf, n_layers = 24, 3
    state = write_original(tmp_path / "ckpt", dataset, charges, nf, n_layers, rng, old_pickle=dataset == "qm9")
    model = load_checkpoint(tmp_path / "ckpt")
    types = QM9_TYPES if dataset == "qm9" else [1, 6, 7, 8, 16, 17]
    mols = [random_molecule(rng, n, types) for n in (7, 3, 11)]
    z, mask = z_of(model, mols)
    z = z + torch.tensor(rng.normal(scale=0.3, size=z.shape), dtype=torch.float32) * mask  # a noisy latent
    z = torch.cat([z[..., :3] - (z[..., :3] * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True), z[..., 3:]],
                  -1) * mask
    t = torch.tensor([[0.31], [0.02], [0.77]])
    out = model.predict_noise(z, t, mask).detach().numpy()
    for b, (numbers, _) in enumerate(mols):
        n = len(numbers)
        ref = eps_hat_reference(state, z[b, :n].double().numpy(), float(t[b]), n_layers)
        scale = np.abs(ref).max()
        assert np.abs(out[b, :n] - ref).max() / scale < 1e-5
        assert np.all(out[b, n:] == 0)


def test_the_noise_table_matches_the_closed_form_and_checked_values(tmp_path, rng):
    model = EDMDenoiser.__new__(EDMDenoiser)

    model = EDMDenoiser(EDMConfig(nf=8, n_layers=1))
    g = model.gamma(torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(g, torch.tensor([-11.5129, -0.2513, 11.5125]), atol=1e-4, rtol=0)
    ref = spec_state_dict(5, True, 8, 1, rng)["gamma.gamma"]
    torch.testing.assert_close(model.model.gamma.gamma, ref, atol=0, rtol=0)
    assert model.gamma(torch.tensor(0.0004)).item() == model.gamma(torch.tensor(0.0)).item()  # round(t T)


class FixedNoise(Noise):
    """Injected noise: a fixed tensor (or zeros), for exact checks of the sampler."""

    def __init__(self, value: float | torch.Tensor = 0.0) -> None:
        super().__init__()
        object.__setattr__(self, "value", value)

    def sample(self, node_mask, n_features):
        b, n, _ = node_mask.shape
        v = torch.as_tensor(self.value, dtype=node_mask.dtype).expand(b, n, 3 + n_features)
        return v * node_mask


def test_reverse_step_mean_and_std_follow_the_spec_formulas(rng):

    model = EDMDenoiser(EDMConfig(nf=16, n_layers=2)).double()
    mols = [random_molecule(rng, 6)]
    z, mask = z_of(model, mols)
    z, mask = z.double(), mask.double()
    s = 37
    eps_hat = model.predict_noise(z, torch.tensor([[(s + 1) / 1000]], dtype=torch.float64), mask)
    g = model.model.gamma.gamma.double()
    gs, gt = g[s], g[s + 1]
    sig2 = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731 - sigma^2 = sigmoid(gamma)
    a_ts = np.sqrt((1 - sig2(gt.item())) / (1 - sig2(gs.item())))
    # sigma2_{t|s} = sigma_t^2 - alpha_{t|s}^2 sigma_s^2 (EDM eq. 6)
    s2_ts = sig2(gt.item()) - a_ts**2 * sig2(gs.item())
    mu = z / a_ts - s2_ts / a_ts / np.sqrt(sig2(gt.item())) * eps_hat
    mu[..., :3] -= mu[..., :3].mean(dim=1, keepdim=True)  # the spec re-centres the position block
    std = np.sqrt(s2_ts) * np.sqrt(sig2(gs.item())) / np.sqrt(sig2(gt.item()))
    got_mean = model.model.reverse_step(z, s, mask, FixedNoise(0.0))
    torch.testing.assert_close(got_mean, mu * mask, atol=1e-9, rtol=1e-9)
    unit = torch.zeros_like(z)
    unit[0, 0, 3] = 1.0  # a feature coordinate: not re-centred
    got = model.model.reverse_step(z, s, mask, FixedNoise(unit))
    assert (got - got_mean)[0, 0, 3].item() == pytest.approx(std, rel=1e-9)


def test_noise_prediction_and_relaxation_are_equivariant(rng):
    model = EDMDenoiser(EDMConfig(nf=32, n_layers=3)).double()
    numbers, pos = random_molecule(rng, 9)

    def noise(numbers, positions):
        z, mask = z_of(model, [(numbers, positions)])
        eps = model.predict_noise(z.double(), torch.tensor([[0.4]], dtype=torch.float64), mask.double())[0]
        eps = eps.detach().numpy()
        return eps[:, :3], eps[:, 3:]

    def relaxed(numbers, positions):
        return model.relax([(numbers, positions)], 10, noise=FixedNoise(0.0)).positions[0], None

    assert_equivariant(noise, numbers, pos, rng, atol=1e-8)
    assert_equivariant(relaxed, numbers, pos, rng, atol=1e-5, vectors_are_positions=True)


def test_padding_never_influences_real_atoms_and_ragged_equals_alone(rng):

    model = EDMDenoiser(EDMConfig(nf=32, n_layers=2))
    a, b = random_molecule(rng, 5), random_molecule(rng, 12)
    z, mask = z_of(model, [a, b])
    garbage = z.clone()
    garbage[0, 5:] = torch.tensor(rng.normal(scale=50, size=garbage[0, 5:].shape), dtype=torch.float32)
    t = torch.tensor([[0.2], [0.2]])
    e = model.predict_noise(z, t, mask)
    e_garbage = model.predict_noise(garbage, t, mask)
    torch.testing.assert_close(e[0, :5], e_garbage[0, :5], atol=1e-6, rtol=1e-6)
    together = model.relax([a, b], 15, noise=FixedNoise(0.0))
    alone = [model.relax([m], 15, noise=FixedNoise(0.0)).positions[0] for m in (a, b)]
    for got, ref in zip(together.positions, alone):
        np.testing.assert_allclose(got, ref, atol=2e-5)


def test_relax_is_reproducible_and_returns_the_path(rng):

    model = EDMDenoiser(EDMConfig(nf=16, n_layers=2))
    mols = [random_molecule(rng, n) for n in (4, 8)]
    r1 = model.relax(mols, 12, seed=3, keep_path=True)
    r2 = model.relax(mols, 12, seed=3, keep_path=True)
    r3 = model.relax(mols, 12, seed=4)
    np.testing.assert_array_equal(r1.positions[1], r2.positions[1])
    assert not np.allclose(r1.positions[1], r3.positions[1])
    assert r1.paths[0].shape == (14, 4, 3)
    np.testing.assert_allclose(r1.paths[1][0], mols[1][1], atol=1e-5)  # the path starts at the input
    np.testing.assert_allclose(r1.paths[1][-1], r1.positions[1])
    np.testing.assert_allclose(r1.positions[0].mean(0), mols[0][1].mean(0), atol=1e-5)  # centred as the input
    noised = model.relax(mols, 12, seed=3, add_noise=True)
    assert not np.allclose(noised.positions[1], r1.positions[1])


def test_repeat_step_and_generate_shapes_and_seeds(rng):

    model = EDMDenoiser(EDMConfig(nf=16, n_layers=1))
    numbers, pos = random_molecule(rng, 5)
    frames = model.repeat_step((numbers, pos), n=3, n_repeats=12, burn_in=4, seed=1)
    assert frames.shape == (8, 5, 3)
    np.testing.assert_array_equal(frames, model.repeat_step((numbers, pos), 3, 12, 4, seed=1))
    gen = model.generate(2, n_nodes=[4, 6], keep_chain=True, seed=0)
    assert gen["chain"].shape == (1001, 2, 6, 3 + 6)
    assert [len(n) for n in gen["numbers"]] == [4, 6] and set(np.concatenate(gen["numbers"])) <= set(QM9_TYPES)
    assert np.all(gen["chain"][:, 0, 4:] == 0)  # padding stays zero through the chain


def test_repeat_step_resets_the_types_each_repeat_and_steps_from_n_minus_1(rng):
    """The study's Boltzmann chain: only positions carry over; every repeat is the
    step n -> n - 1, fed the molecule's own atom types and charges."""

    model = EDMDenoiser(EDMConfig(nf=16, n_layers=1))
    numbers, pos = random_molecule(rng, 5)
    x, one_hot, charges, mask = model.pack([(numbers, pos)])
    types = model.normalize(x, one_hot, charges, mask)[..., 3:]
    seen = []
    step = model.model.reverse_step

    def recording(z, s, node_mask, noise):
        seen.append((s, z[..., 3:].clone()))
        return step(z, s, node_mask, noise)

    model.model.reverse_step = recording
    model.repeat_step((numbers, pos), n=7, n_repeats=5, seed=2)
    assert [s for s, _ in seen] == [6] * 5
    for _, block in seen:
        np.testing.assert_array_equal(block.numpy(), types.numpy())


@pytest.mark.parametrize(
    ("molecule", "message"),
    [
        ((np.array([6, 17]), np.zeros((2, 3)) + [[0, 0, 0], [1.7, 0, 0]]), "element\\(s\\) with atomic number \\[17\\] not among"),
        ((np.ones(30, dtype=int), np.arange(90.0).reshape(30, 3)), "30 atoms, this checkpoint supports at most 29"),
        ((np.array([6, 1]), np.array([[0, 0, 0], [np.nan, 0, 0]])), "positions must be finite"),
    ],
)
def test_bad_molecules_are_clear_errors(molecule, message):

    model = EDMDenoiser(EDMConfig(nf=8, n_layers=1))
    with pytest.raises(ModelInputError, match=f"mol-7: {message}"):
        model.relax([molecule], 5, names=["mol-7"])


def test_a_molecule_wider_than_the_checkpoint_takes_is_refused_and_one_as_wide_is_not(rng):
    from scipy.spatial.distance import pdist

    numbers, pos = random_molecule(rng, 6)
    width = float(pdist(pos).max())  # an independent reading of the largest interatomic distance
    exact = EDMDenoiser(EDMConfig(nf=8, n_layers=1, max_diameter=width + 1e-9))
    exact.relax([(numbers, pos)], 3, names=["mol-3"])  # as wide as it takes: relaxed
    narrower = EDMDenoiser(EDMConfig(nf=8, n_layers=1, max_diameter=width - 0.01))
    rotated = pos @ random_orthogonal(rng).T + 5.0  # the width is the molecule's, whatever its pose
    with pytest.raises(ModelInputError, match=rf"mol-3: atoms {width:.2f} A apart, .* at most {width - 0.01:.2f} A"):
        narrower.relax([(numbers, rotated)], 3, names=["mol-3"])
    assert EDMConfig.from_json(narrower.config.to_json()) == narrower.config
    assert EDMConfig().max_diameter is None  # original checkpoints: no limit
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_diameter must be a finite number > 0"):
            EDMConfig(max_diameter=bad)


def test_own_format_round_trip(tmp_path, rng):
    write_original(tmp_path / "orig", "qm9", True, 16, 2, rng)
    model = load_checkpoint(tmp_path / "orig")
    save_checkpoint(model, tmp_path / "own", metadata={"epochs": 3})
    again = load_checkpoint(tmp_path / "own")
    assert again.metadata == {"epochs": 3} and again.config == model.config
    mols = [random_molecule(rng, 6)]
    np.testing.assert_array_equal(model.relax(mols, 5, seed=1).positions[0], again.relax(mols, 5, seed=1).positions[0])
    assert not any(p.suffix == ".pickle" for p in (tmp_path / "own").iterdir())


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_unsafe_corrupt_and_mismatching_checkpoints_are_refused(tmp_path, rng):
    state = write_original(tmp_path / "c", "qm9", True, 16, 2, rng)
    # a malicious args.pickle
    (tmp_path / "c" / "args.pickle").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="refusing to load posix.system|refusing to load os.system"):
        load_checkpoint(tmp_path / "c")
    write_original(tmp_path / "c", "qm9", True, 16, 2, rng)
    # a malicious weights file
    torch.save({"x": Exploit()}, tmp_path / "c" / "generative_model_ema.npy")
    with pytest.raises(CheckpointError, match="cannot load the weights safely"):
        load_checkpoint(tmp_path / "c")
    # truncated weights
    torch.save(state, tmp_path / "c" / "generative_model_ema.npy")
    data = (tmp_path / "c" / "generative_model_ema.npy").read_bytes()
    (tmp_path / "c" / "generative_model_ema.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot load the weights safely"):
        load_checkpoint(tmp_path / "c")
    # a missing key
    del state["dynamics.egnn.e_block_1.gcl_0.att_mlp.0.bias"]
    torch.save(state, tmp_path / "c" / "generative_model_ema.npy")
    with pytest.raises(CheckpointError, match="missing \\['dynamics.egnn.e_block_1.gcl_0.att_mlp.0.bias'\\]"):
        load_checkpoint(tmp_path / "c")
    # truncated args.pickle, empty folder, conditional model
    (tmp_path / "c" / "args.pickle").write_bytes(pickle.dumps(argparse.Namespace(nf=1))[:10])
    with pytest.raises(CheckpointError, match="not a safe, readable args.pickle"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "empty")
    write_original(tmp_path / "cond", "qm9", True, 16, 2, rng)
    args = pickle.loads((tmp_path / "cond" / "args.pickle").read_bytes())
    args.conditioning, args.context_node_nf = ["alpha"], 1
    (tmp_path / "cond" / "args.pickle").write_bytes(pickle.dumps(args))
    with pytest.raises(CheckpointError, match="conditional models"):
        load_checkpoint(tmp_path / "cond")


def test_the_deterministic_sampler_of_a_zero_network_scales_by_one_over_alpha_n(rng):
    """noise_scale=0: every step goes to its mean. With eps_hat = 0 the steps
    multiply the centred structure by prod 1/alpha_ts = alpha_0/alpha_n and the
    final decode divides by alpha_0: x_final = x_start / alpha_n, for any seed."""

    config = EDMConfig(nf=16, n_layers=1)
    model = EDMDenoiser.from_network(config, lambda z, t, mask: torch.zeros_like(z), "zero network")
    mols = [random_molecule(rng, n) for n in (3, 7)]
    n = 40
    out = model.relax(mols, n, noise_scale=0.0, seed=1)
    again = model.relax(mols, n, noise_scale=0.0, seed=2)
    gamma_n = model.gamma(torch.tensor([[n / 1000]], dtype=torch.float64))
    alpha_n = float(torch.sqrt(torch.sigmoid(-gamma_n)))
    for (numbers, pos), got, other in zip(mols, out.positions, again.positions):
        centre = pos.mean(0)
        np.testing.assert_allclose(got, (pos - centre) / alpha_n + centre, atol=2e-5)
        np.testing.assert_array_equal(got, other)
    stochastic = model.relax(mols, n, seed=1)
    assert not np.allclose(stochastic.positions[1], out.positions[1], atol=1e-3)
    with pytest.raises(ValueError, match="noise scale"):
        model.relax(mols, n, noise_scale=-1.0)


@pytest.mark.parametrize("form", ["own", "original"])
def test_a_huge_config_is_refused_by_the_weights_shapes_before_anything_is_allocated(tmp_path, rng, form):
    """nf = 10^6 asks for 4 TB of float32 in one layer: building the model first would
    fail with a memory error (or be killed); the shapes are compared on the meta device."""
    if form == "original":
        write_original(tmp_path / "c", "qm9", True, 16, 1, rng)
        args = pickle.loads((tmp_path / "c" / "args.pickle").read_bytes())
        args.nf = 10**6
        (tmp_path / "c" / "args.pickle").write_bytes(pickle.dumps(args))
    else:
        save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=1)), tmp_path / "c")
        doc = json.loads((tmp_path / "c" / "config.json").read_text())
        doc["config"]["nf"] = 10**6
        (tmp_path / "c" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"has shape \(.*16.*\), expected \(.*1000000.*\)"):
        load_checkpoint(tmp_path / "c")


def test_a_huge_diffusion_T_is_refused_by_the_config():
    with pytest.raises(ValueError, match="diffusion_steps must be in 1..100000"):
        EDMConfig(diffusion_steps=10**10)


def test_nan_from_the_torch_network_fails_the_molecule_never_a_zero_step(rng):
    """Every backend's output is checked: NaN weights make relax raise a
    NetworkOutputError naming the molecules (the runner retries per molecule)."""
    from edm_core.diffusion import NetworkOutputError

    model = EDMDenoiser(EDMConfig(nf=8, n_layers=1))
    with torch.no_grad():
        next(model.model.dynamics.parameters()).fill_(float("nan"))
    with pytest.raises(NetworkOutputError, match=r"NaN or inf in the output for molecule\(s\) \[0, 1\] of a batch of 2"):
        model.relax([random_molecule(rng, 4), random_molecule(rng, 5)], 3, seed=0)


def test_strided_steps_cover_n_to_0_in_k_evenly_spaced_steps():
    from edm_core.diffusion import strided_steps

    assert strided_steps(50, 50) == list(range(50, -1, -1))
    assert strided_steps(50, 5) == [50, 40, 30, 20, 10, 0] and strided_steps(5, 1) == [5, 0]
    assert strided_steps(5, 4) == [5, 4, 2, 1, 0]  # rounded, strictly decreasing
    for bad in (0, 6):
        with pytest.raises(ValueError, match="evaluations must be in 1..5"):
            strided_steps(5, bad)


def test_a_strided_relaxation_is_the_posterior_jump_and_k_equal_n_is_the_plain_sampler(rng):
    """k = n reproduces the unstrided sampler bit for bit; k = 1 is one jump from
    t = n/T to s = 0 with EDM's posterior formula (computed here in float64) followed
    by the final decode."""
    import torch.nn.functional as F

    model = EDMDenoiser(EDMConfig(nf=16, n_layers=2)).double()
    mols = [random_molecule(rng, 6)]
    plain = model.relax(mols, 8, seed=3)
    np.testing.assert_array_equal(model.relax(mols, 8, seed=3, evaluations=8).positions[0], plain.positions[0])
    one = model.relax(mols, 8, noise=FixedNoise(0.0), evaluations=1, keep_path=True)
    assert one.paths[0].shape == (3, 6, 3)  # start, one strided step, final decode
    z, mask = z_of(model, mols)
    z, mask = z.double(), mask.double()
    diffusion = model.model
    g_s = diffusion.gamma(torch.zeros((1, 1), dtype=torch.float64))[:, :, None]
    g_t = diffusion.gamma(torch.full((1, 1), 8 / diffusion.T, dtype=torch.float64))[:, :, None]
    sigma2_ts = -torch.expm1(F.softplus(g_s) - F.softplus(g_t))
    alpha_ts = torch.exp(0.5 * (F.logsigmoid(-g_t) - F.logsigmoid(-g_s)))
    eps = diffusion.predict_noise(z, torch.full((1, 1), 8 / diffusion.T, dtype=torch.float64), mask)
    mean = z / alpha_ts - sigma2_ts / alpha_ts / torch.sqrt(torch.sigmoid(g_t)) * eps
    centre = mols[0][1].mean(axis=0)
    x = mean[0, :, :3].detach().numpy()
    np.testing.assert_allclose(one.paths[0][1], x - x.mean(axis=0) + centre, atol=1e-8)
    with pytest.raises(ValueError, match="evaluations must be in 1..8"):
        model.relax(mols, 8, evaluations=9)
