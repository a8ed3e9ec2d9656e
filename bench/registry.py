"""The task registry: every task of edm-bench, one line each.

A line names the module and the :class:`bench.tasks.spec.Task` it holds. The
runner computes the tasks of ``edm-bench run`` from it, the report draws their
figures, the leaderboard ranks the analyses by their declared columns, the gate
tracks their gated metrics and the CLI lists them; so a new task is one module
and one line here (README: "Adding a task").
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from bench import metrics
from bench.columns import Col
from bench.errors import InputError
from bench.tasks.spec import Task

#: Every task, as ``module:attribute`` of its Task, in report order.
TASK_PATHS = (
    "bench.tasks.relaxation:ENERGY_RATIO",
    "bench.tasks.relaxation:RELAX_SPEEDUP",
    "bench.tasks.alignment:FORCE_ALIGNMENT",
    "bench.tasks.structure_stability:STRUCTURE_STABILITY",
    "bench.tasks.boltzmann:BOLTZMANN",
    "bench.tasks.phases:PHASES",
    "bench.tasks.stability:GENERATION",
)


@functools.cache
def registry() -> dict[str, Task]:
    """The tasks by name (imported once)."""
    tasks: dict[str, Task] = {}
    for path in TASK_PATHS:
        module, _, attribute = path.partition(":")
        task = getattr(importlib.import_module(module), attribute)
        if task.name in tasks:
            raise ValueError(f"two tasks are called {task.name!r} ({path} and another)")
        tasks[task.name] = task
    return tasks


def run_task_names() -> list[str]:
    """The tasks ``edm-bench run --tasks`` computes."""
    return [name for name, task in registry().items() if task.command == "run"]


def run_tasks(names: Iterable[str]) -> list[Task]:
    """The run tasks ``names``, or an :class:`InputError` naming the allowed ones."""
    names = list(names)
    tasks = registry()
    unknown = [n for n in names if n not in tasks]
    if unknown or not names:
        raise InputError(f"--tasks: unknown task(s) {unknown}; choose from {run_task_names()}")
    elsewhere = [n for n in names if tasks[n].command != "run"]
    if elsewhere:
        raise InputError(f"--tasks: {elsewhere} run(s) as its own command: "
                         + ", ".join(f"edm-bench {tasks[n].command}" for n in elsewhere))
    return [tasks[n] for n in names]


def figure_functions(tasks: Iterable[Task]) -> dict[str, Callable]:
    """The figures of ``tasks`` by name: drawn by :mod:`bench.reports`, or the task's own."""
    from bench.reports.analysis_figures import BOLTZMANN_FIGURES, GENERATION_FIGURES, PHASES_FIGURES
    from bench.reports.figures import FIGURES

    known = {**FIGURES, **BOLTZMANN_FIGURES, **PHASES_FIGURES, **GENERATION_FIGURES}
    out: dict[str, Callable] = {}
    for task in tasks:
        for figure in task.figures:
            if isinstance(figure, str):
                if figure not in known:
                    raise ValueError(f"task {task.name!r}: no figure called {figure!r} in bench.reports")
                out[figure] = known[figure]
            else:
                out[figure.__name__] = figure
    return out


def headline(tables: Mapping[str, pd.DataFrame], bootstrap: metrics.Bootstrap | None, tasks: Iterable[Task]
             ) -> pd.DataFrame:
    """One row per method: the metrics of :mod:`bench.metrics` and those of every
    task that summarises its own tables."""
    return with_task_metrics(metrics.summarise(tables, bootstrap), tables, tasks)


def with_task_metrics(frame: pd.DataFrame, tables: Mapping[str, pd.DataFrame], tasks: Iterable[Task]
                      ) -> pd.DataFrame:
    """``frame`` (one row per method) with the metrics of every task that summarises
    its own tables, merged on the method."""
    for task in tasks:
        if task.summarise is not None and all(name in tables for name in task.tables):
            own = task.summarise(tables)
            frame = own if frame.empty else frame.merge(own, on=Col.METHOD, how="outer", sort=False)
    return frame


def gated_metrics() -> tuple[str, ...]:
    """The metrics the CI regression gate tracks for a denoiser's row, in registry order."""
    return tuple(m for task in registry().values() for m in task.gated)


def analysis_columns(task_name: str) -> Mapping[str, bool | None]:
    """The summary columns an analysis's leaderboard shows (the first ranks it)."""
    return registry()[task_name].leaderboard


def tasks_markdown() -> str:
    """The README's task table: name, command, what it needs, tables, metrics."""
    lines = ["| task | command | needs | tables | metrics |", "| --- | --- | --- | --- | --- |"]
    for task in registry().values():
        lines.append(f"| `{task.name}` | `edm-bench {task.command}` | {', '.join(sorted(task.needs)) or '-'} | "
                     f"{', '.join(f'`{t}`' for t in task.tables)} | {', '.join(f'`{m}`' for m in task.metrics)} |")
    return "\n".join(lines)
