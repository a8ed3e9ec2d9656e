"""The asv suite's skips: what cannot run here is skipped with a reason (asv's
NotImplementedError convention), never failed; inputs come from the shipped sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.asv_suite import _inputs, ratios, science


def test_missing_card_skips_the_science_benchmarks(monkeypatch, tmp_path):
    monkeypatch.setattr(_inputs, "REPO", tmp_path)
    benchmark = science.ShippedCheckpoint()
    assert benchmark.setup_cache() == {}  # not None: asv would then call setup without it
    with pytest.raises(NotImplementedError, match="does not exist yet"):
        benchmark.setup({})


@pytest.mark.skipif(torch.cuda.is_available(), reason="triton is timed on CUDA hosts")
def test_triton_is_skipped_without_cuda():
    with pytest.raises(NotImplementedError, match="CUDA"):
        _inputs.network("triton")


def test_ratios_skip_backends_that_did_not_run():
    benchmark = ratios.KernelSpeedRatios()
    benchmark.setup({"cpp/qm9": 2.0}, "cpp", "qm9")
    assert benchmark.track_speed_ratio_to_torch({"cpp/qm9": 2.0}, "cpp", "qm9") == 2.0
    with pytest.raises(NotImplementedError):
        benchmark.setup({"cpp/qm9": 2.0}, "onnx", "qm9")


def test_sizes_come_from_the_shipped_test_splits():
    qm9, drugs = _inputs.molecules("qm9"), _inputs.molecules("drugs")
    assert len(qm9) == _inputs.BATCH["qm9"] and len(drugs) == _inputs.BATCH["drugs"]
    assert np.mean([len(n) for n, _ in drugs]) > 2 * np.mean([len(n) for n, _ in qm9])
    assert all(set(n) <= {1, 6, 7, 8, 9} for n, _ in drugs)  # through the QM9 network
