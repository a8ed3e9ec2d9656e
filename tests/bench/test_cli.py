"""The command line: --help everywhere, and input errors as one line with exit status 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from tests.bench.test_runner import RUN
from tests.reliability import MALFORMED, tally

COMMANDS = [[], ["data"], ["data", "build"], ["data", "info"], ["data", "read"], ["run"], ["train"],
            ["leaderboard"], ["perf"], ["card"], ["card", "validate"], ["boltzmann"], ["phases"], ["generation"],
            ["train-time-predictor"], ["export-onnx"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "edm-bench")
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_a_bad_input_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\n\nC 0 0 0\nH 1 x 0\n")
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "data", "read", str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "bad.xyz (record 1)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_oracle_options_are_typed_and_unknown_ones_are_one_clear_line(tmp_path):
    from bench.cli import _key_values

    assert _key_values(["density_fit=true", "grid_level=4", "xc=b3lypg"]) == {
        "density_fit": True, "grid_level": 4, "xc": "b3lypg"}
    bad_form = CliRunner().invoke(app, [*RUN, "--oracle-option", "density_fit", "--out", str(tmp_path / "r")])
    assert bad_form.exit_code == 2 and "KEY=VALUE" in bad_form.output
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *RUN, "-n", "1", "--oracle-option", "density_fit=true",
                           "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "oracle 'xtb': unknown setting(s) ['density_fit']" in proc.stderr


@pytest.mark.parametrize("args", [
    ["--tasks", "nosuch"], ["--oracle", "orca"], ["-n", "0"], ["--fmax", "nan"], ["--fmax", "inf"],
    ["--workers", "-1"], ["--methods", "mmff,xtb"], ["--methods", "uff"], ["--n-steps", "0"],
    ["--oracle-option", "electronic_temperature_k=-1"], ["--oracle-option", "backend=fortran"],
    ["--denoiser", "no/such/card.yml"],
])
def test_bad_run_values_end_in_one_line_and_exit_2(args, tmp_path):
    """Each user mistake: exit status 2, one line naming the option or file, no traceback."""
    result = subprocess.run([sys.executable, "-m", "bench.cli", *RUN, *args, "--out", str(tmp_path / "r"),
                             "--store", str(tmp_path / "s.sqlite")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "it/s" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr


#: One bad value (or a missing argument) for every subcommand.
BAD_INVOCATIONS = [
    ["report", "/no/such/run"], ["train", "--out", "/tmp/edm-bench-never", "--epochs", "0"],
    ["train", "--out", "/tmp/edm-bench-never", "--nf", "0"], ["leaderboard", "/no/such/run"],
    ["train", "--out", "/tmp/edm-bench-never", "--start-fraction", "2"],
    ["train", "--out", "/tmp/edm-bench-never", "--init", "/no/such/checkpoint"],
    ["train", "--out", "/tmp/edm-bench-never", "--atom-types", "zinc"],
    ["train", "--out", "/tmp/edm-bench-never", "--max-start-rmsd", "0"],
    ["check", "/no/such/run", "--baseline", "bench/baseline.yml"], ["perf", "--backends", "nosuch"],
    ["perf", "--cases", "nosuch"], ["gpu-check", "--frobnicate"], ["boltzmann", "--n-molecules", "0"],
    ["boltzmann", "--temperatures", "-5"], ["phases", "--denoiser", "no/such.yml"], ["generation"],
    ["generation", "--denoiser", "no/such.yml", "--n-molecules", "abc"], ["gate", "--n-molecules", "0"],
    ["baseline", "--part", "nosuch"], ["baseline", "--part", "perf", "--repeats", "0"],
    ["data", "build", "nosuch"], ["data", "build", "qm9-xtb", "--limit", "0", "--out", "/tmp/edm-bench-never-built"], ["data", "info", "nosuch"],
    ["data", "read", "/no/such.xyz"], ["card", "validate", "/no/such.yml"], ["card", "validate"],
    ["tasks", "--frobnicate"], ["run", "-n", "abc"], ["run", "--frobnicate"], ["run", "--backend", "cuda"],
    ["boltzmann", "--backend", "cuda"], ["phases", "--backend", "cuda", "--denoiser", "x.yml"],
    ["run", "--n-steps", "20,sometimes"], ["run", "--n-steps", "0"],
    ["train-time-predictor", "--out", "/tmp/edm-bench-never.onnx", "--schedule", "linear"],
    ["train-time-predictor", "--out", "/tmp/edm-bench-never.onnx", "--t-range", "2"],
    ["export-onnx", "/no/such.yml", "--out", "/tmp/edm-bench-never"],
]


@pytest.mark.parametrize("args", BAD_INVOCATIONS, ids=[" ".join(a) for a in BAD_INVOCATIONS])
def test_every_subcommand_refuses_a_bad_value_in_one_line_with_exit_2(args, tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    tally(MALFORMED)


def test_a_bare_group_prints_its_help_and_exits_0():
    result = subprocess.run([sys.executable, "-m", "bench.cli", "data"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "build" in result.stdout and "info" in result.stdout


def test_a_new_training_run_picks_edm_atom_types_from_its_data_and_its_own_size_histogram():
    import typer

    from bench.cli import _training_config

    def line(numbers: list[int], bond: float) -> tuple[np.ndarray, np.ndarray]:
        """Atoms on a line, ``bond`` apart: (n - 1) * bond across."""
        return np.array(numbers), np.arange(len(numbers))[:, None] * [bond, 0.0, 0.0]

    qm9 = [line([6, 1, 1, 1, 1], 1.0), line([8, 1, 1], 1.0), line([8, 1, 1], 1.0)]
    config = _training_config(qm9, "auto", nf=8, n_layers=1)
    assert config.dataset == "qm9" and config.include_charges and config.n_nodes_histogram == {3: 2, 5: 1}
    drug = [*qm9, line([16, 6, 17, 1, 1, 1], 1.2345)]
    config = _training_config(drug, "auto", nf=8, n_layers=1)
    # the largest molecule it takes is the largest it trains on (times the packing's molecules per sample),
    # the widest the widest it trains on, rounded up to 0.01 A (none when packing)
    assert config.dataset == "geom" and not config.include_charges and config.max_n_nodes == 6
    assert config.max_diameter == pytest.approx(6.18)
    packed = _training_config(drug, "auto", max_per_sample=3, nf=8, n_layers=1)
    assert packed.max_n_nodes == 18 and packed.max_diameter is None
    assert _training_config(qm9, "geom", nf=8, n_layers=1).dataset == "geom"
    with pytest.raises(typer.BadParameter, match=r"\['S', 'Cl'\], not among EDM's qm9 atom types"):
        _training_config(drug, "qm9", nf=8, n_layers=1)
    with pytest.raises(typer.BadParameter, match=r"\['Xe'\], not among EDM's geom"):
        _training_config([line([54, 9], 2.0)], "auto", nf=8, n_layers=1)
