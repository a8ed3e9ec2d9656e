"""The GPU check's rehearsal on the CPU: every part runs or says why it was skipped,
and the JSON and Markdown outputs agree."""

from __future__ import annotations

import json

import pytest

from bench.gpu_check import DRY_RUN, main, shipped_molecules
from bench.perf import useful_flops

@pytest.mark.slow  # about a minute: Triton's interpreter and a pyscf gradient
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_the_dry_run_exercises_every_part_and_writes_json_and_markdown(tmp_path, capsys):
    import torch

    assert main(["--out", str(tmp_path), "--dry-run"]) == 0
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = {p["name"]: p for p in doc["parts"]}
    assert doc["dry_run"] and list(parts) == ["environment", "triton-accuracy", "network-timing", "dft"]
    accuracy = parts["triton-accuracy"]
    assert accuracy["status"] == "ok" and accuracy["results"]["max_rel_error"] < 1e-4
    assert all(c["all_finite"] and c["padding_zero"] for c in accuracy["results"]["cases"])
    timing = parts["network-timing"]["results"]
    assert [c["case"] for c in timing["cases"]] == [f"qm9x{DRY_RUN.qm9_batch}", f"drugsx{DRY_RUN.drugs_batch}"]
    for case in timing["cases"]:
        for backend in ("triton", "torch-eager", "torch-compile", "onnx"):
            assert case[backend]["ms"] > 0, (case["case"], backend, case[backend])
    if not torch.cuda.is_available():
        assert parts["dft"]["results"]["pyscf_2_threads_s"] > 0
        assert parts["dft"]["status"] == "skipped" and "gpu4pyscf" in parts["dft"]["reason"] + str(
            parts["dft"]["results"])
    printed = capsys.readouterr().out
    assert printed.strip().endswith((tmp_path / "gpu_check.md").read_text().strip().splitlines()[-1])


def test_without_a_gpu_the_full_check_skips_the_gpu_parts_with_the_reason(tmp_path, monkeypatch):
    import bench.gpu_check as check

    monkeypatch.setattr(check, "_cuda", lambda: False)
    monkeypatch.setattr(check, "dft_check", lambda sizes: check.Part("dft", "skipped", "not run in this test"))
    parts = {p.name: p for p in check.run_gpu_check(tmp_path)}
    assert parts["triton-accuracy"].status == "skipped" and "no CUDA device" in parts["triton-accuracy"].reason
    assert parts["network-timing"].status == "skipped" and "GPU only" in parts["network-timing"].reason
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| network-timing | skipped: no CUDA device" in table


def test_molecules_come_from_the_shipped_shards_and_the_flops_count_pairs():
    mols = shipped_molecules("qm9-xtb", 5, seed=3)
    assert len(mols) == 5 and all(len(n) == len(p) and set(n) <= {1, 6, 7, 8, 9} for n, p in mols)
    assert shipped_molecules("qm9-xtb", 5, seed=3)[0][1].tolist() == mols[0][1].tolist()  # seeded
    drugs = shipped_molecules("drugs-xtb", 3)
    assert all(set(n) <= {1, 6, 7, 8, 9} for n, _ in drugs)  # other elements timed as carbon
    # one 3-atom molecule: 6 ordered pairs x 4 nf^2 + 3 nodes x 14 nf^2, per layer
    assert useful_flops(__import__("numpy").array([3]), nf=2, n_layers=1) == 6 * 16 + 3 * 56
