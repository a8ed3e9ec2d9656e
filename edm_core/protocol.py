"""What the benchmark asks of a denoiser, whatever its family.

The runner, the analyses, the leaderboard and perf see a denoiser only through
:class:`Denoiser`. :class:`edm_core.EDMDenoiser` implements it for every way a
denoiser enters (EDM checkpoints, ONNX files with the EDM or the position-only
signature, Python entry points), with our sampler loop around their network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: Learned start-step modes (MoreRed's ITP and AS: predict the step once and count
#: down, or predict it again before every step); ``auto`` means both.
AUTO_MODES = ("auto-itp", "auto-as")


@dataclass(frozen=True)
class Capabilities:
    """What a denoiser can do; a task that needs a missing one skips it with the reason.

    relax : reverse diffusion from given structures at a start step
    repeat_step : the single step n -> n-1 applied again and again (Boltzmann analysis)
    generate : de novo molecules from noise (atom types included)
    auto_start : a time-step predictor, so that start steps can be ``auto``
    """

    relax: bool = True
    repeat_step: bool = True
    generate: bool = True
    auto_start: bool = False

    def missing(self, needed: str) -> str | None:
        """Why this denoiser cannot do ``needed`` (a field name), or None."""
        if getattr(self, needed):
            return None
        reasons = {"generate": "it is given atom types and diffuses positions only (or cannot generate)",
                   "auto_start": "it has no time-step predictor", "repeat_step": "it cannot repeat one step",
                   "relax": "it cannot relax given structures"}
        return reasons[needed]


@runtime_checkable
class Denoiser(Protocol):
    """A denoiser as the benchmark uses it (numpy in, numpy out; Angstrom)."""

    #: the backend its network runs on (``torch``, ``cpp``, ``ONNX file x.onnx``, ...)
    backend: str

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def n_parameters(self) -> int: ...

    @property
    def position_scale(self) -> float:
        """Latent positions times this are Angstrom."""

    def gamma_table(self) -> np.ndarray:
        """The schedule's (T + 1,) gamma table."""

    def check(self, numbers: np.ndarray, positions: np.ndarray, name: str) -> None:
        """Raise ValueError naming ``name`` when the denoiser cannot take this molecule."""

    def relax(self, molecules: Sequence[Any], n_steps: int | str, **options: Any) -> Any:
        """Reverse diffusion from the given structures (see :meth:`EDMDenoiser.relax`)."""

    def repeat_step(self, molecule: Any, n: int, n_repeats: int, burn_in: int = 0, **options: Any) -> np.ndarray:
        """Positions after each repeat of the step n -> n-1."""

    def generate(self, n_molecules: int, **options: Any) -> dict[str, Any]:
        """De novo molecules (numbers, positions)."""
