"""Training EDM on ground-state geometries, with the original's defaults.

Defaults (the EDM code's QM9 training): l2 loss, t uniform over {0..T}, AdamW (lr 1e-4,
amsgrad, weight decay 1e-12), EMA of the weights with beta 0.9999 after every
step, gradient clipping at 1.5 x mean + 2 x std of the last 50 recorded gradient
norms (the queue starts with 3000; a clipped step records the clip value).

Our extensions, each off by default except bucketing:

- ``t_max < 1`` trains only on the low-noise part of the schedule (t <= t_max),
  the part a relaxation from n <= t_max T uses.
- ``bucket`` (on): batches hold molecules of similar size, so a padded batch
  wastes little work on padding (about 1.8x faster per epoch on QM9 on a CPU).
  Every molecule is still seen once per epoch and the loss is the same
  per-molecule mean, so the gradient's expectation is unchanged.
- ``lr_final < lr``: the learning rate decays along a cosine from ``lr`` to
  ``lr_final`` over ``epochs`` (the original keeps it constant).

Validation reports the l2 loss, its position part, and the error of the implied
clean structure ``x0_hat = (z_t - sigma_t eps_hat) / alpha_t`` in Angstrom at
the steps a relaxation starts from: the quantity that decides how close to the
ground state a relaxation can end.

A run folder holds ``train_state.pt`` (everything needed to resume: weights,
EMA, optimizer, clipping queue, counters, RNG states; written atomically every
epoch) and ``epoch_XXXX/`` checkpoints in the own format (EMA weights), each with
its metadata (epochs, steps, wall time, validation loss, data).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edm_core.checkpoint import load_checkpoint, save_checkpoint
from edm_core.diffusion import Noise, StartCorruption
from edm_core.geometry import aligned_onto
from edm_core.model import EDMConfig, EDMDenoiser
from edm_core.packing import packed
from edm_core.transfer import with_atom_decoder


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (the original's defaults)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-12
    ema_decay: float = 0.9999
    clip_grad: bool = True
    t_max: float = 1.0
    checkpoint_every: int = 1
    seed: int = 0
    device: str = "cpu"
    n_valid: int = 500
    bucket: bool = True
    lr_final: float | None = None
    #: Fraction of the training molecules with a start structure whose corruption is
    #: that start (:class:`~edm_core.diffusion.StartCorruption`), not Gaussian noise alone.
    start_fraction: float = 0.0
    #: Start steps n such a corruption stands for (the relaxation's n).
    start_steps: tuple[int, int] = (20, 50)
    #: Start structures further than this from their ground state (aligned RMSD,
    #: Angstrom) are not used: they relax to another conformer, which no step of a
    #: few hundredths of an Angstrom per coordinate can reach.
    max_start_rmsd: float = 0.25
    #: Probabilities that a training sample holds 1, 2, ... molecules side by side
    #: (:mod:`edm_core.packing`: size augmentation); empty = one molecule per sample.
    pack: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.t_max <= 1:
            raise ValueError(f"t_max must be in (0, 1], got {self.t_max}")
        if self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_final is not None and not 0 <= self.lr_final <= self.lr:
            raise ValueError(f"lr_final must be in [0, lr], got {self.lr_final}")
        if not 0 <= self.start_fraction <= 1:
            raise ValueError(f"start_fraction must be in [0, 1], got {self.start_fraction}")
        if not self.max_start_rmsd > 0:
            raise ValueError(f"max_start_rmsd must be > 0 A, got {self.max_start_rmsd}")
        if not 0 <= self.start_steps[0] <= self.start_steps[1]:
            raise ValueError(f"start_steps must be two steps lo <= hi, got {self.start_steps}")
        if self.pack and (min(self.pack) < 0 or abs(sum(self.pack) - 1) > 1e-6):
            raise ValueError(f"pack must be probabilities of 1, 2, ... molecules per sample summing to 1, "
                             f"got {self.pack}")
        if len(self.pack) > 1 and self.start_fraction > 0:
            raise ValueError("pack and start_fraction cannot be combined (a start belongs to one molecule)")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (0-based) ``epoch``: constant, or cosine to ``lr_final``."""
        if self.lr_final is None or self.epochs == 1:
            return self.lr
        frac = epoch / (self.epochs - 1)
        # a Python float: the optimizer state must stay loadable with weights_only=True
        return float(self.lr_final + 0.5 * (self.lr - self.lr_final) * (1 + np.cos(np.pi * frac)))


class GradientClipper:
    """EDM's adaptive gradient clipping (a queue of the last 50 norms)."""

    def __init__(self, maxlen: int = 50, initial: float = 3000.0) -> None:
        self.queue: deque[float] = deque([initial], maxlen=maxlen)

    @property
    def max_norm(self) -> float:
        q = np.array(self.queue)
        return float(1.5 * q.mean() + 2 * q.std())

    def __call__(self, parameters: Any) -> float:
        max_norm = self.max_norm
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm=max_norm, norm_type=2.0))
        self.queue.append(min(norm, max_norm))
        return norm


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """ema <- beta ema + (1 - beta) model, parameter by parameter."""
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(beta).add_(pm.detach(), alpha=1 - beta)


def batches(sizes: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: bool = False,
            batches_per_bucket: int = 32) -> list[np.ndarray]:
    """A shuffled partition of ``range(len(sizes))`` into batches.

    With ``bucket``, each run of ``batches_per_bucket`` batches of the shuffled
    order is sorted by molecule size before it is cut, and the batches are then
    shuffled: batches hold similar sizes (little padding) yet stay random.
    """
    order = rng.permutation(len(sizes))
    if bucket:
        span = batch_size * batches_per_bucket
        order = np.concatenate([chunk[np.argsort(sizes[chunk], kind="stable")]
                                for chunk in np.split(order, np.arange(span, len(order), span))])
    cut = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket:
        cut = [cut[i] for i in rng.permutation(len(cut))]
    return cut


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{os.cpu_count()}-core CPU"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Trains an :class:`EDMDenoiser` on (numbers, positions) molecules; resumable.

    Parameters
    ----------
    config : EDMConfig
        The model (ignored when resuming: the saved one is used).
    settings : TrainSettings
    train, valid : sequences of (numbers, positions)
        Ground-state molecules (Angstrom).
    out_dir : Path
        The run folder; an existing ``train_state.pt`` there is resumed.
    data_description : dict
        Recorded in every checkpoint's metadata (dataset, split, content hash).
    train_starts, valid_starts : sequences of (n_atoms, 3) arrays or None, optional
        A start structure of each molecule (the same atoms in the same order, e.g.
        its MMFF94 geometry), used as a corruption of ``settings.start_fraction``
        of the molecules and scored in validation (``start_x0_rmsd_n<k>``).
    init : path, optional
        A checkpoint whose weights (and configuration) a new run starts from
        (fine-tuning); ignored when resuming.
    """

    def __init__(self, config: EDMConfig, settings: TrainSettings, train: Sequence[tuple[np.ndarray, np.ndarray]],
                 valid: Sequence[tuple[np.ndarray, np.ndarray]], out_dir: Path,
                 data_description: dict[str, Any] | None = None,
                 train_starts: Sequence[np.ndarray | None] | None = None,
                 valid_starts: Sequence[np.ndarray | None] | None = None, init: Path | None = None) -> None:
        self.settings = settings
        self.train_set, self.valid_set = list(train), list(valid)[: settings.n_valid]
        self.train_shift = self._displacements(self.train_set, train_starts)
        self.valid_shift = self._displacements(self.valid_set, valid_starts)
        self.sizes = np.array([len(numbers) for numbers, _ in self.train_set])
        self.out_dir = Path(out_dir)
        self.data_description = data_description or {}
        self.device = torch.device(settings.device)
        state_path = self.out_dir / "train_state.pt"
        if state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            config = EDMConfig.from_json(json.loads(state["config"]))
        else:
            state = None
        torch.manual_seed(settings.seed)
        if init is not None and state is None:
            self.model = self._initial_model(Path(init), config)
        else:
            self.model = EDMDenoiser(config).to(self.device)
        self.ema = copy.deepcopy(self.model)
        self.optimizer = torch.optim.AdamW(self.model.model.parameters(), lr=settings.lr, amsgrad=True,
                                           weight_decay=settings.weight_decay)
        self.clipper = GradientClipper()
        self.epoch, self.step, self.wall_s = 0, 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.rng = np.random.default_rng(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        if state is not None:
            self._restore(state)

    def _initial_model(self, init: Path, config: EDMConfig) -> EDMDenoiser:
        """The checkpoint ``init``, moved to ``config``'s atom decoder when the two differ
        (elements new to it start from a donor; recorded in the data description)."""
        source = load_checkpoint(init)
        start = {"checkpoint": str(init)}
        same = (tuple(source.config.atom_decoder) == tuple(config.atom_decoder)
                and source.config.include_charges == config.include_charges)
        if not same:
            source, donors = with_atom_decoder(source, config)
            start["atom_decoder"] = list(config.atom_decoder)
            start["new_elements_from"] = donors
        self.data_description = {**self.data_description, "init": start}
        return source.to(self.device)

    # -- state --------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "config": json.dumps(self.model.config.to_json()),
            "settings": json.dumps(dataclasses.asdict(self.settings)),
            "model": self.model.model.state_dict(), "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "clip_queue": list(self.clipper.queue),
            "epoch": self.epoch, "step": self.step, "wall_s": self.wall_s, "history": json.dumps(self.history),
            "numpy_rng": json.dumps(self.rng.bit_generator.state), "torch_rng": self.generator.get_state(),
            "data": json.dumps(self.data_description),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.clipper.queue = deque(state["clip_queue"], maxlen=50)
        self.epoch, self.step, self.wall_s = int(state["epoch"]), int(state["step"]), float(state["wall_s"])
        self.history = json.loads(state["history"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.generator.set_state(state["torch_rng"])
        started_from = json.loads(state.get("data", "{}")).get("init")
        if started_from is not None:  # the checkpoint a fine-tuning began with stays on its cards
            self.data_description = {**self.data_description, "init": started_from}

    # -- training --------------------------------------------------------------------------------
    def _displacements(self, data: list, starts: Sequence[np.ndarray | None] | None) -> list[np.ndarray | None]:
        """Per molecule: its start aligned onto it minus its positions (Angstrom), or
        None (no start, or one further than ``settings.max_start_rmsd``)."""
        if starts is None:
            return [None] * len(data)
        if len(starts) < len(data):
            raise ValueError(f"{len(starts)} start structures for {len(data)} molecules")
        out: list[np.ndarray | None] = []
        for (numbers, positions), start in zip(data, starts):
            if start is None:
                out.append(None)
                continue
            if np.shape(start) != np.shape(positions):
                raise ValueError(f"a start structure of shape {np.shape(start)} for {len(numbers)} atoms")
            d = aligned_onto(start, positions) - np.asarray(positions, dtype=float)
            out.append(d if np.sqrt((d ** 2).sum(axis=1).mean()) <= self.settings.max_start_rmsd else None)
        return out

    def _z(self, model: EDMDenoiser, idx: np.ndarray, data: list) -> tuple[torch.Tensor, torch.Tensor]:
        x, one_hot, charges, mask = model.pack([data[i] for i in idx], self.device)
        return model.normalize(x, one_hot, charges, mask), mask

    def _shift(self, model: EDMDenoiser, idx: np.ndarray, shifts: list, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) displacements of the molecules ``idx`` in normalised units (zero without one)."""
        out = torch.zeros((len(idx), mask.shape[1], 3), dtype=mask.dtype, device=mask.device)
        for row, i in enumerate(idx):
            if shifts[i] is not None:
                out[row, : len(shifts[i])] = torch.as_tensor(shifts[i], dtype=mask.dtype)
        return out / model.model.norm_values[0]

    def _starts(self, idx: np.ndarray, mask: torch.Tensor) -> StartCorruption | None:
        """The start corruption of a training batch: each molecule with a displacement
        is corrupted by it with probability ``settings.start_fraction``."""
        if self.settings.start_fraction == 0:
            return None
        has = np.array([self.train_shift[i] is not None for i in idx])
        paired = has & (self.rng.random(len(idx)) < self.settings.start_fraction)
        return StartCorruption(self._shift(self.model, idx, self.train_shift, mask),
                               torch.as_tensor(paired, device=mask.device), tuple(self.settings.start_steps))

    def _samples(self, idx: np.ndarray) -> tuple[list, np.ndarray]:
        """The training samples of a batch and their indices into it: the molecules
        ``idx``, or with ``settings.pack`` groups of k of them side by side, k drawn
        once per batch. The batch's molecules are of similar size (bucketed), so its
        samples are too (little padding), and every molecule is still seen once per epoch."""
        if len(self.settings.pack) <= 1:
            return self.train_set, idx
        k = 1 + int(self.rng.choice(len(self.settings.pack), p=self.settings.pack))
        order = self.rng.permutation(idx)
        samples = [packed([self.train_set[i] for i in order[s:s + k]], self.rng) for s in range(0, len(order), k)]
        return samples, np.arange(len(samples))

    def train_step(self, idx: np.ndarray) -> float:
        """One optimisation step on the molecules ``idx``; returns the loss."""
        self.model.train()
        data, rows = self._samples(idx)
        z, mask = self._z(self.model, rows, data)
        loss = self.model.model.l2_loss(z, mask, Noise(self.generator), t_max=self.settings.t_max,
                                        starts=self._starts(idx, mask))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.clip_grad:
            self.clipper(self.model.model.parameters())
        self.optimizer.step()
        ema_update(self.ema.model, self.model.model, self.settings.ema_decay)
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validation_losses(self, model: EDMDenoiser | None = None, seed: int = 12345,
                          x0_steps: Sequence[int] = (10, 30, 50)) -> dict[str, float]:
        """Validation metrics with fixed noise (comparable across epochs).

        ``valid_loss``: the mean l2 loss. ``valid_position_mse``: its position
        part, the mean squared error per position coordinate of real atoms (1 = no
        better than predicting zero noise). ``x0_rmse_n<k>``: at step k, the RMS
        error per coordinate (Angstrom) of the implied clean positions; predicting
        zero noise gives sigma_k / alpha_k (0.014, 0.042, 0.071 A at k = 10, 30, 50).
        With start structures: ``start_rmsd``, their mean RMSD to the ground state
        (Angstrom, aligned), and ``start_x0_rmsd_n<k>``, that of the clean structure
        implied by one network call on the start taken as z_k (k in ``start_steps``).
        """
        model = model or self.ema
        model.eval()
        diffusion = model.model
        steps = [k for k in x0_steps if k <= round(self.settings.t_max * diffusion.T)]
        metrics = {"valid_loss": float("nan"), "valid_position_mse": float("nan"),
                   **{f"x0_rmse_n{k}": float("nan") for k in steps}}
        if not self.valid_set:
            return metrics
        noise = Noise.from_seed(seed)
        losses, weights, pos_sq, n_pos = [], [], 0.0, 0
        x0_sq = dict.fromkeys(steps, 0.0)
        start_steps = sorted(set(self.settings.start_steps))
        start_rmsd: dict[int, list[float]] = {k: [] for k in [0, *start_steps]}
        for start in range(0, len(self.valid_set), self.settings.batch_size):
            idx = np.arange(start, min(start + self.settings.batch_size, len(self.valid_set)))
            z, mask = self._z(model, idx, self.valid_set)
            has = torch.as_tensor([self.valid_shift[i] is not None for i in idx])
            if has.any():
                shifted = z.clone()
                shifted[..., :3] += self._shift(model, idx, self.valid_shift, mask)
                for k in [0, *start_steps]:
                    x0_hat = shifted
                    if k > 0:
                        t = torch.full((len(idx), 1), k / diffusion.T, dtype=z.dtype)
                        gamma = diffusion.gamma(t)[:, :, None]
                        eps_hat = diffusion.predict_noise(shifted, t, mask)
                        x0_hat = (shifted - diffusion.sigma(gamma) * eps_hat) / diffusion.alpha(gamma)
                    sq = ((((x0_hat - z)[..., :3] * diffusion.norm_values[0]) ** 2) * mask).sum(dim=(1, 2))
                    start_rmsd[k] += torch.sqrt(sq / mask.sum(dim=(1, 2)))[has].tolist()
            eps, eps_hat = diffusion.denoising_pair(z, mask, noise, t_max=self.settings.t_max)
            losses.append(float(0.5 * diffusion.molecule_errors(eps, eps_hat, mask).mean()))
            weights.append(len(idx))
            pos_sq += float((((eps - eps_hat)[..., :3] ** 2) * mask).sum())
            n_pos += int(mask.sum()) * 3
            for k in steps:
                t = torch.full((len(idx), 1), k / diffusion.T, dtype=z.dtype)
                z_t, _ = diffusion.noised(z, t, mask, noise)
                gamma = diffusion.gamma(t)[:, :, None]
                x0_hat = (z_t - diffusion.sigma(gamma) * diffusion.predict_noise(z_t, t, mask)) / diffusion.alpha(gamma)
                x0_sq[k] += float((((x0_hat - z)[..., :3] * diffusion.norm_values[0]) ** 2 * mask).sum())
        metrics.update(valid_loss=float(np.average(losses, weights=weights)), valid_position_mse=pos_sq / n_pos)
        metrics.update({f"x0_rmse_n{k}": round(float(np.sqrt(v / n_pos)), 5) for k, v in x0_sq.items()})
        if start_rmsd[0]:
            metrics.update({("start_rmsd" if k == 0 else f"start_x0_rmsd_n{k}"): round(float(np.mean(v)), 5)
                            for k, v in start_rmsd.items()})
        return metrics

    def validation_loss(self, model: EDMDenoiser | None = None, seed: int = 12345) -> float:
        """The validation l2 loss (see :meth:`validation_losses`)."""
        return self.validation_losses(model, seed)["valid_loss"]

    def fit(self, progress: bool = True, on_epoch: Callable[[dict[str, Any]], None] | None = None,
            stop_after_steps: int | None = None) -> list[dict[str, Any]]:
        """Train until ``settings.epochs`` (resuming where a previous run stopped)."""
        from tqdm import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        while self.epoch < self.settings.epochs:
            t0 = time.perf_counter()
            losses = []
            lr = self.settings.lr_at(self.epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            bar = tqdm(batches(self.sizes, self.settings.batch_size, self.rng, self.settings.bucket),
                       desc=f"epoch {self.epoch + 1}/{self.settings.epochs}", disable=not progress, leave=False)
            for idx in bar:
                losses.append(self.train_step(idx))
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
                if stop_after_steps is not None and self.step >= stop_after_steps:
                    return self.history
            self.epoch += 1
            self.wall_s += time.perf_counter() - t0
            record = {"epoch": self.epoch, "step": self.step, "lr": lr, "train_loss": float(np.mean(losses)),
                      **self.validation_losses(), "wall_s": round(self.wall_s, 1)}
            self.history.append(record)
            if self.epoch % self.settings.checkpoint_every == 0 or self.epoch == self.settings.epochs:
                self.save_epoch_checkpoint(record)
            _atomic_torch_save(self._state(), self.out_dir / "train_state.pt")
            if on_epoch is not None:
                on_epoch(record)
        return self.history

    def save_epoch_checkpoint(self, record: dict[str, Any]) -> Path:
        """The EMA weights after this epoch, in the own format, with a model card's facts."""
        metadata = {
            **record, "n_parameters": self.model.n_parameters, "train_settings": dataclasses.asdict(self.settings),
            "data": {**self.data_description, "n_train": len(self.train_set), "n_valid": len(self.valid_set)},
            "weights": "EMA", "torch": torch.__version__, "hardware": _hardware(self.device),
        }
        return save_checkpoint(self.ema, self.out_dir / f"epoch_{self.epoch:04d}", metadata)
