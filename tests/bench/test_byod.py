"""The README's "bring your own denoiser" example, executed as written there: a tiny
PyTorch model exported with the position-only signature, its card, a run and its
leaderboard row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> tuple[str, list[str]]:
    text = README.read_text()
    code = re.search(r"```python\n# byod/export.py\n(.*?)```", text, re.S).group(1)
    shell = re.search(r"```bash\n(mkdir -p byod && python byod/export.py\n.*?)```", text, re.S).group(1)
    return code, [line.split("#")[0].strip() for line in shell.splitlines() if line.strip()]


def test_the_readme_example_runs_and_its_row_is_on_the_leaderboard(tmp_path):
    code, commands = blocks()
    (tmp_path / "byod").mkdir()
    (tmp_path / "byod" / "export.py").write_text(code)
    root = README.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDM_BENCH_PROGRESS": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert commands[0] == "mkdir -p byod && python byod/export.py"
    subprocess.run([sys.executable, "byod/export.py"], cwd=tmp_path, env=env, check=True)
    for command in commands[1:3]:
        args = command.split()
        assert args[0] == "edm-bench"
        done = subprocess.run([sys.executable, "-m", "bench.cli", *args[1:], "--store", str(tmp_path / "s.sqlite")]
                              if args[1] == "run" else [sys.executable, "-m", "bench.cli", *args[1:]],
                              cwd=tmp_path, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert commands[3].startswith("grep pairnet runs/byod-board/leaderboard.csv")
    board = pd.read_csv(tmp_path / "runs" / "byod-board" / "leaderboard.csv")
    row = board[board["method"] == "pairnet/n=10"]
    assert len(row) == 1 and row["n_failed"].iloc[0] == 0
    assert row["energy_ratio"].iloc[0] > 0
