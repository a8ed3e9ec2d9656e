"""edm-bench perf: the table's bookkeeping (not a timing test: no speed is asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.perf import run_perf, useful_flops
from edm_core import EDMConfig


def test_useful_flops_count_the_split_formulation():
    # one 18-atom molecule, nf 256, 9 layers: 306 pairs x 4 nf^2 + 18 nodes x 14 nf^2, per layer
    assert useful_flops(np.array([18])) == pytest.approx(9 * (306 * 4 + 18 * 14) * 256**2)
    assert useful_flops(np.array([1])) == 9 * 14 * 256**2


def test_perf_records_ratios_and_errors_for_every_backend(rng):
    mols = [(rng.choice([1, 6, 8], size=n), rng.normal(scale=1.3, size=(n, 3))) for n in (6, 9)]
    cases = {"single": mols[:1], "qm9x64": mols, "relax50": mols}
    records = run_perf(["cpp", "onnx"], min_time_s=0.0, progress=False, config=EDMConfig(nf=16, n_layers=2),
                       cases=cases)
    table = {(r.backend, r.case): r for r in records}
    for case in ("single", "qm9x64", "relax50"):
        assert table[("original", case)].ratio_to_reference == 1.0
        for backend in ("torch", "cpp", "onnx"):
            assert table[(backend, case)].ms_per_molecule > 0
    assert table[("torch", "qm9x64")].max_rel_error == 0.0
    assert table[("cpp", "qm9x64")].max_rel_error < 1e-4 and table[("onnx", "single")].max_rel_error < 1e-4
    assert ("xtb", "relax_fmax0.03") in table and ("gemm", "roofline") in table


def test_perf_times_only_the_cases_asked_for_and_names_unknown_ones(rng):
    mols = [(rng.choice([1, 6, 8], size=n), rng.normal(scale=1.3, size=(n, 3))) for n in (6, 9)]
    cases = {"single": mols[:1], "qm9x64": mols, "relax50": mols}
    records = run_perf(["cpp"], min_time_s=0.0, progress=False, config=EDMConfig(nf=16, n_layers=2), cases=cases,
                       only=["single"])
    assert {(r.backend, r.case) for r in records} == {("original", "single"), ("torch", "single"), ("cpp", "single"),
                                                      ("gemm", "roofline")}
    with pytest.raises(ValueError, match=r"unknown case\(s\) \['qm9x46'\]"):
        run_perf(["cpp"], progress=False, config=EDMConfig(nf=16, n_layers=2), cases=cases, only=["qm9x46"])
