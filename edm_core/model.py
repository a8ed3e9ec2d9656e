"""The user-facing EDM denoiser: configuration, batching of molecules, and the
operations the benchmark needs (generate, relax, repeat_step).

:class:`EDMConfig` holds the options of the original ``args.pickle`` that
determine the network; :class:`EDMDenoiser` wraps :class:`EnVariationalDiffusion`
(``self.model``, whose state dict is the original's) and converts between
molecules (atomic numbers + Angstrom positions, ragged) and padded tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from edm_core.dataset_info import DATASET_INFO, atomic_numbers_of
from edm_core.diffusion import EnVariationalDiffusion, NetworkOutputError, Noise
from edm_core.dynamics import EGNNDynamics, remove_mean
from edm_core.geometry import diameter, geometry_problem
from edm_core.protocol import AUTO_MODES, Capabilities
from edm_core.schedule import alpha2_table


class ModelInputError(ValueError):
    """A molecule the model cannot take (unknown element, too many atoms, NaN)."""


#: Largest T a config may ask for (EDM uses 1000; the schedule is tabulated once).
MAX_DIFFUSION_STEPS = 100_000


@dataclass(frozen=True)
class EDMConfig:
    """The options that define an EDM model (names as in the original ``args``)."""

    dataset: str = "qm9"
    atom_decoder: tuple[str, ...] = DATASET_INFO["qm9"]["atom_decoder"]
    include_charges: bool = True
    nf: int = 256
    n_layers: int = 9
    inv_sublayers: int = 1
    attention: bool = True
    tanh: bool = True
    norm_constant: float = 1.0
    sin_embedding: bool = False
    normalization_factor: float = 1.0
    aggregation_method: str = "sum"
    coords_range: float = 15.0
    condition_time: bool = True
    diffusion_steps: int = 1000
    diffusion_noise_schedule: str = "polynomial_2"
    diffusion_noise_precision: float = 1e-5
    #: alpha^2 per step (T + 1 values) of a ``"tabulated"`` schedule (our extension)
    diffusion_alpha2: tuple[float, ...] | None = None
    #: Diffuse positions only; atom types and charges are given, never noised (our
    #: extension: the MoreRed kind of denoiser, Kahouli et al. 2024)
    position_only: bool = False
    normalize_factors: tuple[float, float, float] = (1.0, 4.0, 10.0)
    max_n_nodes: int = DATASET_INFO["qm9"]["max_n_nodes"]
    #: The widest molecule (largest interatomic distance, Angstrom) the model takes,
    #: or None for no limit (our extension). EDM's EGNN takes raw squared distances
    #: as edge inputs, so a model trained only on smaller molecules fails on wider
    #: ones; a new run sets it to its widest training molecule.
    max_diameter: float | None = None
    n_nodes_histogram: dict[int, int] = field(default_factory=lambda: dict(DATASET_INFO["qm9"]["n_nodes_histogram"]))

    def __post_init__(self) -> None:
        if self.sin_embedding:
            raise ValueError("sin_embedding=True is not supported (no published EDM model uses it)")
        if self.aggregation_method != "sum":
            raise ValueError(f"aggregation_method {self.aggregation_method!r} is not supported (EDM uses 'sum')")
        if self.max_diameter is not None and not (math.isfinite(self.max_diameter) and self.max_diameter > 0):
            raise ValueError(f"max_diameter must be a finite number > 0 (Angstrom) or None, got {self.max_diameter}")
        if self.nf < 1 or self.n_layers < 1 or self.inv_sublayers < 1:
            raise ValueError("nf, n_layers and inv_sublayers must be >= 1")
        if not 1 <= self.diffusion_steps <= MAX_DIFFUSION_STEPS:  # the noise table has T + 1 entries
            raise ValueError(f"diffusion_steps must be in 1..{MAX_DIFFUSION_STEPS}, got {self.diffusion_steps}")
        alpha2_table(self.diffusion_steps, self.diffusion_noise_precision, self.diffusion_noise_schedule,
                     self.diffusion_alpha2)  # a usable schedule, or ValueError now rather than at build time

    @property
    def atomic_numbers(self) -> tuple[int, ...]:
        return atomic_numbers_of(self.atom_decoder)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["n_nodes_histogram"] = {str(k): v for k, v in self.n_nodes_histogram.items()}
        return d

    @classmethod
    def for_dataset(cls, dataset: str, **options: Any) -> "EDMConfig":
        """A config with EDM's facts about ``dataset`` ("qm9" or "geom": atom decoder,
        largest molecule, size histogram; charges as the original: QM9 with, GEOM
        without), any of them overridden by ``options``."""
        if dataset not in DATASET_INFO:
            raise ValueError(f"unknown EDM dataset {dataset!r}; choose from {sorted(DATASET_INFO)}")
        info = DATASET_INFO[dataset]
        facts = {"dataset": dataset, "atom_decoder": tuple(info["atom_decoder"]), "include_charges": dataset == "qm9",
                 "max_n_nodes": int(info["max_n_nodes"]), "n_nodes_histogram": dict(info["n_nodes_histogram"])}
        return cls(**{**facts, **options})

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EDMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown EDM config keys {unknown}")
        d = dict(d)
        for key in ("atom_decoder", "normalize_factors", "diffusion_alpha2"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if "n_nodes_histogram" in d:
            d["n_nodes_histogram"] = {int(k): int(v) for k, v in d["n_nodes_histogram"].items()}
        return cls(**d)


def build_model(config: EDMConfig) -> EnVariationalDiffusion:
    """The diffusion model (untrained) for ``config``."""
    k = len(config.atom_decoder)
    dynamics = EGNNDynamics(
        in_node_nf=k + int(config.include_charges), condition_time=config.condition_time, nf=config.nf,
        n_layers=config.n_layers, inv_sublayers=config.inv_sublayers, attention=config.attention,
        tanh=config.tanh, norm_constant=config.norm_constant, normalization_factor=config.normalization_factor,
        coords_range=config.coords_range,
    )
    return EnVariationalDiffusion(dynamics, k, config.include_charges, config.diffusion_steps,
                                  config.diffusion_noise_precision, config.diffusion_noise_schedule,
                                  config.normalize_factors, config.diffusion_alpha2, config.position_only)


@dataclass
class RelaxOutput:
    """What :meth:`EDMDenoiser.relax` returns, one entry per input molecule.

    positions : list of (n_atoms, 3) arrays, Angstrom, centred as the inputs
    paths : list of (n_steps + 2, n_atoms, 3) arrays, if requested: the input, the
        latent positions z_{n-1} .. z_0, and the final decoded positions
    decoded_numbers : list of (n_atoms,) arrays, the model's own decoded elements
    n_type_disagreements : (n_molecules,) int array, atoms whose decoded element
        differs from the input's
    start_steps : (n_molecules,) int array, the step each molecule started from
        (the time-step predictor's first reading for ``auto``)
    network_evaluations : (n_molecules,) int array, the network's evaluations
        per molecule (reverse steps and the final decode)
    """

    positions: list[np.ndarray]
    paths: list[np.ndarray] | None
    decoded_numbers: list[np.ndarray]
    n_type_disagreements: np.ndarray
    start_steps: np.ndarray | None = None
    network_evaluations: np.ndarray | None = None


def as_numbers_positions(molecule: Any) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, positions) of an ASE Atoms, a ``(numbers, positions)`` pair, or
    an object with ``numbers`` and ``positions`` attributes."""
    if hasattr(molecule, "get_atomic_numbers"):
        return np.asarray(molecule.get_atomic_numbers()), np.asarray(molecule.get_positions(), dtype=float)
    if isinstance(molecule, tuple) and len(molecule) == 2:
        return np.asarray(molecule[0]), np.asarray(molecule[1], dtype=float)
    return np.asarray(molecule.numbers), np.asarray(molecule.positions, dtype=float)


def checked_output(out: Any, shape: tuple[int, ...], like: torch.Tensor, description: str, what: str
                   ) -> torch.Tensor:
    """An outside network's output as a tensor like ``like``, or :class:`NetworkOutputError`
    when it is not a floating array of ``shape`` (``what`` says what was expected)."""
    if not isinstance(out, torch.Tensor):
        try:
            out = torch.as_tensor(np.asarray(out))
        except (TypeError, ValueError) as exc:
            raise NetworkOutputError(f"{description}: output is not an array ({type(out).__name__})") from exc
    if tuple(out.shape) != tuple(shape):
        raise NetworkOutputError(f"{description}: output has shape {tuple(out.shape)}, expected {tuple(shape)} "
                                 f"({what})")
    if not out.is_floating_point():
        raise NetworkOutputError(f"{description}: output has dtype {out.dtype}, expected a float")
    return out.to(like.dtype).to(like.device)


class CheckedNetwork:
    """An outside network ``network(z, t, node_mask)`` checked at the boundary: its
    output must be a floating tensor of the input's shape (a violation raises
    :class:`NetworkOutputError`); finiteness is checked for every backend by the sampler."""

    def __init__(self, network: Any, description: str) -> None:
        self.network, self.description = network, description

    def __call__(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        return checked_output(self.network(z, t, node_mask), z.shape, z, self.description,
                              "the noise on z: batch, atoms, 3 + K + c")


class PositionOnlyNetwork:
    """A position-only network ``network(positions, numbers, node_mask, t) -> eps``
    (positions in Angstrom, centred; atomic numbers, 0 on padding) seen as an EDM
    network on z: the atomic numbers are read from z's one-hot block, and the
    feature block of the output is zero (a position-only model never denoises types).
    """

    def __init__(self, network: Any, atomic_numbers: Sequence[int], description: str) -> None:
        self.network, self.description = network, description
        self.decoder = torch.as_tensor(list(atomic_numbers), dtype=torch.long)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        k = len(self.decoder)
        numbers = self.decoder.to(z.device)[torch.argmax(z[..., 3:3 + k], dim=-1)] * node_mask[..., 0].long()
        b, n, _ = z.shape
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).reshape(-1, 1).expand(b, 1)
        eps = checked_output(self.network(z[..., :3], numbers, node_mask, t), (b, n, 3), z, self.description,
                             "the noise on positions: batch, atoms, 3")
        return torch.cat([eps, torch.zeros_like(z[..., 3:])], dim=-1)


class _NoTorchNetwork(nn.Module):
    """Stands in for the EGNN of a denoiser that runs through an outside network."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def forward(self, *args: Any) -> torch.Tensor:
        raise RuntimeError(f"this denoiser runs through {self.description} and has no torch network: "
                           "call it under torch.no_grad() (sampling) and do not train it")


class EDMDenoiser(nn.Module):
    """An EDM model with molecule-level operations.

    Parameters
    ----------
    config : EDMConfig
    model : EnVariationalDiffusion, optional
        Built from ``config`` when omitted.
    """

    def __init__(self, config: EDMConfig, model: EnVariationalDiffusion | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = model or build_model(config)
        self._type_index = {z: i for i, z in enumerate(config.atomic_numbers)}
        self.backend = "torch"
        #: Optional: (positions (B, N, 3) Angstrom, numbers (B, N), node_mask) -> t (B, 1)
        #: in [0, 1], how noisy a structure looks (:mod:`edm_core.time_predictor`).
        self.time_predictor: Any = None

    # -- the original's interface ----------------------------------------------------------
    def gamma(self, t: torch.Tensor | float) -> torch.Tensor:
        """The noise table as a function of t in [0, 1]."""
        return self.model.gamma(torch.as_tensor(t, dtype=torch.float32))

    def normalize(self, x: torch.Tensor, one_hot: torch.Tensor, charges: torch.Tensor | None,
                  node_mask: torch.Tensor) -> torch.Tensor:
        """The normalised z = [x, one_hot / 4, charges / 10] (masked)."""
        return self.model.normalize(x, one_hot, charges, node_mask)

    def predict_noise(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """The network output in normalised space, as the original computes it."""
        return self.model.predict_noise(z, t, node_mask)

    @classmethod
    def from_network(cls, config: EDMConfig, network: Any, description: str) -> "EDMDenoiser":
        """A denoiser whose network is an outside callable: ``network(z, t, node_mask)``
        (the ``edm`` signature), or for a ``position_only`` config ``network(positions,
        numbers, node_mask, t)`` (the ``positions`` signature); an ONNX session or a
        Python entry point. The sampler, schedule and normalisation are ours, the
        weights are not. Its outputs are checked (:func:`checked_output`).
        Gradient-enabled calls are refused (there is no torch network to differentiate)."""
        denoiser = cls(config)
        denoiser.model.dynamics = _NoTorchNetwork(description)
        wrapped = (PositionOnlyNetwork(network, config.atomic_numbers, description) if config.position_only
                   else CheckedNetwork(network, description))
        denoiser.model.use_network(wrapped)
        denoiser.backend = description
        return denoiser

    def use_backend(self, name: str = "auto", allow_tf32: bool = False) -> str:
        """Evaluate the network with backend ``name`` (``torch``, ``cpp``, ``triton``,
        ``onnx`` or ``auto``) in inference (no-grad) calls; returns the resolved name.
        Training and gradient-enabled calls always use the torch reference.

        ``allow_tf32`` (opt-in, triton only) runs the pair products on TF32 tensor
        cores; ``edm-bench perf --backends triton-tf32`` times it on a GPU."""
        from edm_core.backends import make_network, resolve_backend

        if isinstance(self.model.dynamics, _NoTorchNetwork):
            raise ValueError(f"this denoiser runs through {self.model.dynamics.description}; it has no torch "
                             "network for another backend")
        resolved = resolve_backend(name, self._device())
        if allow_tf32 and resolved != "triton":
            raise ValueError(f"allow_tf32 applies to the triton backend only, not {resolved!r}")
        network = None if resolved == "torch" else make_network(self, resolved, allow_tf32=allow_tf32)
        self.model.use_network(network)
        self.backend = resolved
        return resolved

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def position_scale(self) -> float:
        """Latent positions times this are Angstrom (EDM's normalisation of x, 1)."""
        return self.model.norm_values[0]

    def gamma_table(self) -> np.ndarray:
        """The schedule's (T + 1,) gamma table, float64 (:mod:`edm_core.schedule`)."""
        from edm_core.schedule import gamma_table

        c = self.config
        return gamma_table(c.diffusion_steps, c.diffusion_noise_precision, c.diffusion_noise_schedule,
                           None if c.diffusion_alpha2 is None else np.asarray(c.diffusion_alpha2))

    # -- batching ------------------------------------------------------------------------
    def check(self, numbers: np.ndarray, positions: np.ndarray, name: str) -> None:
        """Raise :class:`ModelInputError` if the model cannot take this molecule."""
        if len(numbers) == 0:
            raise ModelInputError(f"{name}: no atoms")
        if len(numbers) > self.config.max_n_nodes:
            raise ModelInputError(f"{name}: {len(numbers)} atoms, this checkpoint supports at most "
                                  f"{self.config.max_n_nodes}")
        unknown = sorted(set(int(z) for z in numbers) - set(self._type_index))
        if unknown:
            raise ModelInputError(f"{name}: element(s) with atomic number {unknown} not among this checkpoint's "
                                  f"atom types {list(self.config.atom_decoder)}")
        if positions.shape != (len(numbers), 3) or not np.all(np.isfinite(positions)):
            raise ModelInputError(f"{name}: positions must be finite with shape ({len(numbers)}, 3)")
        if (reason := geometry_problem(positions)) is not None:
            raise ModelInputError(f"{name}: {reason}")
        if self.config.max_diameter is not None and (width := diameter(positions)) > self.config.max_diameter:
            raise ModelInputError(f"{name}: atoms {width:.2f} A apart, this checkpoint supports molecules at most "
                                  f"{self.config.max_diameter:.2f} A across")

    def pack(self, molecules: Sequence[tuple[np.ndarray, np.ndarray]], device: torch.device | str = "cpu"
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Ragged molecules -> padded (x, one_hot, charges, node_mask), vectorised.

        Returns x (B, N, 3), one_hot (B, N, K), charges (B, N, 1) or None, node_mask (B, N, 1).
        """
        sizes = np.array([len(n) for n, _ in molecules])
        b, n_max = len(molecules), int(sizes.max())
        mol_index = np.repeat(np.arange(b), sizes)
        atom_index = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        numbers = np.concatenate([n for n, _ in molecules]).astype(np.int64)
        positions = np.concatenate([p for _, p in molecules])
        lookup = np.zeros(max(self._type_index) + 1, dtype=np.int64)
        lookup[list(self._type_index)] = list(self._type_index.values())
        idx = (torch.as_tensor(mol_index), torch.as_tensor(atom_index))
        x = torch.zeros((b, n_max, 3), dtype=torch.float64)
        x[idx] = torch.as_tensor(positions, dtype=torch.float64)
        types = torch.zeros((b, n_max), dtype=torch.long)
        types[idx] = torch.as_tensor(lookup[numbers])
        node_mask = torch.zeros((b, n_max, 1), dtype=torch.float32)
        node_mask[idx] = 1.0
        one_hot = nn.functional.one_hot(types, len(self.config.atom_decoder)).float() * node_mask
        charges = None
        if self.config.include_charges:
            charges = torch.zeros((b, n_max, 1), dtype=torch.float32)
            charges[idx] = torch.as_tensor(numbers, dtype=torch.float32)[:, None]
        x = remove_mean(x, node_mask)
        dtype = self.model.buffer.dtype  # float64 when the model was cast with .double()
        x, one_hot, node_mask = (v.to(device, dtype) for v in (x, one_hot, node_mask))
        return x, one_hot, None if charges is None else charges.to(device, dtype), node_mask

    def _device(self) -> torch.device:
        return self.model.buffer.device

    # -- operations ----------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """What this denoiser can do (a position-only model cannot generate: it is given
        the atom types; ``auto`` start steps need a time-step predictor)."""
        return Capabilities(relax=True, repeat_step=True, generate=not self.config.position_only,
                            auto_start=self.time_predictor is not None)

    def predict_steps(self, positions: torch.Tensor, numbers: torch.Tensor, node_mask: torch.Tensor
                      ) -> torch.Tensor:
        """(B,) start steps round(t_hat T) that the time-step predictor reads from
        centred positions (Angstrom); a non-finite reading is a :class:`NetworkOutputError`."""
        if self.time_predictor is None:
            raise ValueError("this denoiser has no time-step predictor: 'auto' start steps need one")
        t = self.time_predictor(positions.float(), numbers, node_mask.float())
        t = torch.as_tensor(t).reshape(-1).to(positions.dtype)
        if t.shape[0] != positions.shape[0] or not torch.isfinite(t).all():
            raise NetworkOutputError(f"time-step predictor: expected {positions.shape[0]} finite times, got "
                                     f"shape {tuple(t.shape)}")
        return torch.round(t.clamp(0, 1) * self.model.T).long()

    @torch.no_grad()
    def relax(self, molecules: Sequence[Any], n_steps: int | str, *, add_noise: bool = False,
              keep_path: bool = False, seed: int | None = 0, noise: Noise | None = None, noise_scale: float = 1.0,
              batch_size: int = 64, names: Sequence[str] | None = None, evaluations: int | None = None,
              max_steps: int | None = None) -> RelaxOutput:
        """Reverse diffusion from step ``n_steps`` down to 0, starting at given structures.

        The study's procedure (its section 4.2) is the default,
        ``add_noise=False``: the clean structure is taken as z_n, with no noise
        added first. ``add_noise=True`` first noises it to step n
        (z_n = alpha_n z + sigma_n eps). Atom types stay those of the input; the
        model's own decoding at the end is returned for comparison.

        Parameters
        ----------
        molecules : sequence
            ASE Atoms, ``(numbers, positions)`` pairs, or objects with ``numbers``
            and ``positions`` (Angstrom).
        n_steps : int or str
            n, the start step (the study: 20, 30, 50), 1 <= n <= T; or a learned
            start per molecule from the time-step predictor: ``"auto-itp"`` (read
            once, then count down) or ``"auto-as"`` (read again before every step),
            MoreRed's modes.
        keep_path : bool
            Also return every intermediate structure (fixed n only).
        seed : int, optional
            Seeds the noise (``None``: torch's global generator).
        noise : Noise, optional
            An injected noise source (overrides ``seed`` and ``noise_scale``);
            ``Noise(shared=True)`` broadcasts one draw over each batch, as the
            original's fix_noise.
        noise_scale : float
            Factor on the sampler's noise: 1 (default) is EDM's ancestral
            sampler, as the study; 0 makes every step go to its mean, a
            deterministic relaxation (our extension).
        batch_size : int
            Molecules per padded batch (sorted by size to limit padding).
        evaluations : int, optional
            k: cover the steps n -> 0 in k strided steps (DDIM's stride) instead of
            n, so that the network runs k + 1 times (the final decode included);
            the path then has k + 2 frames (fixed n only).
        max_steps : int, optional
            ``auto``: at most this many reverse steps per molecule (default T).

        Returns
        -------
        RelaxOutput
        """
        auto = n_steps if isinstance(n_steps, str) else None
        if auto is not None:
            if auto not in AUTO_MODES:
                raise ValueError(f"n_steps must be an int or one of {', '.join(AUTO_MODES)}, got {auto!r}")
            if add_noise or keep_path or evaluations is not None:
                raise ValueError(f"{auto}: add_noise, keep_path and evaluations need a fixed start step")
            if self.time_predictor is None:
                raise ValueError(f"{auto}: this denoiser has no time-step predictor")
            max_steps = self.model.T if max_steps is None else int(max_steps)
            if not 1 <= max_steps <= self.model.T:
                raise ValueError(f"max_steps must be in 1..{self.model.T}, got {max_steps}")
        elif not 1 <= n_steps <= self.model.T:
            raise ValueError(f"n_steps must be in 1..{self.model.T}, got {n_steps}")
        if evaluations is not None and not 1 <= evaluations <= n_steps:
            raise ValueError(f"evaluations must be in 1..{n_steps} (the start step), got {evaluations}")
        pairs = [as_numbers_positions(m) for m in molecules]
        names = list(names) if names is not None else [f"molecule {i}" for i in range(len(pairs))]
        for (numbers, pos), name in zip(pairs, names):
            self.check(numbers, pos, name)
        noise = noise or Noise.from_seed(seed, scale=noise_scale)
        device = self._device()
        out_pos: list[np.ndarray | None] = [None] * len(pairs)
        out_path: list[np.ndarray | None] = [None] * len(pairs)
        out_types: list[np.ndarray | None] = [None] * len(pairs)
        starts = np.full(len(pairs), n_steps if auto is None else 0, dtype=int)
        steps_taken = np.full(len(pairs), evaluations or (n_steps if auto is None else 0), dtype=int)
        order = np.argsort([len(n) for n, _ in pairs], kind="stable")
        decoder = np.array(self.config.atomic_numbers)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = [pairs[i] for i in chunk]
            x, one_hot, charges, node_mask = self.pack(batch, device)
            z = self.model.normalize(x, one_hot, charges, node_mask)
            if add_noise:
                t = torch.full((len(batch), 1), n_steps / self.model.T, device=device)
                z, _ = self.model.noised(z, t, node_mask, noise)
            if auto is None:
                x_final, z0, path = self.model.sample_chain(z, n_steps, node_mask, noise, keep_path, evaluations)
            else:
                numbers_t = torch.as_tensor(decoder[torch.argmax(one_hot, dim=-1).cpu().numpy()], device=device)

                def read(z_now: torch.Tensor) -> torch.Tensor:
                    return self.predict_steps(self.model.unnormalize_positions(z_now, node_mask), numbers_t,
                                              node_mask)

                first = read(z)
                x_final, z0, taken = self.model.sample_adaptive(z, first, node_mask, noise, max_steps,
                                                                read if auto == "auto-as" else None)
                starts[chunk], steps_taken[chunk] = first.cpu().numpy(), taken.cpu().numpy()
            types, _ = self.model.decode_types(z0, node_mask)
            for k, i in enumerate(chunk):
                numbers, pos = pairs[i]
                na, centre = len(numbers), pos.mean(axis=0)
                out_pos[i] = x_final[k, :na].double().cpu().numpy() + centre
                out_types[i] = decoder[types[k, :na].cpu().numpy()]
                if keep_path:
                    frames = [x[k, :na]] + [p[k, :na] for p in path]
                    out_path[i] = torch.stack(frames).double().cpu().numpy() + centre
        disagree = np.array([int((t != n).sum()) for t, (n, _) in zip(out_types, pairs)])
        return RelaxOutput(out_pos, out_path if keep_path else None, out_types, disagree, starts, steps_taken + 1)

    @torch.no_grad()
    def repeat_step(self, molecule: Any, n: int, n_repeats: int, burn_in: int = 0, *, seed: int | None = 0,
                    noise: Noise | None = None) -> np.ndarray:
        """Apply the single reverse step n -> n-1 again and again (the Boltzmann analysis).

        Starting from the given structure as z_n, each repeat maps z to the step's
        sample, treating the result as z_n again. Only the positions carry over:
        the atom-type and charge block is reset to the molecule's before every
        repeat, as the study did (carried over, it drifts and flips atom types).

        Returns
        -------
        (n_repeats - burn_in, n_atoms, 3) array
            Positions (Angstrom, centred as the input) after each repeat past the burn-in.
        """
        if not 1 <= n <= self.model.T:
            raise ValueError(f"n must be in 1..{self.model.T}, got {n}")
        if not 0 <= burn_in < n_repeats:
            raise ValueError(f"need 0 <= burn_in < n_repeats, got {burn_in}, {n_repeats}")
        numbers, pos = as_numbers_positions(molecule)
        self.check(numbers, pos, "molecule")
        noise = noise or Noise.from_seed(seed)
        x, one_hot, charges, node_mask = self.pack([(numbers, pos)], self._device())
        z = self.model.normalize(x, one_hot, charges, node_mask)
        types = z[..., 3:]
        frames = []
        for r in range(n_repeats):
            z = self.model.reverse_step(torch.cat([z[..., :3], types], dim=-1), n - 1, node_mask, noise)
            if r >= burn_in:
                frames.append(self.model.unnormalize_positions(z, node_mask)[0])
        return torch.stack(frames).double().cpu().numpy() + pos.mean(axis=0)

    @torch.no_grad()
    def generate(self, n_molecules: int, *, n_nodes: Sequence[int] | None = None, keep_chain: bool = False,
                 seed: int | None = 0, noise: Noise | None = None, compat_decode: bool = False) -> dict[str, Any]:
        """De novo generation from noise (all T reverse steps).

        Parameters
        ----------
        n_molecules : int
        n_nodes : sequence of int, optional
            Atom counts; drawn from the training histogram when omitted.
        keep_chain : bool
            Keep every latent z_t (T + 1 frames, noise first) for the phases analysis.
        compat_decode : bool
            Decode types with the original's slicing quirk (see ``decode_types``).

        Returns
        -------
        dict with ``numbers`` and ``positions`` (lists per molecule), ``charges``
        (list or None), ``n_nodes``, and ``chain`` ((T + 1, B, N, 3 + K + c) array)
        with ``node_mask``, ``atomic_numbers`` (of the one-hot columns) and
        ``position_scale`` (chain positions times it are Angstrom) when ``keep_chain``.
        """
        if self.config.position_only:
            raise ValueError("a position-only denoiser is given its atom types and cannot generate molecules")
        noise = noise or Noise.from_seed(seed)
        if n_nodes is None:
            sizes = np.array(sorted(self.config.n_nodes_histogram))
            p = np.array([self.config.n_nodes_histogram[s] for s in sizes], dtype=float)
            rng = np.random.default_rng(seed)
            n_nodes = rng.choice(sizes, size=n_molecules, p=p / p.sum())
        n_nodes = np.asarray(n_nodes, dtype=int)
        if len(n_nodes) != n_molecules or n_nodes.min() < 1 or n_nodes.max() > self.config.max_n_nodes:
            raise ValueError(f"n_nodes must hold {n_molecules} sizes in 1..{self.config.max_n_nodes}")
        device = self._device()
        n_max = int(n_nodes.max())
        node_mask = (torch.arange(n_max)[None, :] < torch.as_tensor(n_nodes)[:, None])[..., None].to(
            device, self.model.buffer.dtype)
        z = noise.sample(node_mask, self.model.n_features)
        chain = [z.cpu()] if keep_chain else []
        for s in range(self.model.T - 1, -1, -1):
            z = self.model.reverse_step(z, s, node_mask, noise)
            if keep_chain:
                chain.append(z.cpu())
        x = self.model.final_positions(z, node_mask, noise)
        types, charges = self.model.decode_types(z, node_mask, compat=compat_decode)
        decoder = np.array(self.config.atomic_numbers)
        out: dict[str, Any] = {
            "n_nodes": n_nodes,
            "numbers": [decoder[types[i, :k].cpu().numpy()] for i, k in enumerate(n_nodes)],
            "positions": [x[i, :k].double().cpu().numpy() for i, k in enumerate(n_nodes)],
            "charges": None if charges is None else [charges[i, :k].cpu().numpy() for i, k in enumerate(n_nodes)],
        }
        if keep_chain:
            out["chain"] = torch.stack(chain).numpy()
            out["node_mask"] = node_mask.cpu().numpy()
            out["atomic_numbers"] = self.config.atomic_numbers  # the one-hot columns' elements
            out["position_scale"] = self.position_scale
        return out
