"""Speed of the denoiser network per backend (asv ``time_*``), at QM9 sizes.

Inputs are built in ``setup`` (untimed) from a seeded random QM9-like batch, so the
suite imports and runs on any version of the project.
"""

from __future__ import annotations

import numpy as np


class EGNNNetwork:
    params = (["torch", "cpp", "onnx"], [1, 64])
    param_names = ["backend", "n_molecules"]
    timeout = 300

    def setup(self, backend: str, n_molecules: int) -> None:
        import torch

        from edm_core import EDMConfig, EDMDenoiser

        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        sizes = rng.choice(np.arange(12, 27), size=n_molecules)
        mols = [(rng.choice([1, 6, 7, 8], size=n), rng.normal(scale=1.5, size=(n, 3))) for n in sizes]
        self.model = EDMDenoiser(EDMConfig()).eval()
        try:
            self.model.use_backend(backend)
        except ValueError as exc:  # backend not built here: asv records the benchmark as skipped
            raise NotImplementedError(str(exc)) from exc
        x, one_hot, charges, self.mask = self.model.pack(mols)
        self.z = self.model.normalize(x, one_hot, charges, self.mask)
        self.t = torch.full((n_molecules, 1), 0.05)
        self.torch = torch

    def time_egnn_network(self, backend: str, n_molecules: int) -> None:
        with self.torch.no_grad():
            self.model.model.predict_noise(self.z, self.t, self.mask)
