"""Noise schedules as data: the table of alpha_t^2 on the grid t = i / T.

Every schedule is variance preserving (``alpha_t^2 + sigma_t^2 = 1``) and enters
the sampler as the (T + 1,) table ``gamma_i = log(sigma_i^2 / alpha_i^2)``, stored
in checkpoints as ``gamma.gamma`` (float32) and looked up at ``round(t * T)``, so
that a model trained with another schedule or another T runs through the same
sampler. Three kinds:

``polynomial_<p>``
    EDM's (Hoogeboom et al. 2022, appendix B): ``alpha_t^2 = (1 - t^p)^2``, the
    per-step ratios clipped to [0.001, 1], squeezed to ``[s, 1 - s]`` by the
    precision s.
``cosine``
    Nichol & Dhariwal (2021), eq. 17 with offset 0.008:
    ``alpha_bar(t) = cos^2(pi/2 (t + 0.008) / 1.008) / alpha_bar(0)``, the betas
    ``1 - alpha_bar_i / alpha_bar_{i-1}`` clipped to at most 0.999.
``tabulated``
    alpha_i^2 for every step, given (a model trained elsewhere, with its own T).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Schedule names that need no table (``polynomial_<p>`` for any power p > 0).
NAMED = ("polynomial_<p>", "cosine")


def polynomial_alpha2(timesteps: int, precision: float = 1e-5, power: float = 2.0) -> np.ndarray:
    """alpha_t^2 on the T + 1 grid points t = i / T (float64).

    >>> a2 = polynomial_alpha2(1000)
    >>> round(float(a2[0]), 6), round(float(a2[-1]), 8)
    (0.99999, 1e-05)
    """
    x = np.linspace(0, timesteps, timesteps + 1) / timesteps
    a2 = (1.0 - x**power) ** 2
    # Clip the per-step ratio alpha_t^2 / alpha_{t-1}^2 for a stable end of the chain.
    a2 = np.concatenate([np.ones(1), a2])
    ratio = np.clip(a2[1:] / a2[:-1], a_min=0.001, a_max=1.0)
    a2 = np.cumprod(ratio)
    return (1.0 - 2.0 * precision) * a2 + precision


def cosine_alpha2(timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """alpha_bar on the T + 1 grid points of the cosine schedule (float64).

    >>> a2 = cosine_alpha2(1000)
    >>> float(a2[0]), bool(a2[-1] < 1e-6)
    (1.0, True)
    """
    t = np.arange(timesteps + 1) / timesteps
    f = np.cos((t + offset) / (1 + offset) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
    return np.concatenate([np.ones(1), np.cumprod(1.0 - betas)])


def check_alpha2(alpha2: np.ndarray, timesteps: int, source: str = "schedule") -> np.ndarray:
    """``alpha2`` as float64 if it is a usable table for T = ``timesteps``: T + 1
    finite values in [0, 1], non-increasing, alpha_0^2 > 0; else ValueError."""
    a2 = np.asarray(alpha2, dtype=np.float64)
    if a2.shape != (timesteps + 1,):
        raise ValueError(f"{source}: needs T + 1 = {timesteps + 1} values, got shape {a2.shape}")
    if not np.all(np.isfinite(a2)) or a2.min() < 0 or a2.max() > 1:
        raise ValueError(f"{source}: alpha^2 must be finite and in [0, 1]")
    if a2[0] <= 0 or np.any(np.diff(a2) > 1e-12):
        raise ValueError(f"{source}: alpha^2 must start above 0 and never increase with t")
    return a2


def alpha2_from_alpha_sigma(alpha: np.ndarray, sigma: np.ndarray, source: str = "schedule",
                            tolerance: float = 1e-5) -> np.ndarray:
    """alpha^2 of a tabulated (alpha_i, sigma_i) schedule; refuses one that is not
    variance preserving (|alpha^2 + sigma^2 - 1| above ``tolerance``)."""
    alpha, sigma = np.asarray(alpha, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if alpha.shape != sigma.shape or alpha.ndim != 1:
        raise ValueError(f"{source}: alpha and sigma must be lists of one length")
    gap = np.abs(alpha**2 + sigma**2 - 1)
    if not np.all(np.isfinite(gap)) or gap.max() > tolerance:
        raise ValueError(f"{source}: alpha^2 + sigma^2 must be 1 at every step (variance preserving); "
                         f"largest gap {np.nanmax(gap):.3g}")
    return alpha**2


def alpha2_table(timesteps: int = 1000, precision: float = 1e-5, schedule: str = "polynomial_2",
                 table: np.ndarray | None = None) -> np.ndarray:
    """The (T + 1,) alpha^2 table of a schedule (``table`` for ``"tabulated"``)."""
    if schedule == "tabulated":
        if table is None:
            raise ValueError("a tabulated schedule needs its alpha^2 table")
        return check_alpha2(table, timesteps, "tabulated schedule")
    if table is not None:
        raise ValueError(f"schedule {schedule!r} takes no table (use 'tabulated')")
    if schedule == "cosine":
        return cosine_alpha2(timesteps)
    if schedule.startswith("polynomial_"):
        try:
            power = float(schedule.split("_", 1)[1])
        except ValueError:
            power = float("nan")
        if power > 0:
            return polynomial_alpha2(timesteps, precision, power)
    raise ValueError(f"unknown noise schedule {schedule!r}: one of {', '.join(NAMED)} or 'tabulated'")


def gamma_table(timesteps: int = 1000, precision: float = 1e-5, schedule: str = "polynomial_2",
                table: np.ndarray | None = None) -> np.ndarray:
    """The (T + 1,) table gamma_i = -(log a2_i - log(1 - a2_i)) (float64); where
    alpha^2 reaches 0 or 1 exactly, it is kept 1e-12 inside so that gamma stays finite."""
    a2 = np.clip(alpha2_table(timesteps, precision, schedule, table), 1e-12, 1 - 1e-12)
    return -(np.log(a2) - np.log1p(-a2))


class PredefinedNoiseSchedule(nn.Module):
    """gamma(t) for t in [0, 1] by table lookup; state-dict key ``gamma``.

    Parameters
    ----------
    timesteps : int
        T, the number of diffusion steps (1000 in EDM).
    precision : float
        s of the polynomial schedules (1e-5 in EDM).
    schedule : str
        ``"polynomial_<power>"``, ``"cosine"`` or ``"tabulated"``.
    table : array, optional
        alpha^2 per step, for ``"tabulated"``.
    """

    def __init__(self, timesteps: int = 1000, precision: float = 1e-5, schedule: str = "polynomial_2",
                 table: np.ndarray | None = None) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.register_buffer("gamma", torch.from_numpy(gamma_table(timesteps, precision, schedule, table)).float())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """gamma at times ``t`` (any shape, values in [0, 1])."""
        index = torch.round(t * self.timesteps).long()
        return self.gamma[index]
