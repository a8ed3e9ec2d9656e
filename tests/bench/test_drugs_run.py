"""A small DRUGS case of `edm-bench run`: a denoiser with EDM's GEOM atom types on
drug-like molecules (S, Cl, ...), its rows in their own table, the study beside ours."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from bench.cards import card_for_checkpoint, write_card
from bench.cli import app
from edm_core import EDMConfig, EDMDenoiser
from edm_core.checkpoint import save_checkpoint


def test_a_geom_denoiser_runs_on_drugs_molecules_and_the_report_sets_the_study_beside(tmp_path):
    torch.manual_seed(0)
    model = EDMDenoiser(EDMConfig.for_dataset("geom", nf=8, n_layers=1))
    ckpt = save_checkpoint(model, tmp_path / "geom-tiny", {"epoch": 0, "data": {"dataset": "none"}})
    write_card(card_for_checkpoint(ckpt, "geom-tiny"), ckpt / "card.yml")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "--no-shipped-denoiser", "--dataset", "drugs-xtb", "--split", "all", "-n", "1",
        "--denoiser", str(ckpt / "card.yml"), "--n-steps", "20", "--out", str(out),
        "--store", str(tmp_path / "store.sqlite")])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {"mmff", "geom-tiny/n=20"} <= set(summary["methods"]) and summary["n_molecules"] == 1
    row = summary["methods"]["geom-tiny/n=20"]
    assert row["n_failed"] == row["n_excluded"] == 0  # the GEOM decoder takes every DRUGS element
    report = (out / "report.md").read_text()
    assert "Beside the study (GEOM-DRUGS under GFN2-xTB" in report and "14.3" in report
    assert summary["benchmark"]["dataset"].startswith("drugs-xtb")
