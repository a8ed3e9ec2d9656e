"""Helpers of the analysis tests: a tiny random-weight EDM checkpoint with its card,
the CLI, and the checks every analysis run folder passes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bench.cli import app


def write_card(root, key: str = "tiny", t_max: float | None = None, epochs: int = 1):
    import torch
    import yaml

    from edm_core import EDMConfig, EDMDenoiser, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2)), root / f"{key}-ckpt")
    card = {"key": key, "name": key, "version": "0", "model": {"kind": "edm-checkpoint", "path": f"{key}-ckpt"},
            "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
            "relaxation": {"n_steps": [5]},
            "training": {"datasets": [{"name": "none", "split": "train"}], "epochs": epochs}}
    if t_max is not None:
        card["training"]["t_max"] = t_max
    (root / f"{key}.yml").write_text(yaml.safe_dump(card))
    return root / f"{key}.yml"


def invoke(args):
    result = CliRunner().invoke(app, [*args, "--threads", "1"])
    return result


def check_run_folder(run, figures):
    for name in ("manifest.json", "summary.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    for fig in figures:
        assert (run / "figures" / f"{fig}.png").is_file() and (run / "figures" / f"{fig}.svg").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["units"]["temperature"] == "K" and "seeds" in manifest["settings"]
    return json.loads((run / "summary.json").read_text()), manifest
