"""Benchmark tasks: pure functions from (records, start geometries, oracle) to tidy frames.

Start geometries come from a denoiser or a baseline (:mod:`bench.baselines`) as
:class:`Starts`: per method, one positions array (or the reason it is missing)
per record. Tasks never import a model.
"""

from bench.tasks.relaxation import (
    Starts,
    denoiser_starts,
    energy_above_ground,
    make_starts,
    relax_from_starts,
    summarise_energy,
    summarise_relax,
)

__all__ = ["Starts", "make_starts", "denoiser_starts", "energy_above_ground", "relax_from_starts", "summarise_energy",
           "summarise_relax"]
