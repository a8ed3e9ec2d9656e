"""What every way a denoiser enters the benchmark must do, run on each of them: an
EDM checkpoint (torch and cpp backends), ONNX files with the edm and the positions
signature, and Python entry points with the edm and the positions contract.

E(3) equivariance of the relaxed structures, seeds that reproduce, ragged and
padded batches that agree with molecules run alone, and a bad output that fails
only its molecule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cards import load_denoiser
from bench.tasks.relaxation import denoiser_starts
from edm_core import EDMConfig, EDMDenoiser, save_checkpoint
from edm_core.onnx_backend import export_onnx
from tests.bench.tasks.test_relaxation import toy_of_size
from tests.bench.test_cards import TINY, card, write
from tests.equivariance import assert_equivariant

WAYS = ["checkpoint-torch", "checkpoint-cpp", "onnx", "entry-point", "onnx-positions", "entry-positions"]


class PairForces:
    """A position-only network written by hand: eps_i = sum_j w(r_ij, Z_i Z_j) (x_i - x_j),
    equivariant by construction, with the positions contract."""

    @staticmethod
    def predict_position_noise(positions, numbers, node_mask, t):
        diff = positions[:, :, None, :] - positions[:, None, :, :]
        r = torch.sqrt((diff**2).sum(-1, keepdim=True) + 1e-9)
        zz = (numbers[:, :, None] * numbers[:, None, :]).to(positions.dtype)[..., None]
        pair = node_mask[:, :, None] * node_mask[:, None, :]
        return (torch.exp(-r) * (1 + 0.01 * zz) * (1 + t[:, None, None]) * diff * pair).sum(2) * node_mask


POSITIONS_ENTRY = PairForces


@pytest.fixture(scope="module")
def denoisers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ways")
    torch.manual_seed(0)
    model = EDMDenoiser(TINY).eval()
    save_checkpoint(model, root / "ckpt")
    export_onnx(model, root / "tiny.onnx")
    checkpoint = write(root / "ckpt.yml", card("edm-checkpoint", path="ckpt"))
    positional = EDMDenoiser(EDMConfig(nf=16, n_layers=2, position_only=True)).eval()
    export_onnx(positional, root / "positions.onnx", signature="positions")
    out = {"checkpoint-torch": load_denoiser(checkpoint, backend="torch"),
           "onnx-positions": load_denoiser(write(root / "onnx-positions.yml", card("onnx", path="positions.onnx"))),
           "entry-positions": load_denoiser(write(root / "entry-positions.yml", card(
               "entry-point", entry_point="tests.bench.test_conformance:POSITIONS_ENTRY",
               elements=["H", "C", "N", "O", "F"])), trust_code=True),
           "onnx": load_denoiser(write(root / "onnx.yml", card("onnx", path="tiny.onnx"))),
           "entry-point": load_denoiser(write(root / "entry.yml", card(
               "entry-point", entry_point="tests.bench.test_cards:ENTRY")), trust_code=True)}
    import kernels

    if kernels.cpp_available():
        out["checkpoint-cpp"] = load_denoiser(checkpoint, backend="cpp")
    return out


def molecule(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.choice([1, 6, 7, 8], size=n), rng.normal(scale=1.2, size=(n, 3))


def get(denoisers, way):
    if way not in denoisers:
        pytest.skip(f"{way}: not available here")
    return denoisers[way]


@pytest.mark.parametrize("way", WAYS)
def test_relaxed_structures_are_equivariant(denoisers, way, rng):
    den = get(denoisers, way)
    numbers, pos = molecule(rng, 7)

    def relaxed(numbers, positions):  # deterministic: the same noise-free path in every frame
        return den.model.relax([(numbers, positions)], 6, noise_scale=0.0).positions[0], None

    assert_equivariant(relaxed, numbers, pos, rng, atol=2e-4, vectors_are_positions=True)


@pytest.mark.parametrize("way", WAYS)
def test_seeds_reproduce_and_differ(denoisers, way, rng):
    den = get(denoisers, way)
    mols = [molecule(rng, 5)]
    a, b, c = (den.model.relax(mols, 5, seed=s).positions[0] for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


@pytest.mark.parametrize("way", WAYS)
def test_a_ragged_batch_agrees_with_each_molecule_alone(denoisers, way, rng):
    den = get(denoisers, way)
    mols = [molecule(rng, n) for n in (3, 9, 5)]
    together = den.model.relax(mols, 6, noise_scale=0.0).positions
    for mol, got in zip(mols, together):
        np.testing.assert_allclose(got, den.model.relax([mol], 6, noise_scale=0.0).positions[0], atol=1e-4)


def test_a_position_only_card_may_name_the_widest_molecule_its_model_takes(tmp_path):
    from edm_core import ModelInputError

    doc = card("entry-point", entry_point="tests.bench.test_conformance:POSITIONS_ENTRY", elements=["H", "C"],
               max_atoms=9, max_diameter=3.0)
    den = load_denoiser(write(tmp_path / "c.yml", doc), trust_code=True)
    assert (den.model.config.max_n_nodes, den.model.config.max_diameter) == (9, 3.0)
    line = np.arange(3)[:, None] * [1.4, 0.0, 0.0]  # 2.8 A across: taken; 4.2 A: refused
    den.model.check(np.array([6, 6, 1]), line, "m")
    with pytest.raises(ModelInputError, match="m: atoms 4.20 A apart, .* at most 3.00 A across"):
        den.model.check(np.array([6, 6, 1]), line * 1.5, "m")


@pytest.mark.parametrize("way", WAYS)
def test_an_unsupported_molecule_fails_alone(denoisers, way):
    """A sulfur atom (not in the QM9 decoder) fails that molecule; the others relax."""
    den = get(denoisers, way)
    records = [toy_of_size(2), toy_of_size(3)]
    records[1].numbers = np.array([16, 1, 1])
    starts, _ = denoiser_starts(records, den, n_steps=3, seed=0)
    assert starts[0].positions is not None and starts[1].positions is None
    assert "atomic number [16] not among" in starts[1].message
