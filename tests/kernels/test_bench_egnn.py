"""pytest-benchmark cases for the network backends (not timed tests: they run
only with ``make bench`` = ``pytest --benchmark-only``; the default run skips them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_core import EDMConfig, EDMDenoiser


def qm9_like_batch(n_molecules: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    sizes = rng.choice(np.arange(12, 27), size=n_molecules)
    return [(rng.choice([1, 6, 7, 8], size=n), rng.normal(scale=1.5, size=(n, 3))) for n in sizes]


@pytest.fixture(scope="module")
def qm9_model() -> EDMDenoiser:
    torch.manual_seed(0)
    return EDMDenoiser(EDMConfig()).eval()


@pytest.mark.parametrize("backend", ["torch", "cpp", "onnx"])
@pytest.mark.parametrize("n_molecules", [1, 64])
def test_egnn_network(benchmark, qm9_model, backend, n_molecules):
    qm9_model.use_backend(backend)
    mols = qm9_like_batch(n_molecules)
    x, one_hot, charges, mask = qm9_model.pack(mols)
    z = qm9_model.normalize(x, one_hot, charges, mask)
    t = torch.full((n_molecules, 1), 0.05)

    def evaluate() -> torch.Tensor:
        with torch.no_grad():
            return qm9_model.model.predict_noise(z, t, mask)

    out = benchmark(evaluate)
    assert out.shape == z.shape and torch.isfinite(out).all()
    qm9_model.use_backend("torch")
