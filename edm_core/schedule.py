"""The noise schedule of EDM: the predefined polynomial gamma table.

Hoogeboom et al. (2022), section 3 and appendix B: with ``alpha_t^2 = (1 - t^p)^2``
(``p = 2`` for "polynomial_2"), the per-step ratios clipped to [0.001, 1] and the
result squeezed to ``[s, 1 - s]`` by the precision ``s``,

.. math::

    \\gamma(t) = -\\left(\\log \\alpha_t^2 - \\log(1 - \\alpha_t^2)\\right),
    \\qquad \\alpha_t^2 = \\mathrm{sigmoid}(-\\gamma), \\quad \\sigma_t^2 = \\mathrm{sigmoid}(\\gamma).

The table is stored in checkpoints as ``gamma.gamma`` (float32, T + 1 values) and
looked up at ``round(t * T)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def polynomial_alpha2(timesteps: int, precision: float = 1e-5, power: float = 2.0) -> np.ndarray:
    """alpha_t^2 on the T + 1 grid points t = i / T (float64).

    >>> a2 = polynomial_alpha2(1000)
    >>> round(float(a2[0]), 6), round(float(a2[-1]), 8)
    (0.99998, 1e-05)
    """
    x = np.linspace(0, timesteps, timesteps + 1) / timesteps
    a2 = (1.0 - x**power) ** 2
    # Clip the per-step ratio alpha_t^2 / alpha_{t-1}^2 for a stable end of the chain.
    a2 = np.concatenate([np.ones(1), a2])
    ratio = np.clip(a2[1:] / a2[:-1], a_min=0.001, a_max=1.0)
    a2 = np.cumprod(ratio)
    return (1.0 - 2.0 * precision) * a2 + precision


def gamma_table(timesteps: int = 1000, precision: float = 1e-5, schedule: str = "polynomial_2") -> np.ndarray:
    """The (T + 1,) table gamma_i = -(log a2_i - log(1 - a2_i)) (float64)."""
    if not schedule.startswith("polynomial_"):
        raise ValueError(f"Unsupported noise schedule {schedule!r}; EDM's checkpoints use 'polynomial_2'")
    power = float(schedule.split("_", 1)[1])
    a2 = polynomial_alpha2(timesteps, precision, power)
    return -(np.log(a2) - np.log1p(-a2))


class PredefinedNoiseSchedule(nn.Module):
    """gamma(t) for t in [0, 1] by table lookup; state-dict key ``gamma``.

    Parameters
    ----------
    timesteps : int
        T, the number of diffusion steps (1000 in EDM).
    precision : float
        s in the schedule (1e-5 in EDM).
    schedule : str
        ``"polynomial_<power>"``.
    """

    def __init__(self, timesteps: int = 1000, precision: float = 1e-5, schedule: str = "polynomial_2") -> None:
        super().__init__()
        self.timesteps = timesteps
        table = torch.from_numpy(gamma_table(timesteps, precision, schedule)).float()
        self.register_buffer("gamma", table)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """gamma at times ``t`` (any shape, values in [0, 1])."""
        index = torch.round(t * self.timesteps).long()
        return self.gamma[index]
