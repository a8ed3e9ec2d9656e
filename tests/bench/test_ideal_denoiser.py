"""An ideal denoiser (it knows each molecule's ground state) run through our
sampler and tasks must score what the definitions say: relaxation from the MMFF
start lands on the ground state (energy ~0, far below MMFF) and the following
oracle relaxation takes almost no steps."""

from __future__ import annotations

import numpy as np
import torch

from bench import metrics
from bench.baselines import mmff_start
from bench.data import load_dataset
from bench.oracles import get_oracle
from bench.cards import LoadedDenoiser
from bench.tasks import denoiser_starts, energy_above_ground, ground_references, make_starts, relax_from_starts
from edm_core import EDMConfig, EDMDenoiser


def ideal_denoiser(records) -> EDMDenoiser:
    """eps_hat = (z_t - alpha_t z_ground) / sigma_t: the noise a perfect model would predict."""
    config = EDMConfig(nf=8, n_layers=1)
    helper = EDMDenoiser(config)
    x, one_hot, charges, mask = helper.pack([(r.numbers, r.ground_positions) for r in records])
    target = helper.normalize(x, one_hot, charges, mask)

    def network(z, t, node_mask):
        g = helper.model.gamma(t)[:, :, None]
        eps = (z - torch.sqrt(torch.sigmoid(-g)) * target) / torch.sqrt(torch.sigmoid(g))
        centre = (eps[..., :3] * node_mask).sum(1, keepdim=True) / node_mask.sum(1, keepdim=True)
        return torch.cat([eps[..., :3] - centre, eps[..., 3:]], dim=-1) * node_mask

    return EDMDenoiser.from_network(config, network, "ideal denoiser")


def test_an_ideal_denoiser_relaxes_to_the_ground_state():
    # one size-sorted batch, so the sampler's batches line up with the targets
    records = sorted(load_dataset("qm9-xtb", "test")[:6], key=lambda r: r.n_atoms)
    xtb = get_oracle("xtb")
    grounds = ground_references(records, xtb)
    starts = make_starts(records, {"mmff": mmff_start}, grounds)
    starts[("ideal/n=30", 0)], _ = denoiser_starts(records, LoadedDenoiser.bare(ideal_denoiser(records)), 30, seed=0)
    energy = energy_above_ground(records, starts, xtb, grounds)
    by_method = energy.groupby("method")["energy_above_ground_kcal_mol"].median()
    assert by_method["ideal/n=30"] < 0.5 < 2.0 < by_method["mmff"]
    assert energy.loc[energy["method"] == "ideal/n=30", "rmsd_heavy_ang"].max() < 0.05
    relax = relax_from_starts(records, starts, xtb, grounds)
    steps = relax.groupby("method")["oracle_steps"].median()
    assert steps["ideal/n=30"] < 0.5 * steps["mmff"]
    ideal = metrics.prepare(relax, "relax", "ideal/n=30")
    assert np.all(metrics.speedups(ideal) > 0)
    summary = metrics.summarise({"energy": energy, "relax": relax}, bootstrap=None).set_index("method")
    assert summary.loc["ideal/n=30", "energy_ratio"] > 5 and summary.loc["ideal/n=30", "within_1_kcal_mol"] == 1.0
