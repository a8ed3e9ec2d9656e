"""The task registry: the README's table and example task, and every refusal."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench import registry
from bench.cli import app
from bench.errors import EdmBenchError, InputError
from bench.tasks.spec import Task
from tests.bench.test_runner import RUN, tiny_dataset  # noqa: F401 - the module's dataset fixture

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_every_task_as_the_registry_does():
    assert registry.tasks_markdown() in README.read_text(), "README's task table is stale: paste tasks_markdown()"


@pytest.fixture
def example_task(monkeypatch):
    """The README's example task module, executed as written there and registered by one line."""
    code = re.search(r"```python\n# bench/tasks/start_forces.py\n(.*?)```", README.read_text(), re.S).group(1)
    module = types.ModuleType("example_start_forces")
    exec(compile(code, "README example", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "example_start_forces", module)
    monkeypatch.setattr(registry, "TASK_PATHS", (*registry.TASK_PATHS, "example_start_forces:START_FORCES"))
    registry.registry.cache_clear()
    yield module.START_FORCES
    registry.registry.cache_clear()


def test_a_new_task_is_one_module_and_one_registry_line(example_task, tiny_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*RUN, "--dataset", str(tiny_dataset), "--split", "train", "-n", "3",
                                      "--methods", "mmff,uff", "--tasks", "energy-ratio,start-forces",
                                      "--out", str(out), "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "start_forces.parquet")
    assert len(table) == 6 and table["start_fmax_ev_ang"].gt(0).all()  # 3 molecules x 2 methods, never at a minimum
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["start_forces"]["per_molecule"] and manifest["settings"]["run"]["tasks"] == [
        "energy-ratio", "start-forces"]
    metrics = pd.read_csv(out / "metrics.csv").set_index("method")
    for method in ("mmff", "uff"):
        expected = table[table["method"] == method]["start_fmax_ev_ang"].median()
        assert metrics.loc[method, "median_start_fmax_ev_ang"] == pytest.approx(expected)
    # the forces are the oracle's: one start recomputed with a fresh calculator agrees
    from bench.data import load_dataset
    from bench.oracles import get_oracle

    record = next(r for r in load_dataset(tiny_dataset, "train") if r.id == table["id"].iloc[0])
    point = get_oracle("xtb").single_point(record.to_atoms("start"), record.id)
    mmff_row = table[(table["method"] == "mmff") & (table["id"] == record.id)]
    assert mmff_row["start_fmax_ev_ang"].iloc[0] == pytest.approx(np.linalg.norm(point.forces_ev_ang, axis=1).max())
    board = CliRunner().invoke(app, ["leaderboard", str(out), "--out", str(tmp_path / "board")])
    assert board.exit_code == 0, board.output
    assert "median_start_fmax_ev_ang" in pd.read_csv(tmp_path / "board" / "leaderboard.csv")


def test_tasks_are_refused_with_the_allowed_names():
    with pytest.raises(InputError, match=r"--tasks: unknown task\(s\) \['nosuch'\]; choose from \['energy-ratio', "
                                         r"'relax-speedup', 'force-alignment', 'structure-stability'\]"):
        registry.run_tasks(["energy-ratio", "nosuch"])
    with pytest.raises(InputError, match=r"\['boltzmann'\] run\(s\) as its own command: edm-bench boltzmann"):
        registry.run_tasks(["boltzmann"])
    with pytest.raises(InputError, match="unknown task"):
        registry.run_tasks([])


def test_a_task_declaration_is_checked():
    with pytest.raises(ValueError, match="unknown needs \\['gpu'\\]"):
        Task("t", "x", needs=frozenset({"gpu"}), compute=lambda ctx: {})
    with pytest.raises(ValueError, match="a task of `run` has a compute function"):
        Task("t", "x")
    task = Task("t", "x", tables={"t": ("id", "value")}, compute=lambda ctx: {})
    with pytest.raises(EdmBenchError, match="task 't' did not write its table 't'"):
        task.check_tables({})
    with pytest.raises(EdmBenchError, match=r"table 't' lacks the column\(s\) \['value'\]"):
        task.check_tables({"t": pd.DataFrame({"id": [1]})})


def test_two_tasks_of_one_name_are_refused(monkeypatch):
    monkeypatch.setattr(registry, "TASK_PATHS", (*registry.TASK_PATHS, "bench.tasks.relaxation:ENERGY_RATIO"))
    registry.registry.cache_clear()
    try:
        with pytest.raises(ValueError, match="two tasks are called 'energy-ratio'"):
            registry.registry()
    finally:
        registry.registry.cache_clear()


def test_every_declared_figure_and_gated_metric_exists():
    from bench import metrics

    figures = registry.figure_functions(registry.registry().values())
    assert {"steps_scatter", "energy_path", "boltzmann_violins", "phase_curves", "generation_quality"} <= set(figures)
    assert set(registry.gated_metrics()) <= set(metrics.METRICS)
    for task in registry.registry().values():
        if task.command == "run":
            assert set(task.metrics) <= set(metrics.METRICS), task.name
