"""Relaxation cost (asv ``time_*``): the denoiser's n = 50 relaxation of a batch
per backend, and the GFN2-xTB relaxation it competes with (the oracle cost)."""

from __future__ import annotations

from ._inputs import CPU_BACKENDS, molecules, network, shipped


class DenoiserRelaxation:
    """n = 50 reverse steps (51 network evaluations) for 8 shipped QM9 test molecules."""

    params = (CPU_BACKENDS,)
    param_names = ["backend"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, backend: str) -> None:
        self.model = network(backend)
        self.mols = molecules("qm9")[:8]

    def time_relax_n50(self, backend: str) -> None:
        self.model.relax(self.mols, 50, seed=0)


class OracleRelaxation:
    """GFN2-xTB BFGS relaxation (fmax 0.03 eV/A) of one 18-atom QM9 test molecule from
    its MMFF start, with no results store (nothing cached)."""

    timeout = 300
    number = 1
    repeat = (1, 5, 30.0)

    def setup(self) -> None:
        from bench.data import load_dataset
        from bench.oracles import get_oracle

        self.atoms = next(r for r in load_dataset(shipped("qm9-xtb"), "test") if r.n_atoms == 18).to_atoms("start")
        self.xtb = get_oracle("xtb")

    def time_xtb_relax(self) -> None:
        self.xtb.relax(self.atoms.copy(), fmax=0.03)
