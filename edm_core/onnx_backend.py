"""Networks as ONNX: export with dynamic batch and atom axes, signature checks,
and onnxruntime sessions (CPU provider here, CUDA provider on GPU hosts).

Three signatures, which are also how models of other frameworks enter the
benchmark (the sampler loop stays ours):

``edm`` (EDM's joint latent)::

    inputs   z          float32 (batch, atoms, 3 + K + c)   normalised latent
             t          float32 (batch, 1)                  time in [0, 1]
             node_mask  float32 (batch, atoms, 1)           1 for real atoms
    output   eps_hat    float32 (batch, atoms, 3 + K + c)   predicted noise

``positions`` (a position-only denoiser; atom types are given, not diffused)::

    inputs   positions  float32 (batch, atoms, 3)           Angstrom, centred
             numbers    int64   (batch, atoms)              atomic numbers, 0 on padding
             node_mask  float32 (batch, atoms, 1)
             t          float32 (batch, 1)
    output   eps        float32 (batch, atoms, 3)           predicted noise on positions

``time`` (a time-step predictor, :mod:`edm_core.time_predictor`)::

    inputs   positions, numbers, node_mask as above
    output   t          float32 (batch, 1)

A file we export carries the model's :class:`EDMConfig` as JSON in its metadata
(key ``edm_config``), so it is self-describing.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edm_core.dynamics import EGNNDynamics
from edm_core.model import EDMConfig, EDMDenoiser

OPSET = 17


@dataclass(frozen=True)
class Signature:
    """Named inputs (name, onnx type, rank) and the output's rank."""

    name: str
    inputs: tuple[tuple[str, str, int], ...]
    output: tuple[str, int]
    description: str

    def matches(self, session: Any) -> bool:
        return {i.name for i in session.get_inputs()} == {n for n, _, _ in self.inputs}


_FLOAT, _INT64 = "tensor(float)", "tensor(int64)"
SIGNATURES = {
    "edm": Signature("edm", (("z", _FLOAT, 3), ("t", _FLOAT, 2), ("node_mask", _FLOAT, 3)), ("eps_hat", 3),
                     "z (batch, atoms, 3+K+c), t (batch, 1), node_mask (batch, atoms, 1) -> eps_hat like z"),
    "positions": Signature("positions", (("positions", _FLOAT, 3), ("numbers", _INT64, 2), ("node_mask", _FLOAT, 3),
                                         ("t", _FLOAT, 2)), ("eps", 3),
                           "positions (batch, atoms, 3) float, numbers (batch, atoms) int64, node_mask "
                           "(batch, atoms, 1), t (batch, 1) -> eps (batch, atoms, 3)"),
    "time": Signature("time", (("positions", _FLOAT, 3), ("numbers", _INT64, 2), ("node_mask", _FLOAT, 3)),
                      ("t", 2), "positions (batch, atoms, 3) float, numbers (batch, atoms) int64, node_mask "
                                "(batch, atoms, 1) -> t (batch, 1)"),
}


class OnnxSignatureError(ValueError):
    """An ONNX file whose inputs or outputs are not the standard signature, or
    that cannot be loaded (damaged, external data outside its folder)."""


def external_data_files(path: str | Path) -> list[Path]:
    """The files that an ONNX model's tensors stored as external data are read
    from, resolved against the model's folder (the model is read without them).

    Raises
    ------
    OnnxSignatureError
        A file outside the model's folder (after links), or one that is not a
        regular file: onnxruntime would read whatever the location names.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises its own types for damaged files
        raise OnnxSignatureError(f"{path}: not a loadable ONNX model ({exc})") from exc
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    folder = path.resolve().parent
    files = set()
    for tensor in tensors:
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if folder not in target.parents:
            raise OnnxSignatureError(f"{path}: tensor {tensor.name!r} is stored in {location!r}, outside the "
                                     "model's folder")
        if not target.is_file():
            raise OnnxSignatureError(f"{path}: tensor {tensor.name!r} is stored in {location!r}, not a regular file")
        files.add(target)
    return sorted(files)


class _Network(torch.nn.Module):
    """The dynamics with a plain (z, t, node_mask) signature for tracing."""

    def __init__(self, dynamics: EGNNDynamics) -> None:
        super().__init__()
        self.dynamics = dynamics

    def forward(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        return self.dynamics(z, t, node_mask)


class _PositionNetwork(torch.nn.Module):
    """A position-only EDM's dynamics with the ``positions`` signature: the one-hot
    and charge columns are built from the atomic numbers inside the graph."""

    def __init__(self, denoiser: EDMDenoiser) -> None:
        super().__init__()
        config = denoiser.config
        self.dynamics = denoiser.model.dynamics
        lookup = torch.zeros((max(config.atomic_numbers) + 1, len(config.atomic_numbers)))
        lookup[list(config.atomic_numbers), range(len(config.atomic_numbers))] = 1.0
        self.register_buffer("lookup", lookup)
        self.norm = denoiser.model.norm_values
        self.include_charges = config.include_charges

    def forward(self, positions: torch.Tensor, numbers: torch.Tensor, node_mask: torch.Tensor, t: torch.Tensor
                ) -> torch.Tensor:
        numbers = numbers.clamp(0, self.lookup.shape[0] - 1)
        parts = [positions * node_mask, self.lookup[numbers] / self.norm[1] * node_mask]
        if self.include_charges:
            parts.append(numbers.to(positions.dtype)[..., None] / self.norm[2] * node_mask)
        return self.dynamics(torch.cat(parts, dim=-1), t, node_mask)[..., :3]


def export_onnx(denoiser: EDMDenoiser, path: str | Path | io.BytesIO, signature: str = "edm") -> None:
    """Export ``denoiser``'s network with dynamic batch and atom axes (opset 17), with
    the ``edm`` signature or, for a position-only model, the ``positions`` one."""
    import onnx

    mask = torch.ones((2, 3, 1))
    t = torch.full((2, 1), 0.5)
    x = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0]]).repeat(2, 1, 1)
    if signature == "positions":
        if not denoiser.config.position_only or denoiser.model.norm_values[0] != 1:
            raise ValueError("the positions signature is for a position-only model with positions in Angstrom")
        z = min(denoiser.config.atomic_numbers)
        net, args = _PositionNetwork(denoiser), (x, torch.full((2, 3), z, dtype=torch.long), mask, t)
    elif signature == "edm":
        z = torch.zeros((2, 3, 3 + denoiser.model.n_features))
        z[..., :3] = x
        net, args = _Network(denoiser.model.dynamics), (z, t, mask)
    else:
        raise ValueError(f"signature must be 'edm' or 'positions', got {signature!r}")
    spec = SIGNATURES[signature]
    names = [n for n, _, _ in spec.inputs]
    axes = {n: ({0: "batch"} if n == "t" else {0: "batch", 1: "atoms"}) for n in names}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the tracer warns about data-dependent values it records as constants
        # (the molecule count of the centring); the dynamic axes keep them general
        warnings.simplefilter("ignore")
        torch.onnx.export(net.float().eval(), args, buffer, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=[spec.output[0]],
                          dynamic_axes={**axes, spec.output[0]: {0: "batch", 1: "atoms"}})
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "edm_config", json.dumps(denoiser.config.to_json())
    data = model.SerializeToString()
    if isinstance(path, io.BytesIO):
        path.write(data)
    else:
        Path(path).write_bytes(data)


def signature_of(session: Any, allowed: tuple[str, ...], source: str = "model.onnx") -> Signature:
    """The signature among ``allowed`` (names of :data:`SIGNATURES`) whose input
    names the session has, checked in full; :class:`OnnxSignatureError` naming every
    allowed signature otherwise."""
    found = next((SIGNATURES[n] for n in allowed if SIGNATURES[n].matches(session)), None)
    if found is None:
        names = sorted(i.name for i in session.get_inputs())
        expected = "; or ".join(f"{SIGNATURES[n].name}: {SIGNATURES[n].description}" for n in allowed)
        raise OnnxSignatureError(f"{source}: inputs {names}, expected {expected}")
    inputs = {i.name: i for i in session.get_inputs()}
    for name, kind, rank in found.inputs:
        if len(inputs[name].shape) != rank or inputs[name].type != kind:
            raise OnnxSignatureError(f"{source}: input {name!r} is {inputs[name].type} of rank "
                                     f"{len(inputs[name].shape)}, expected {kind} of rank {rank} "
                                     f"({found.name} signature: {found.description})")
    outputs = session.get_outputs()
    if len(outputs) != 1 or len(outputs[0].shape) != found.output[1]:
        raise OnnxSignatureError(f"{source}: expected one output of rank {found.output[1]} ({found.output[0]}), got "
                                 f"{[(o.name, o.shape) for o in outputs]}")
    return found


def check_signature(session: Any, n_columns: int | None = None, source: str = "model.onnx") -> None:
    """Raise :class:`OnnxSignatureError` unless the session has the ``edm`` signature
    (with ``n_columns`` columns of z, when given)."""
    signature_of(session, ("edm",), source)
    width = next(i for i in session.get_inputs() if i.name == "z").shape[2]
    if n_columns is not None and isinstance(width, int) and width != n_columns:
        raise OnnxSignatureError(f"{source}: z has {width} columns, the configuration needs {n_columns}")


def providers() -> list[str]:
    """onnxruntime providers to use: CUDA first when available."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxNetwork:
    """A network through onnxruntime, called with its signature's inputs in order:
    ``(z, t, node_mask)`` for ``edm`` (the contract of ``EGNNDynamics.forward``),
    ``(positions, numbers, node_mask, t)`` for ``positions``, ``(positions,
    numbers, node_mask)`` for ``time``. The signature is found from the input names
    among ``allowed``."""

    def __init__(self, model: bytes | str | Path, n_columns: int | None = None, source: str = "model.onnx",
                 allowed: tuple[str, ...] = ("edm",)) -> None:
        import onnxruntime as ort

        if not isinstance(model, bytes):  # a path: onnxruntime reads external data beside it, once checked
            external_data_files(model)
            model = str(model)
        # The CPU thread budget the user gave torch (--threads, OMP_NUM_THREADS):
        # onnxruntime would otherwise take every core, whatever the run asked for.
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=providers())
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise OnnxSignatureError(f"{source}: not a loadable ONNX model ({exc})") from exc
        self.signature = signature_of(self.session, allowed, source)
        if self.signature.name == "edm":
            check_signature(self.session, n_columns, source)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config = EDMConfig.from_json(json.loads(self.metadata["edm_config"])) if "edm_config" in self.metadata \
            else None

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        names = [n for n, _, _ in self.signature.inputs]
        b = args[0].shape[0]
        feeds = {}
        for (name, kind, _), value in zip(self.signature.inputs, args):
            value = torch.as_tensor(value).detach().cpu()
            if name == "t":
                value = value.reshape(-1, 1).expand(b, 1)
            value = value.long() if kind == _INT64 else value.float()
            feeds[name] = np.ascontiguousarray(value.numpy())
        if len(feeds) != len(names):
            raise TypeError(f"{self.signature.name} network takes {names}")
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        return out.to(args[0].dtype if args[0].is_floating_point() else torch.float32).to(args[0].device)


def onnx_network(denoiser: EDMDenoiser) -> OnnxNetwork:
    """Export ``denoiser`` in memory and wrap it as a backend network."""
    buffer = io.BytesIO()
    export_onnx(denoiser, buffer)
    return OnnxNetwork(buffer.getvalue(), 3 + denoiser.model.n_features, "exported network")
