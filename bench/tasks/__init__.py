"""Benchmark tasks: pure functions from (records, start geometries, oracle) to tidy frames.

Start geometries come from a denoiser or a baseline (:mod:`bench.baselines`) as
:class:`Starts`: per (method, seed), one start (positions, or the reason they are
missing) per record. Tasks never import a model, and never compute a headline
number: :mod:`bench.metrics` does, from the tables they write.
"""

from bench.tasks.relaxation import (
    GroundReference,
    Start,
    Starts,
    denoiser_starts,
    energy_above_ground,
    ground_references,
    make_starts,
    relax_from_starts,
)

__all__ = ["GroundReference", "Start", "Starts", "make_starts", "denoiser_starts", "ground_references",
           "energy_above_ground", "relax_from_starts"]
