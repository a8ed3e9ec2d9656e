"""E(3) equivariant diffusion (EDM): normalisation, the reverse step, sampling,
relaxation from a given structure, repeated single steps, and the l2 loss.

Notation of Hoogeboom et al. (2022) and their code: ``z = [x, h_cat, h_int]``
normalised by ``[1, 4, 10]``; ``gamma`` from :mod:`edm_core.schedule`;
``alpha^2 = sigmoid(-gamma)``, ``sigma^2 = sigmoid(gamma)``. Positions live in
the zero-centre-of-mass subspace: position noise is centred per molecule.

Reverse step s+1 -> s (EDM eq. 8-9, epsilon parametrisation)::

    sigma2_ts = -expm1(softplus(gamma_s) - softplus(gamma_t))
    alpha_ts  = exp(0.5 (logsigmoid(-gamma_t) - logsigmoid(-gamma_s)))
    mu        = z_t / alpha_ts - sigma2_ts / alpha_ts / sigma_t * eps_hat
    z_s       = mu + sqrt(sigma2_ts) sigma_s / sigma_t * noise
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edm_core.dynamics import EGNNDynamics, remove_mean
from edm_core.schedule import PredefinedNoiseSchedule


#: A diffusion step: one for the whole batch, or a (B,) integer tensor, one per molecule.
Step = Union[int, torch.Tensor]


def strided_steps(start_step: int, k: int) -> list[int]:
    """The times ``start_step = t_0 > t_1 > ... > t_k = 0`` of k reverse steps, evenly
    spaced (DDIM's stride; k = start_step is every step)."""
    if not 1 <= k <= start_step:
        raise ValueError(f"evaluations must be in 1..{start_step} (the start step), got {k}")
    return [round(start_step * (k - i) / k) for i in range(k + 1)]


class NetworkOutputError(ValueError):
    """A network returned something that is not a noise prediction for its input:
    wrong shape or type, or NaN/inf on a real atom. It names the molecules of the
    batch it concerns, so that a caller retrying molecule by molecule fails only
    those; a NaN is never turned into a zero step (the original EDM zeroes it,
    which would report a failed network as a successful one)."""


def check_finite(out: torch.Tensor, node_mask: torch.Tensor, description: str) -> torch.Tensor:
    """``out`` with its padding atoms set to zero, or :class:`NetworkOutputError` naming
    the molecules with NaN or inf on a real atom. Padding is ignored, whatever it holds
    (a NaN there would otherwise spread through the masked sums of the step)."""
    real = node_mask > 0
    bad = (~torch.isfinite(out) & real).flatten(1).any(dim=1)
    if bad.any():
        raise NetworkOutputError(f"{description}: NaN or inf in the output for molecule(s) "
                                 f"{bad.nonzero().flatten().tolist()} of a batch of {len(bad)}")
    return torch.where(real, out, torch.zeros((), dtype=out.dtype, device=out.device))


@dataclass(frozen=True)
class Noise:
    """Where the sampler's Gaussian noise comes from.

    ``generator`` makes a call reproducible (``seed`` builds one). With
    ``shared`` ("fix_noise" of the original) one draw is broadcast over the
    batch, as the study's relaxations did. ``scale`` multiplies every draw: 1 is
    EDM's ancestral sampler, 0 makes each reverse step go to its mean (a
    deterministic sampler; our extension).
    """

    generator: torch.Generator | None = None
    shared: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale >= 0:
            raise ValueError(f"noise scale must be >= 0, got {self.scale}")

    @classmethod
    def from_seed(cls, seed: int | None, shared: bool = False, device: str | torch.device = "cpu",
                  scale: float = 1.0) -> "Noise":
        if seed is None:
            return cls(None, shared, scale)
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        return cls(g, shared, scale)

    def sample(self, node_mask: torch.Tensor, n_features: int) -> torch.Tensor:
        """Noise (B, N, 3 + n_features): centred Gaussian positions, Gaussian features, masked."""
        b, n, _ = node_mask.shape
        rows = 1 if self.shared else b
        eps = torch.randn((rows, n, 3 + n_features), generator=self.generator, dtype=node_mask.dtype,
                          device=node_mask.device).expand(b, n, 3 + n_features)
        x = remove_mean(eps[..., :3] * node_mask, node_mask)
        return torch.cat([x, eps[..., 3:] * node_mask], dim=-1) * self.scale


class EnVariationalDiffusion(nn.Module):
    """EDM's diffusion model around an :class:`EGNNDynamics` network.

    State-dict layout of the original: ``buffer``, ``gamma.gamma``, ``dynamics.*``.

    Parameters
    ----------
    dynamics : EGNNDynamics
    n_atom_types : int
        K, one-hot columns.
    include_charges : bool
        Whether z has the charge column (c = 1).
    timesteps, precision, noise_schedule :
        The schedule (T = 1000, s = 1e-5, "polynomial_2").
    norm_values : tuple
        Normalisation of (x, one-hot, charges): (1, 4, 10).
    """

    def __init__(self, dynamics: EGNNDynamics, n_atom_types: int, include_charges: bool, timesteps: int = 1000,
                 precision: float = 1e-5, noise_schedule: str = "polynomial_2",
                 norm_values: tuple[float, float, float] = (1.0, 4.0, 10.0),
                 schedule_table: Sequence[float] | None = None, position_only: bool = False) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.gamma = PredefinedNoiseSchedule(timesteps, precision, noise_schedule,
                                             None if schedule_table is None else np.asarray(schedule_table))
        self.register_buffer("buffer", torch.zeros(1))
        self.n_atom_types = n_atom_types
        self.include_charges = include_charges
        self.T = timesteps
        self.norm_values = tuple(float(v) for v in norm_values)
        self.position_only = position_only

    @property
    def inference_network(self) -> Callable[..., torch.Tensor] | None:
        """The network no-grad calls use instead of ``dynamics`` (a compiled backend,
        an ONNX session, an outside callable), or None for ``dynamics`` itself."""
        return self.__dict__.get("_inference_network")

    def use_network(self, network: Callable[..., torch.Tensor] | None) -> None:
        """Set :attr:`inference_network`. It is kept outside the module tree, so it never
        enters the state dict, ``.to()`` or ``parameters()`` (a backend may hold a
        torch module of its own, or none)."""
        self.__dict__["_inference_network"] = network

    @property
    def n_features(self) -> int:
        """K + c, the non-position columns of z."""
        return self.n_atom_types + int(self.include_charges)

    @property
    def n_diffused(self) -> int:
        """The columns of z that are noised and denoised: 3 for a position-only model."""
        return 3 if self.position_only else 3 + self.n_features

    def sample_noise(self, noise: Noise, node_mask: torch.Tensor) -> torch.Tensor:
        """A draw of ``noise`` for z; zero on the feature block of a position-only model."""
        eps = noise.sample(node_mask, self.n_features)
        if self.position_only:
            eps = torch.cat([eps[..., :3], torch.zeros_like(eps[..., 3:])], dim=-1)
        return eps

    def molecule_errors(self, eps: torch.Tensor, eps_hat: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """(B,) squared error of the noise prediction over the diffused columns, per
        column and atom slot (EDM's normalisation by the padded size N)."""
        d = self.n_diffused
        return ((eps - eps_hat)[..., :d] ** 2).sum(dim=(1, 2)) / (d * node_mask.shape[1])

    # -- normalisation -------------------------------------------------------------------
    def normalize(self, x: torch.Tensor, one_hot: torch.Tensor, charges: torch.Tensor | None,
                  node_mask: torch.Tensor) -> torch.Tensor:
        """z = [x / 1, one_hot / 4, charges / 10], masked: (B, N, 3 + K + c)."""
        parts = [x / self.norm_values[0] * node_mask, one_hot / self.norm_values[1] * node_mask]
        if self.include_charges:
            if charges is None:
                raise ValueError("this model includes charges: pass the charges (atomic numbers for QM9)")
            parts.append(charges.reshape(node_mask.shape) / self.norm_values[2] * node_mask)
        return torch.cat(parts, dim=-1)

    def unnormalize_positions(self, z: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        return z[..., :3] * self.norm_values[0] * node_mask

    # -- schedule ------------------------------------------------------------------------
    def sigma(self, gamma: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.sigmoid(gamma))

    def alpha(self, gamma: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.sigmoid(-gamma))

    def predict_noise(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """The network output eps_hat(z_t, t) in normalised space (through the
        inference backend when one is set, see :mod:`edm_core.backends`). In
        inference, every backend's output is checked to be finite on real atoms
        (:func:`check_finite`); training sees the raw output (its loss says NaN)."""
        if torch.is_grad_enabled():
            return self.dynamics(z, t, node_mask)
        network = self.inference_network or self.dynamics
        return check_finite(network(z, t, node_mask), node_mask, getattr(network, "description", "the network"))

    def _time(self, step: Step, b: int, like: torch.Tensor) -> torch.Tensor:
        """(B, 1) times step / T of one step for all molecules or one per molecule."""
        step = torch.as_tensor(step, device=like.device)
        return (step.to(like.dtype) / self.T).reshape(-1, 1).expand(b, 1)

    def reverse_step(self, z_t: torch.Tensor, s: Step, node_mask: torch.Tensor, noise: Noise, t: Step | None = None
                     ) -> torch.Tensor:
        """One ancestral step from time t/T (default (s+1)/T) to s/T: z_s drawn from
        q(z_s | z_t, x = x_hat), which holds for any s < t (a strided step). ``s``
        and ``t`` are ints or (B,) integer tensors (a step per molecule)."""
        b = z_t.shape[0]
        t_s, t_t = self._time(s, b, z_t), self._time(s + 1 if t is None else t, b, z_t)
        gamma_s, gamma_t = self.gamma(t_s)[:, :, None], self.gamma(t_t)[:, :, None]
        sigma2_ts = -torch.expm1(F.softplus(gamma_s) - F.softplus(gamma_t))
        alpha_ts = torch.exp(0.5 * (F.logsigmoid(-gamma_t) - F.logsigmoid(-gamma_s)))
        sigma_s, sigma_t = self.sigma(gamma_s), self.sigma(gamma_t)
        eps_hat = self.predict_noise(z_t, t_t, node_mask)
        mu = z_t / alpha_ts - (sigma2_ts / alpha_ts / sigma_t) * eps_hat
        std = torch.sqrt(sigma2_ts) * sigma_s / sigma_t
        z_s = mu + std * self.sample_noise(noise, node_mask)
        features = z_t[..., 3:] if self.position_only else z_s[..., 3:]  # given types are never denoised
        return torch.cat([remove_mean(z_s[..., :3], node_mask), features * node_mask], dim=-1)

    def final_positions(self, z0: torch.Tensor, node_mask: torch.Tensor, noise: Noise) -> torch.Tensor:
        """p(x | z_0): the last, noisy decode of positions (B, N, 3), Angstrom, centred."""
        b = z0.shape[0]
        t0 = torch.zeros((b, 1), dtype=z0.dtype, device=z0.device)
        gamma_0 = self.gamma(t0)[:, :, None]
        eps_hat = self.predict_noise(z0, t0, node_mask)
        mean = (z0 - self.sigma(gamma_0) * eps_hat) / self.alpha(gamma_0)
        xh = mean + torch.exp(0.5 * gamma_0) * self.sample_noise(noise, node_mask)
        return remove_mean(self.unnormalize_positions(xh, node_mask), node_mask)

    def decode_types(self, z0: torch.Tensor, node_mask: torch.Tensor, compat: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Atom-type indices (B, N) and charges (B, N) decoded from z_0 itself.

        ``compat=True`` reproduces the original's slicing ``z0[..., 3:-1]`` for the
        type block, which for a model without charges drops the last type.
        """
        k = self.n_atom_types
        block = z0[..., 3:-1] if compat else z0[..., 3:3 + k]
        types = torch.argmax(block, dim=-1) * node_mask[..., 0].long()
        charges = None
        if self.include_charges:
            charges = torch.round(z0[..., 3 + k] * self.norm_values[2]) * node_mask[..., 0]
        return types, charges

    def sample_chain(self, z: torch.Tensor, start_step: int, node_mask: torch.Tensor, noise: Noise,
                     keep_path: bool = False, evaluations: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Run the reverse steps ``start_step - 1 .. 0`` from ``z`` (taken as z at
        time start_step / T), then the final decode; with ``evaluations = k``, the
        way from ``start_step`` to 0 in k strided steps (:func:`strided_steps`).

        Returns
        -------
        positions : (B, N, 3) Angstrom, centred
        z0 : (B, N, 3 + K + c), the last latent (for decoding types)
        path : list of (B, N, 3) positions after each step (empty unless ``keep_path``)
        """
        path = []
        times = strided_steps(start_step, evaluations or start_step)
        for t, s in zip(times[:-1], times[1:]):
            z = self.reverse_step(z, s, node_mask, noise, t)
            if keep_path:
                path.append(self.unnormalize_positions(z, node_mask))
        x = self.final_positions(z, node_mask, noise)
        if keep_path:
            path.append(x)
        return x, z, path

    def sample_adaptive(self, z: torch.Tensor, start: torch.Tensor, node_mask: torch.Tensor, noise: Noise,
                        max_steps: int, predict_step: Callable[[torch.Tensor], torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reverse steps with a start step per molecule, one step at a time, then the
        final decode: MoreRed's two modes (Kahouli et al. 2024).

        Without ``predict_step`` (ITP), molecule i counts down from ``start[i]``.
        With it (AS), the step of every molecule still running is read again from
        its current latent before each step after the first. A molecule stops when
        its step reaches 0, or after ``max_steps`` steps; stopped molecules are left
        as they are while the others go on.

        Returns
        -------
        positions : (B, N, 3) Angstrom, centred
        z0 : the last latent (for decoding types)
        steps : (B,) reverse steps each molecule took (the final decode not counted)
        """
        current = start.to(z.device).long().clamp(0, self.T)
        steps = torch.zeros_like(current)
        for _ in range(max_steps):
            active = current > 0
            if not active.any():
                break
            z_next = self.reverse_step(z, (current - 1).clamp(min=0), node_mask, noise, current.clamp(min=1))
            z = torch.where(active[:, None, None], z_next, z)
            steps += active.long()
            current = torch.where(active, current - 1, current)
            if predict_step is not None:
                current = torch.where(current > 0, predict_step(z).long().clamp(0, self.T), current)
        return self.final_positions(z, node_mask, noise), z, steps

    # -- training --------------------------------------------------------------------------
    def noised(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor, noise: Noise
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_t, eps) with z_t = alpha_t z + sigma_t eps; ``t`` (B, 1)."""
        gamma_t = self.gamma(t)[:, :, None]
        eps = self.sample_noise(noise, node_mask)
        z_t = self.alpha(gamma_t) * z + self.sigma(gamma_t) * eps
        if self.position_only:
            z_t = torch.cat([z_t[..., :3], z[..., 3:]], dim=-1)
        return z_t, eps

    def l2_loss(self, z: torch.Tensor, node_mask: torch.Tensor, noise: Noise,
                t_max: float = 1.0, starts: StartCorruption | None = None) -> torch.Tensor:
        """EDM's l2 training objective (per-molecule, averaged over the batch).

        t_int is uniform in {0, ..., round(t_max T)}; ``t_max < 1`` is our extension
        (train only on the low-noise, relaxation part of the schedule). ``starts``
        corrupts some molecules with their start structures (:class:`StartCorruption`).
        """
        eps, eps_hat = self.denoising_pair(z, node_mask, noise, t_max, starts)
        return 0.5 * self.molecule_errors(eps, eps_hat, node_mask).mean()

    def denoising_pair(self, z: torch.Tensor, node_mask: torch.Tensor, noise: Noise, t_max: float = 1.0,
                       starts: StartCorruption | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, eps_hat) at times t_int uniform in {0, ..., round(t_max T)}.

        With ``starts``, eps is the target of every molecule: for a corrupted one,
        ``(z_t - alpha_t z) / sigma_t`` of its z_t, at a t of its path (see
        :meth:`start_corrupted`)."""
        b = z.shape[0]
        hi = int(round(t_max * self.T))
        t_int = torch.randint(0, hi + 1, (b, 1), generator=noise.generator, device=z.device)
        t = t_int.to(z.dtype) / self.T
        z_t, eps = self.noised(z, t, node_mask, noise)
        if starts is not None:
            t_int, z_t, eps = self.start_corrupted(z, t_int, eps, starts, noise.generator)
            t = t_int.to(z.dtype) / self.T
        return eps, self.predict_noise(z_t, t, node_mask)

    def start_corrupted(self, z: torch.Tensor, t_int: torch.Tensor, eps: torch.Tensor, starts: StartCorruption,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t_int, z_t, target eps) with the paired molecules on the path of a relaxation
        that started at their start structure.

        A relaxation takes the start structure x0 + d as z_n; every reverse step then
        shrinks what separates z_t from alpha_t x0: by sigma_s / sigma_t per step along
        DDIM's deterministic (strided) path, by (sigma_s / sigma_t)^2 along the mean of
        the ancestral step. A paired molecule is put on such a path: n uniform in
        ``starts.steps``, t uniform in {0, ..., n}, ``z_t = alpha_t x0 + c d + u sigma_t eps``
        with ``c = (sigma_t / sigma_n)^q``, q uniform in [1, 2], and u in {0, 1} (with or
        without the ancestral sampler's Gaussian noise). At t = n, c = 1: the start
        itself. Its features are clean (``alpha_t h``, as the relaxation's z_n holds
        them). The target is the noise z_t implies, ``(z_t - alpha_t z) / sigma_t``, so
        that the implied clean structure is the ground state. Unpaired molecules keep
        ``t_int`` and ``eps``.
        """
        b = z.shape[0]
        lo, hi = starts.steps
        paired = starts.paired.reshape(b, 1).to(z.device)
        uniform = lambda: torch.rand((b, 1), generator=generator, dtype=z.dtype, device=z.device)  # noqa: E731
        n_start = lo + (uniform() * (hi - lo + 1)).floor().to(t_int.dtype)
        t_path = (uniform() * (n_start + 1)).floor().to(t_int.dtype)
        t_int = torch.where(paired, t_path, t_int)
        gamma_t = self.gamma(t_int.to(z.dtype) / self.T)
        sigma_t = self.sigma(gamma_t)
        sigma_n = self.sigma(self.gamma(n_start.to(z.dtype) / self.T))
        c = (sigma_t / sigma_n) ** (1 + uniform())
        u = torch.randint(0, 2, (b, 1), generator=generator, device=z.device).to(z.dtype)
        pair = paired[:, :, None]
        shift = (c / sigma_t)[:, :, None] * starts.displacement
        positions = torch.where(pair, u[:, :, None] * eps[..., :3] + shift, eps[..., :3])
        features = torch.where(pair, torch.zeros_like(eps[..., 3:]), eps[..., 3:])
        target = torch.cat([positions, features], dim=-1)
        z_t = self.alpha(gamma_t)[:, :, None] * z + sigma_t[:, :, None] * target
        if self.position_only:
            z_t = torch.cat([z_t[..., :3], z[..., 3:]], dim=-1)
        return t_int, z_t, target


@dataclass(frozen=True)
class StartCorruption:
    """Start structures of some molecules of a training batch, as corruptions.

    ``displacement`` (B, N, 3): start minus ground-state positions in normalised
    units, the start rigidly aligned onto the ground state, centred and masked
    (zero for molecules without a pair); ``paired`` (B,) bool: the molecules
    corrupted this way; ``steps``: the range of start steps n of the relaxations
    whose paths they are put on.
    """

    displacement: torch.Tensor
    paired: torch.Tensor
    steps: tuple[int, int] = (20, 50)
