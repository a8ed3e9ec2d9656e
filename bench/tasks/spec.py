"""What a task declares (:class:`Task`) and what a run hands it (:class:`RunContext`).

A task is one module of :mod:`bench.tasks` holding a ``Task``: its name, what it
needs from a denoiser and an oracle, the per-molecule tables it writes with
their columns, its metrics and its figures, and for tasks of ``edm-bench run``
the function that computes its tables from a :class:`RunContext`. The registry
(:mod:`bench.registry`) lists the tasks; the runner, the report, the
leaderboard, the gate and the CLI read it, so that adding a task touches
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.errors import EdmBenchError

if TYPE_CHECKING:  # the registry imports this module: it stays free of the data and oracle layers
    from bench.data.records import MoleculeRecord

#: A figure of a task: the run's tables -> a matplotlib figure, or None when they do not allow it.
FigureFn = Callable[[Mapping[str, pd.DataFrame]], Any]

#: What a task may need. ``denoiser``: at least one denoiser in the run; ``paths``:
#: the denoisers' intermediate structures (first seed, largest start step);
#: ``forces``: oracle forces; ``relaxations``: oracle relaxations.
NEEDS = frozenset({"denoiser", "paths", "forces", "relaxations"})


@dataclass
class RunContext:
    """Everything a task of ``edm-bench run`` computes from, built once per run.

    ``starts`` maps (method, seed) to one start per record (see
    :mod:`bench.tasks.relaxation`); ``paths`` maps (method, seed) to the kept
    denoiser paths, one per record (None where the output failed).
    """

    records: Sequence[MoleculeRecord]
    oracle: Any
    grounds: Sequence[Any]
    starts: Mapping[tuple[str, int | None], Sequence[Any]]
    paths: Mapping[tuple[str, int | None], Sequence[Any]] = field(default_factory=dict)
    fmax_ev_ang: float = 0.03
    optimizer: str = "BFGS"
    max_steps: int = 1000


@dataclass(frozen=True)
class Task:
    """One task: what it needs, writes and reports.

    Attributes
    ----------
    name : str
        What ``--tasks`` and the manifests call it.
    description : str
        One line for ``--help`` and the README.
    command : str
        The subcommand that runs it: ``run`` (``edm-bench run --tasks``) or the
        analysis's own (``boltzmann``, ...).
    needs : frozenset of str
        Of :data:`NEEDS`.
    tables : mapping
        Per-molecule table name -> the columns it must have (checked when written).
    metrics : tuple of str
        The names of its headline metrics (``bench.metrics.METRICS`` for the
        built-in run tasks, or columns its ``summarise`` returns).
    leaderboard : mapping
        Summary column -> higher is better (None: shown, not ranked); the first
        ranks an analysis's leaderboard table.
    gated : tuple of str
        Metrics the CI regression gate tracks for a denoiser's row.
    figures : tuple
        Figure names drawn by :mod:`bench.reports` or the task's own figure functions.
    compute : callable, optional
        ``compute(context) -> {table name: DataFrame}`` for a task of ``run``.
    summarise : callable, optional
        ``summarise(tables) -> DataFrame`` (one row per ``method``) of metrics
        beyond those of :mod:`bench.metrics`.
    """

    name: str
    description: str
    command: str = "run"
    needs: frozenset[str] = frozenset()
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    leaderboard: Mapping[str, bool | None] = field(default_factory=dict)
    gated: tuple[str, ...] = ()
    figures: tuple[str | FigureFn, ...] = ()
    compute: Callable[[RunContext], dict[str, pd.DataFrame]] | None = None
    summarise: Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.needs) - NEEDS)
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown needs {unknown}; choose from {sorted(NEEDS)}")
        if (self.command == "run") != (self.compute is not None):
            raise ValueError(f"task {self.name!r}: a task of `run` has a compute function, an analysis none")

    def check_tables(self, tables: Mapping[str, pd.DataFrame]) -> None:
        """Refuse tables missing from what this task wrote, or missing a declared column."""
        for name, columns in self.tables.items():
            if name not in tables:
                raise EdmBenchError(f"task {self.name!r} did not write its table {name!r}")
            missing = [c for c in columns if c not in tables[name]]
            if missing:
                raise EdmBenchError(f"task {self.name!r}: table {name!r} lacks the column(s) {missing}")
