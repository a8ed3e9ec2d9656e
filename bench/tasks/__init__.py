"""Benchmark tasks: pure functions from (records, start geometries, oracle) to tidy frames.

Start geometries come from a denoiser or a baseline (:mod:`bench.baselines`) as
:class:`Starts`: per (method, seed), one start (positions, or the reason they are
missing) per record. Tasks never import a model, and never compute a headline
number: :mod:`bench.metrics` does, from the tables they write. Each task module
declares its :class:`~bench.tasks.spec.Task`; :mod:`bench.registry` lists them.

The relaxation names are imported on first use (PEP 562), so that importing
:mod:`bench.tasks.spec` (the registry does) does not import the oracles.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["GroundReference", "Start", "Starts", "make_starts", "denoiser_starts", "ground_references",
           "energy_above_ground", "relax_from_starts"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("bench.tasks.relaxation"), name)
    raise AttributeError(f"module 'bench.tasks' has no attribute {name!r}")
