"""Moving a trained model to another atom decoder (QM9 -> EDM's GEOM decoder)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edm_core import EDMConfig, EDMDenoiser, load_checkpoint
from edm_core.train import Trainer, TrainSettings
from edm_core.transfer import donor_element, with_atom_decoder

from tests.edm_core.test_train import toy_molecules

QM9_SMALL = EDMConfig(nf=16, n_layers=2)  # H C N O F with charges
GEOM = EDMConfig.for_dataset("geom")


def random_weights(model: EDMDenoiser, seed: int = 0) -> EDMDenoiser:
    """Every parameter random (a fresh model's output embedding starts near zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def noise(model: EDMDenoiser, molecules: list, t: float = 0.04) -> torch.Tensor:
    """The network output for clean features at time ``t``, float64."""
    x, one_hot, charges, mask = model.pack(molecules)
    z = model.normalize(x, one_hot, charges, mask)
    return model.predict_noise(z, torch.full((len(molecules), 1), t, dtype=torch.float64), mask)


def test_donors_follow_the_periodic_table():
    qm9 = ("H", "C", "N", "O", "F")
    expected = {"H": "H", "C": "C", "S": "O", "Cl": "F", "Br": "F", "I": "F", "P": "N", "Si": "C", "As": "N"}
    assert {e: donor_element(e, qm9) for e in expected} == expected
    with pytest.raises(ValueError, match="Xe"):
        donor_element("Xe", qm9)


def test_molecules_of_the_source_elements_get_the_source_noise(rng):
    source = random_weights(EDMDenoiser(QM9_SMALL)).double().eval()
    target, donors = with_atom_decoder(source, dataclasses.replace(GEOM, max_n_nodes=40, max_diameter=12.5))
    target = target.double().eval()
    assert target.config.atom_decoder == GEOM.atom_decoder and not target.config.include_charges
    assert (target.config.max_n_nodes, target.config.max_diameter) == (40, 12.5)  # the new data's limits
    assert target.config.nf == 16 and target.config.n_layers == 2
    assert donors["S"] == "O" and "C" not in donors
    molecules = toy_molecules(rng, 4) + [(np.array([7, 1, 1, 1]), rng.normal(size=(4, 3))),
                                         (np.array([9, 6, 1, 1, 1]), rng.normal(size=(5, 3)))]
    a, b = noise(source, molecules), noise(target, molecules)
    torch.testing.assert_close(b[..., :3], a[..., :3], rtol=0, atol=1e-5)  # float32 weights folded
    # the type noise: each QM9 element's row moved to its GEOM column
    for j, element in enumerate(QM9_SMALL.atom_decoder):
        torch.testing.assert_close(b[..., 3 + GEOM.atom_decoder.index(element)], a[..., 3 + j], rtol=0, atol=1e-5)
    # the source reads its charge column: folding it in is what keeps the noise equal
    x, one_hot, charges, mask = source.pack(molecules)
    without = source.predict_noise(source.normalize(x, one_hot, torch.zeros_like(charges), mask),
                                   torch.full((len(molecules), 1), 0.04, dtype=torch.float64), mask)
    assert (without[..., :3] - a[..., :3]).abs().max() > 1e-3


def test_a_new_element_starts_as_its_donor(rng):
    source = random_weights(EDMDenoiser(QM9_SMALL), seed=3).double().eval()
    target = with_atom_decoder(source, GEOM)[0].double().eval()
    positions = rng.normal(size=(3, 3))
    as_sulfur = noise(target, [(np.array([16, 1, 1]), positions)])
    as_oxygen = noise(target, [(np.array([8, 1, 1]), positions)])
    torch.testing.assert_close(as_sulfur[..., :3], as_oxygen[..., :3], rtol=0, atol=1e-12)
    as_nitrogen = noise(target, [(np.array([7, 1, 1]), positions)])
    assert (as_nitrogen[..., :3] - as_oxygen[..., :3]).abs().max() > 1e-4


def test_a_charged_target_keeps_the_charge_column(rng):
    source = random_weights(EDMDenoiser(QM9_SMALL), seed=5).double().eval()
    charged = EDMConfig.for_dataset("geom", include_charges=True)
    target = with_atom_decoder(source, charged)[0].double().eval()
    molecules = toy_molecules(rng, 2)
    torch.testing.assert_close(noise(target, molecules)[..., :3], noise(source, molecules)[..., :3],
                               rtol=0, atol=1e-5)


def test_fine_tuning_onto_a_new_decoder_is_recorded_and_resumes(tmp_path, rng):
    source = random_weights(EDMDenoiser(QM9_SMALL), seed=7)
    from edm_core.checkpoint import save_checkpoint

    save_checkpoint(source, tmp_path / "qm9", {"epoch": 10})
    sulfur = [(np.array([16, 1, 1]), np.array([[0, 0, 0.1], [0, 0.96, -0.5], [0, -0.96, -0.5]])
               + rng.normal(scale=0.02, size=(3, 3))) for _ in range(8)]
    settings = TrainSettings(epochs=1, batch_size=4, checkpoint_every=1, ema_decay=0.0)
    trainer = Trainer(GEOM, settings, sulfur, sulfur, tmp_path / "run", {"dataset": "toy"}, init=tmp_path / "qm9")
    assert trainer.model.config.nf == 16  # the checkpoint's network, the data's decoder
    trainer.fit(progress=False)
    meta = load_checkpoint(tmp_path / "run" / "epoch_0001").metadata
    assert meta["data"]["init"]["new_elements_from"]["S"] == "O"
    # resumed (no init given): the start is still on the next checkpoint's metadata
    resumed = Trainer(GEOM, TrainSettings(epochs=2, batch_size=4, checkpoint_every=1, ema_decay=0.0), sulfur,
                      sulfur, tmp_path / "run", {"dataset": "toy"})
    resumed.fit(progress=False)
    meta = load_checkpoint(tmp_path / "run" / "epoch_0002").metadata
    assert meta["data"]["init"]["checkpoint"] == str(tmp_path / "qm9")
    assert meta["data"]["init"]["atom_decoder"] == list(GEOM.atom_decoder)
