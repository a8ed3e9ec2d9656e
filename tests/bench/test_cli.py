"""The command line: --help everywhere, and input errors as one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.cli import app

COMMANDS = [[], ["data"], ["data", "build"], ["data", "info"], ["data", "read"], ["run"], ["train"],
            ["leaderboard"], ["perf"], ["card"], ["card", "validate"], ["boltzmann"], ["phases"], ["generation"]]


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
