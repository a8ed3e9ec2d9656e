"""The EDM network as ONNX: export with dynamic batch and atom axes, a signature
check, and an onnxruntime backend (CPU provider here, CUDA provider on GPU hosts).

The standard signature, which is also how denoisers of other frameworks enter
the benchmark (the sampler loop stays ours)::

    inputs   z          float32 (batch, atoms, 3 + K + c)   normalised latent
             t          float32 (batch, 1)                  time in [0, 1]
             node_mask  float32 (batch, atoms, 1)           1 for real atoms
    output   eps_hat    float32 (batch, atoms, 3 + K + c)   predicted noise

The exported file carries the model's :class:`EDMConfig` as JSON in its
metadata (key ``edm_config``), so it is self-describing.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edm_core.dynamics import EGNNDynamics
from edm_core.model import EDMConfig, EDMDenoiser

INPUTS = (("z", 3), ("t", 2), ("node_mask", 3))
OUTPUT = ("eps_hat", 3)
OPSET = 17


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


def export_onnx(denoiser: EDMDenoiser, path: str | Path | io.BytesIO) -> None:
    """Export ``denoiser``'s network with dynamic batch and atom axes (opset 17)."""
    import onnx

    d = 3 + denoiser.model.n_features
    z = torch.zeros((2, 3, d))
    z[..., :3] = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0]])
    mask = torch.ones((2, 3, 1))
    t = torch.full((2, 1), 0.5)
    buffer = io.BytesIO()
    net = _Network(denoiser.model.dynamics).float().eval()
    with warnings.catch_warnings():
        # the tracer warns about data-dependent values it records as constants
        # (the molecule count of the centring); the dynamic axes keep them general
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (z, t, mask), buffer, dynamo=False, opset_version=OPSET,
            input_names=[n for n, _ in INPUTS], output_names=[OUTPUT[0]],
            dynamic_axes={"z": {0: "batch", 1: "atoms"}, "t": {0: "batch"}, "node_mask": {0: "batch", 1: "atoms"},
                          "eps_hat": {0: "batch", 1: "atoms"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "edm_config", json.dumps(denoiser.config.to_json())
    data = model.SerializeToString()
    if isinstance(path, io.BytesIO):
        path.write(data)
    else:
        Path(path).write_bytes(data)


def check_signature(session: Any, n_columns: int | None = None, source: str = "model.onnx") -> None:
    """Raise :class:`OnnxSignatureError` unless the session has the standard signature."""
    inputs = {i.name: i for i in session.get_inputs()}
    expected = dict(INPUTS)
    if set(inputs) != set(expected):
        raise OnnxSignatureError(f"{source}: inputs {sorted(inputs)}, expected {sorted(expected)} "
                                 "(z (batch, atoms, 3+K+c), t (batch, 1), node_mask (batch, atoms, 1))")
    for name, rank in expected.items():
        if len(inputs[name].shape) != rank or inputs[name].type != "tensor(float)":
            raise OnnxSignatureError(f"{source}: input {name!r} is {inputs[name].type} of rank "
                                     f"{len(inputs[name].shape)}, expected tensor(float) of rank {rank}")
    outputs = session.get_outputs()
    if len(outputs) != 1 or len(outputs[0].shape) != OUTPUT[1]:
        raise OnnxSignatureError(f"{source}: expected one output of rank 3 (eps_hat), got "
                                 f"{[(o.name, o.shape) for o in outputs]}")
    width = inputs["z"].shape[2]
    if n_columns is not None and isinstance(width, int) and width != n_columns:
        raise OnnxSignatureError(f"{source}: z has {width} columns, the configuration needs {n_columns}")


def providers() -> list[str]:
    """onnxruntime providers to use: CUDA first when available."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxNetwork:
    """eps_hat(z, t) through onnxruntime; same contract as ``EGNNDynamics.forward``."""

    def __init__(self, model: bytes | str | Path, n_columns: int | None = None, source: str = "model.onnx") -> None:
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
        check_signature(self.session, n_columns, source)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config = EDMConfig.from_json(json.loads(meta["edm_config"])) if "edm_config" in meta else None

    def __call__(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1).expand(b, 1)
        feeds = {"z": z.detach().float().cpu().numpy(), "t": np.ascontiguousarray(t.cpu().numpy()),
                 "node_mask": node_mask.detach().float().cpu().numpy()}
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        return out.to(z.dtype).to(z.device)


def onnx_network(denoiser: EDMDenoiser) -> OnnxNetwork:
    """Export ``denoiser`` in memory and wrap it as a backend network."""
    buffer = io.BytesIO()
    export_onnx(denoiser, buffer)
    return OnnxNetwork(buffer.getvalue(), 3 + denoiser.model.n_features, "exported network")
