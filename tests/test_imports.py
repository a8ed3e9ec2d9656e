"""Import boundaries: light modules stay light, and data flows one way."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("bench.reports", ["torch", "tblite", "pyscf", "edm_core"]),
        ("bench.leaderboard", ["torch", "tblite", "pyscf", "edm_core"]),
        # the metrics are pure functions of tables: nothing of the data, oracle, task or run layers
        ("bench.metrics", ["torch", "tblite", "pyscf", "rdkit", "edm_core", "bench.data", "bench.oracles",
                           "bench.tasks", "bench.runner"]),
        ("bench.artifacts", ["torch", "edm_core", "bench.oracles", "bench.tasks", "bench.metrics"]),
        ("bench.oracles", ["tblite", "pyscf", "torch", "edm_core.model"]),
        # edm_core.geometry (the coincident-atom check, torch-free) is the one model module data may use
        ("bench.data", ["edm_core.model", "edm_core.diffusion", "edm_core.checkpoint", "torch", "tblite"]),
        ("kernels", ["edm_core", "bench"]),
    ],
)
def test_importing_a_module_does_not_pull_heavy_or_upstream_packages(module, forbidden):
    code = f"import sys, {module}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} imported {out}"
