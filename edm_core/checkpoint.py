"""Checkpoint I/O: the original EDM format and the project's own, never executing
code from a file.

Original (the EDM code's ``outputs/<exp>`` folders): a folder with ``args.pickle`` (a pickled
``argparse.Namespace``) and ``generative_model_ema.npy`` (despite the name a
``torch.save`` zip of the EMA state dict; ``generative_model.npy`` holds the raw
weights). ``args.pickle`` is read with an unpickler that only builds
``argparse.Namespace`` (and turns ``torch.device`` into its string); the weights
are read with ``torch.load(weights_only=True)``.

Own format: a folder with ``config.json`` (:class:`EDMConfig` plus metadata) and
``model.safetensors`` (the same state dict). No pickle is involved.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from edm_core.model import EDMConfig, EDMDenoiser, build_model

FORMAT = "edm-bench-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ORIGINAL_ARGS = "args.pickle"
ORIGINAL_WEIGHTS = ("generative_model_ema.npy", "generative_model.npy")


#: Largest ``config.json`` or ``args.pickle`` read, in bytes (real ones are a few KB).
MAX_CONFIG_BYTES = 2**20


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing or corrupt files, unsafe pickle
    content, unsupported options, or weights that do not fit the configuration."""


def _read_small(path: Path) -> bytes:
    """The bytes of a configuration file: a regular file of at most :data:`MAX_CONFIG_BYTES`."""
    try:
        if not path.is_file():
            raise CheckpointError(f"{path}: not a regular file")
        with path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes, the limit for a configuration file")
    return data


class _ArgsUnpickler(pickle.Unpickler):
    """Builds only ``argparse.Namespace``; ``torch.device`` becomes its string."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        if (module, name) == ("torch", "device"):
            return lambda *args: ":".join(str(a) for a in args)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from args.pickle (only argparse.Namespace)")


def read_original_args(path: Path) -> argparse.Namespace:
    """The training options of an original checkpoint, read safely."""
    try:
        args = _ArgsUnpickler(io.BytesIO(_read_small(path))).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a safe, readable args.pickle ({exc})") from exc
    if not isinstance(args, argparse.Namespace):
        raise CheckpointError(f"{path}: expected an argparse.Namespace, got {type(args).__name__}")
    return args


def config_from_args(args: argparse.Namespace, source: str = "args.pickle") -> EDMConfig:
    """Map the original options to an :class:`EDMConfig` (defaults for old pickles)."""
    a = vars(args)
    if a.get("model", "egnn_dynamics") != "egnn_dynamics":
        raise CheckpointError(f"{source}: model {a['model']!r} is not supported (only egnn_dynamics)")
    if a.get("conditioning") or a.get("context_node_nf", 0):
        raise CheckpointError(f"{source}: conditional models (conditioning={a.get('conditioning')}) are not "
                              "supported; use an unconditional EDM checkpoint")
    if a.get("remove_h"):
        raise CheckpointError(f"{source}: remove_h=True (no-hydrogen) checkpoints are not supported")
    dataset = "geom" if str(a.get("dataset", "qm9")).startswith("geom") else "qm9"
    try:
        return EDMConfig.for_dataset(
            dataset, include_charges=bool(a["include_charges"]),
            nf=int(a["nf"]), n_layers=int(a["n_layers"]), inv_sublayers=int(a.get("inv_sublayers", 1)),
            attention=bool(a.get("attention", True)), tanh=bool(a.get("tanh", True)),
            norm_constant=float(a.get("norm_constant", 1)), sin_embedding=bool(a.get("sin_embedding", False)),
            normalization_factor=float(a.get("normalization_factor", 1)),
            aggregation_method=str(a.get("aggregation_method", "sum")),
            condition_time=bool(a.get("condition_time", True)), diffusion_steps=int(a["diffusion_steps"]),
            diffusion_noise_schedule=str(a["diffusion_noise_schedule"]),
            diffusion_noise_precision=float(a["diffusion_noise_precision"]),
            normalize_factors=tuple(float(v) for v in a.get("normalize_factors", (1, 4, 10))),
        )
    except KeyError as exc:
        raise CheckpointError(f"{source}: option {exc} missing") from exc
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


def _check_shapes(config: EDMConfig, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """Refuse weights whose names or shapes do not fit ``config``, before anything is allocated.

    The expected shapes come from the model built on torch's ``meta`` device (no
    memory), so a config asking for a huge ``nf`` costs nothing when its weights
    do not match it.
    """
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in build_model(config).state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the configuration: missing {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{'...' if len(unexpected) > 5 else ''}")
    for key, shape in shapes.items():
        if tuple(shape) != expected[key]:
            raise CheckpointError(f"{source}: {key} has shape {tuple(shape)}, expected {expected[key]}")


def _built(config: EDMConfig, state: dict[str, torch.Tensor], source: str) -> EDMDenoiser:
    """The denoiser of ``config`` with ``state`` loaded, the shapes checked first."""
    _check_shapes(config, {key: tuple(value.shape) for key, value in state.items()}, source)
    denoiser = EDMDenoiser(config)
    denoiser.model.load_state_dict(state, strict=True)
    return denoiser


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu", ema: bool = True
                    ) -> EDMDenoiser:
    """Load an EDM checkpoint folder, original or own format.

    Parameters
    ----------
    path : path
        A folder with ``args.pickle`` + ``generative_model_ema.npy`` (original) or
        ``config.json`` + ``model.safetensors`` (own).
    device : str or torch.device
    ema : bool
        Original format: prefer the EMA weights (as the study did).

    Raises
    ------
    CheckpointError
        Missing, corrupt, unsafe or mismatching files.
    """
    root = Path(path)
    if (root / CONFIG_FILE).is_file():
        denoiser = _load_own(root)
    elif (root / ORIGINAL_ARGS).is_file():
        denoiser = _load_original(root, ema)
    else:
        raise CheckpointError(f"{root}: no checkpoint found (need {CONFIG_FILE} + {WEIGHTS_FILE}, or "
                              f"{ORIGINAL_ARGS} + {ORIGINAL_WEIGHTS[0]})")
    return denoiser.to(device).eval()


def _load_original(root: Path, ema: bool) -> EDMDenoiser:
    config = config_from_args(read_original_args(root / ORIGINAL_ARGS), str(root / ORIGINAL_ARGS))
    names = ORIGINAL_WEIGHTS if ema else ORIGINAL_WEIGHTS[::-1]
    weights = next((root / n for n in names if (root / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{root}: no weights file ({' or '.join(names)})")
    try:  # memory-mapped: the tensors stay on disk until the shapes are checked
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{weights}: cannot load the weights safely ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{weights}: expected a state dict of tensors")
    return _built(config, dict(state), str(weights))


def _load_own(root: Path) -> EDMDenoiser:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        doc = json.loads(_read_small(root / CONFIG_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: unreadable ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{root / CONFIG_FILE}: not an {FORMAT} v{FORMAT_VERSION} file")
    try:
        config = EDMConfig.from_json(doc["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: bad config ({exc})") from exc
    weights = root / WEIGHTS_FILE
    try:  # the header's shapes are checked before any tensor is read
        with safe_open(weights, framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        _check_shapes(config, shapes, str(weights))
        state = load_file(weights)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{weights}: cannot load ({exc})") from exc
    denoiser = _built(config, state, str(weights))
    denoiser.metadata = doc.get("metadata", {})
    return denoiser


def save_checkpoint(denoiser: EDMDenoiser, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
                    ) -> Path:
    """Write ``denoiser`` in the own format (atomically: files renamed into place)."""
    from safetensors.torch import save_file

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in denoiser.model.state_dict().items()}
    tmp = root / (WEIGHTS_FILE + ".tmp")
    save_file(state, tmp)
    os.replace(tmp, root / WEIGHTS_FILE)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": denoiser.config.to_json(),
           "metadata": metadata or {}}
    tmp = root / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, root / CONFIG_FILE)
    return root
