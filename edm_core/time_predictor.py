"""A diffusion time-step predictor: how noisy does a structure look?

MoreRed (Kahouli et al. 2024) starts a relaxation at the step that a network
reads from the structure itself, instead of an n fixed by hand. This predictor
is a small invariant network (SchNet-like continuous-filter convolutions on
interatomic distances within a 5 A cutoff, an element embedding, a mean over
atoms) that regresses t in [0, ``t_range``] from ground states noised to t:
``x_t = alpha_t x + sigma_t eps`` with the denoiser's own schedule. Invariant by
construction (it sees distances only), so it needs no equivariance of its own.

Contract (also of an ONNX predictor: the ``time`` signature of
:mod:`edm_core.onnx_backend`)::

    positions  float32 (batch, atoms, 3)  Angstrom, centred
    numbers    int64   (batch, atoms)     atomic numbers (0 on padding)
    node_mask  float32 (batch, atoms, 1)  1 for real atoms
    ->  t      float32 (batch, 1)         in [0, 1]
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edm_core.dynamics import edge_mask_from, remove_mean

#: Largest atomic number the element embedding holds.
MAX_Z = 100


@dataclass(frozen=True)
class PredictorConfig:
    """The predictor's size and range.

    t_range : the largest t it was trained on (its output is t_range * sigmoid)
    """

    hidden: int = 64
    n_layers: int = 3
    n_rbf: int = 64
    cutoff: float = 5.0
    t_range: float = 0.1


class TimePredictor(nn.Module):
    """t_hat(positions, numbers): invariant, masked, batched.

    Parameters
    ----------
    config : PredictorConfig
    """

    def __init__(self, config: PredictorConfig = PredictorConfig()) -> None:
        super().__init__()
        self.config = config
        f = config.hidden
        self.embed = nn.Embedding(MAX_Z + 1, f)
        self.register_buffer("centres", torch.linspace(0.5, config.cutoff, config.n_rbf))
        self.width = float((config.cutoff - 0.5) / (config.n_rbf - 1))
        self.filters = nn.ModuleList(nn.Sequential(nn.Linear(config.n_rbf, f), nn.SiLU(), nn.Linear(f, f))
                                     for _ in range(config.n_layers))
        self.inputs = nn.ModuleList(nn.Linear(f, f, bias=False) for _ in range(config.n_layers))
        self.updates = nn.ModuleList(nn.Sequential(nn.Linear(f, f), nn.SiLU(), nn.Linear(f, f))
                                     for _ in range(config.n_layers))
        self.readout = nn.Sequential(nn.Linear(f, f), nn.SiLU(), nn.Linear(f, 1))

    def forward(self, positions: torch.Tensor, numbers: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """(B, 1) predicted t."""
        mask = node_mask.reshape(*numbers.shape, 1).to(positions.dtype)
        diff = positions[:, :, None, :] - positions[:, None, :, :]
        d = torch.sqrt((diff**2).sum(-1, keepdim=True) + 1e-9)  # (B, N, N, 1)
        envelope = 0.5 * (torch.cos(torch.pi * d / self.config.cutoff) + 1) * (d < self.config.cutoff)
        edges = edge_mask_from(mask) * envelope
        rbf = torch.exp(-0.5 * ((d - self.centres) / self.width) ** 2)  # (B, N, N, n_rbf)
        h = self.embed(numbers.long().clamp(0, MAX_Z)) * mask
        for filt, lin, update in zip(self.filters, self.inputs, self.updates):
            messages = (filt(rbf) * edges * lin(h)[:, None, :, :]).sum(dim=2)
            h = (h + update(messages)) * mask
        per_atom = self.readout(h) * mask
        mean = per_atom.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return self.config.t_range * torch.sigmoid(mean)


def pack_molecules(molecules: Sequence[tuple[np.ndarray, np.ndarray]], dtype: torch.dtype = torch.float32
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ragged (numbers, positions) -> padded centred positions, numbers, node_mask."""
    n_max = max(len(n) for n, _ in molecules)
    b = len(molecules)
    positions = torch.zeros((b, n_max, 3), dtype=dtype)
    numbers = torch.zeros((b, n_max), dtype=torch.long)
    mask = torch.zeros((b, n_max, 1), dtype=dtype)
    for i, (z, x) in enumerate(molecules):
        positions[i, :len(z)] = torch.as_tensor(np.asarray(x), dtype=dtype)
        numbers[i, :len(z)] = torch.as_tensor(np.asarray(z), dtype=torch.long)
        mask[i, :len(z)] = 1
    return remove_mean(positions, mask), numbers, mask


def noised_batch(positions: torch.Tensor, mask: torch.Tensor, alpha2: np.ndarray, max_step: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions noised to a step uniform in {0..max_step} per molecule, and the t = step / T."""
    timesteps = len(alpha2) - 1
    steps = torch.randint(0, max_step + 1, (positions.shape[0],), generator=generator)
    a2 = torch.as_tensor(alpha2, dtype=positions.dtype)[steps][:, None, None]
    eps = remove_mean(torch.randn(positions.shape, generator=generator, dtype=positions.dtype) * mask, mask)
    return torch.sqrt(a2) * positions + torch.sqrt(1 - a2) * eps, (steps.to(positions.dtype) / timesteps)[:, None]


@dataclass(frozen=True)
class PredictorTraining:
    """Settings of :func:`train_time_predictor`."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


def train_time_predictor(train: Sequence[tuple[np.ndarray, np.ndarray]],
                         valid: Sequence[tuple[np.ndarray, np.ndarray]], alpha2: np.ndarray,
                         config: PredictorConfig = PredictorConfig(),
                         settings: PredictorTraining = PredictorTraining(), progress: bool = True
                         ) -> tuple[TimePredictor, dict[str, Any]]:
    """Train a predictor on ground states noised with the schedule ``alpha2``
    (the T + 1 table of :mod:`edm_core.schedule`); returns it with its record
    (settings, wall time, and the validation error in steps, fixed noise)."""
    from tqdm import tqdm

    from edm_core.train import batches

    timesteps = len(alpha2) - 1
    max_step = int(round(config.t_range * timesteps))
    torch.manual_seed(settings.seed)
    model = TimePredictor(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = np.array([len(n) for n, _ in train])
    n_batches = -(-len(train) // settings.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs * n_batches)
    t0 = time.perf_counter()
    history = []
    for epoch in range(settings.epochs):
        losses = []
        for idx in tqdm(batches(sizes, settings.batch_size, rng, bucket=True), desc=f"time predictor epoch {epoch + 1}",
                        disable=not progress, leave=False):
            positions, numbers, mask = pack_molecules([train[i] for i in idx])
            x_t, t = noised_batch(positions, mask, alpha2, max_step, generator)
            loss = ((model(x_t, numbers, mask) - t) ** 2 / config.t_range**2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        **step_errors(model, valid, alpha2, max_step)})
    record = {"config": asdict(config), "training": asdict(settings), "wall_s": round(time.perf_counter() - t0, 1),
              "n_train": len(train), "n_valid": len(valid), "history": history, **history[-1]}
    return model.eval(), record


@torch.no_grad()
def step_errors(predictor: Any, molecules: Sequence[tuple[np.ndarray, np.ndarray]], alpha2: np.ndarray,
                max_step: int, seed: int = 12345, batch_size: int = 128) -> dict[str, float]:
    """Predicted against true start step on ``molecules`` noised to a uniform step
    in {0..max_step} (fixed noise): mean absolute error, its median, and the bias
    (mean of predicted - true), in steps."""
    timesteps = len(alpha2) - 1
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for start in range(0, len(molecules), batch_size):
        positions, numbers, mask = pack_molecules(molecules[start:start + batch_size])
        x_t, t = noised_batch(positions, mask, alpha2, max_step, generator)
        predicted = torch.as_tensor(predictor(x_t, numbers, mask)).reshape(-1, 1)
        errors.append(((predicted - t) * timesteps).reshape(-1).numpy())
    e = np.concatenate(errors) if errors else np.zeros(0)
    return {"valid_step_mae": round(float(np.abs(e).mean()), 3), "valid_step_median_ae": round(float(
        np.median(np.abs(e))), 3), "valid_step_bias": round(float(e.mean()), 3)}


def export_onnx(predictor: TimePredictor, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Export with dynamic batch and atom axes; ``metadata`` goes in as JSON."""
    import onnx

    from edm_core.onnx_backend import OPSET, SIGNATURES

    names, output = [n for n, _, _ in SIGNATURES["time"].inputs], SIGNATURES["time"].output[0]
    positions = torch.tensor([[[0.0, 0, 0], [1.1, 0, 0], [-1.1, 0, 0]]]).repeat(2, 1, 1)
    numbers = torch.tensor([[6, 1, 1]]).repeat(2, 1)
    mask = torch.ones((2, 3, 1))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on constants; the axes stay dynamic
        torch.onnx.export(predictor.float().eval(), (positions, numbers, mask), buffer, dynamo=False,
                          opset_version=OPSET, input_names=names, output_names=[output],
                          dynamic_axes={**{n: {0: "batch", 1: "atoms"} for n in names}, output: {0: "batch"}})
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "time_predictor", json.dumps(metadata or {"config": asdict(predictor.config)})
    Path(path).write_bytes(model.SerializeToString())
