"""Backend dispatch for inference: which implementation evaluates the EGNN.

=======  =====================================================  ==========
name     implementation                                         device
=======  =====================================================  ==========
torch    ``edm_core.egnn`` (the reference, padded, dense pairs)  CPU, CUDA
cpp      ``kernels._egnn_cpp.egnn_forward`` (fused, ragged)      CPU
onnx     the network exported to ONNX, run by onnxruntime       CPU, CUDA
=======  =====================================================  ==========

``auto`` picks the fastest available for the model's device (cpp on CPU when
built, else torch) and logs why; the choice is recorded in run manifests via
:func:`describe`. Training always uses the torch path (the backends are
forward-only). This is the only module that imports ``kernels``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from edm_core.dynamics import EGNNDynamics

if TYPE_CHECKING:
    from edm_core.model import EDMDenoiser

log = logging.getLogger(__name__)

Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BackendInfo:
    """A backend's name, whether it can run here, and why not."""

    name: str
    available: bool
    reason: str = ""


def _cpp_info() -> BackendInfo:
    import kernels

    return BackendInfo("cpp", kernels.cpp_available(), kernels.cpp_unavailable_reason())


def _onnx_info() -> BackendInfo:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return BackendInfo("onnx", False, f"onnxruntime is not installed ({exc}); pip install onnxruntime")
    return BackendInfo("onnx", True)


BACKENDS: dict[str, Callable[[], BackendInfo]] = {
    "torch": lambda: BackendInfo("torch", True),
    "cpp": _cpp_info,
    "onnx": _onnx_info,
}


def resolve_backend(name: str, device: torch.device | str = "cpu") -> str:
    """The backend to use for ``name`` (``auto`` resolved) on ``device``.

    Raises
    ------
    ValueError
        Unknown name, or an explicitly requested backend that cannot run here.
    """
    device = torch.device(device)
    if name == "auto":
        if device.type == "cpu":
            info = _cpp_info()
            if info.available:
                log.info("backend auto -> cpp (CPU, C++ extension built)")
                return "cpp"
            log.info("backend auto -> torch (%s)", info.reason)
        else:
            log.info("backend auto -> torch (device %s)", device)
        return "torch"
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}, choose from {sorted(BACKENDS) + ['auto']}")
    info = BACKENDS[name]()
    if not info.available:
        raise ValueError(f"backend {name!r} is not available: {info.reason}")
    if name == "cpp" and device.type != "cpu":
        raise ValueError(f"backend 'cpp' runs on the CPU, the model is on {device}")
    return name


def pack_egnn_weights(dynamics: EGNNDynamics) -> dict:
    """The EGNN's weights in the fused kernel's layout (float32, split and transposed).

    Per GCL sublayer, matrices [W1a^T, W1b^T, W2^T, W3a^T, W3b^T, W4^T] and vectors
    [w1_r, w1_d, b1, b2, w_att, b_att, b3, b4]; per block, coordinate matrices
    [W7a^T, W7b^T, W6^T] and vectors [w7_r, w7_d, b7, b6, w5].
    """
    egnn = dynamics.egnn
    nf = egnn.embedding.out_features

    def t(w: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(w.detach().float().cpu().numpy().T)

    def v(w: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(w.detach().float().cpu().numpy().reshape(-1))

    gcl, gcl_vec, coord, coord_vec = [], [], [], []
    first = egnn._modules["e_block_0"]
    if not first.gcl_0.attention or not first.gcl_equiv.tanh:
        raise ValueError("the fused kernels need attention=True and tanh=True (every published EDM model)")
    for i in range(egnn.n_layers):
        block = egnn._modules[f"e_block_{i}"]
        for j in range(block.inv_sublayers):
            g = block._modules[f"gcl_{j}"]
            w1, w3 = g.edge_mlp[0].weight, g.node_mlp[0].weight
            gcl += [t(w1[:, :nf]), t(w1[:, nf:2 * nf]), t(g.edge_mlp[2].weight), t(w3[:, :nf]), t(w3[:, nf:]),
                    t(g.node_mlp[2].weight)]
            gcl_vec += [v(w1[:, 2 * nf]), v(w1[:, 2 * nf + 1]), v(g.edge_mlp[0].bias), v(g.edge_mlp[2].bias),
                        v(g.att_mlp[0].weight), v(g.att_mlp[0].bias), v(g.node_mlp[0].bias), v(g.node_mlp[2].bias)]
        c = block.gcl_equiv.coord_mlp
        w7 = c[0].weight
        coord += [t(w7[:, :nf]), t(w7[:, nf:2 * nf]), t(c[2].weight)]
        coord_vec += [v(w7[:, 2 * nf]), v(w7[:, 2 * nf + 1]), v(c[0].bias), v(c[2].bias), v(c[4].weight)]
    return {
        "emb_w_t": t(egnn.embedding.weight), "emb_b": v(egnn.embedding.bias),
        "out_w_t": t(egnn.embedding_out.weight), "out_b": v(egnn.embedding_out.bias),
        "gcl": gcl, "gcl_vec": gcl_vec, "coord": coord, "coord_vec": coord_vec,
        "n_layers": egnn.n_layers, "inv_sublayers": first.inv_sublayers,
        "coords_range": float(first.gcl_equiv.coords_range), "norm_constant": float(first.norm_constant),
        "normalization_factor": float(first.gcl_0.normalization_factor),
    }


class CppNetwork:
    """eps_hat(z, t) through the fused C++ EGNN; same contract as ``EGNNDynamics.forward``.

    The padded batch is packed to ragged atoms (no work on padding), evaluated,
    and scattered back; the velocity is centred per molecule as the reference does.
    """

    def __init__(self, dynamics: EGNNDynamics) -> None:
        if not dynamics.condition_time:
            raise ValueError("the fused kernels need condition_time=True (every published EDM model)")
        self.weights = pack_egnn_weights(dynamics)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        from kernels import _egnn_cpp

        b, n, d = z.shape
        mask = node_mask[..., 0].bool()
        counts = mask.sum(dim=1)
        offsets = np.concatenate([[0], np.cumsum(counts.cpu().numpy())]).astype(np.int64)
        zr = z[mask].float()
        t_atoms = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1).expand(b, 1)[:, None, :].expand(b, n, 1)[mask]
        h0 = torch.cat([zr[:, 3:], t_atoms], dim=1).contiguous().cpu().numpy()
        x0 = zr[:, :3].contiguous().cpu().numpy()
        h_out, x_out = _egnn_cpp.egnn_forward(h0, x0, offsets, **self.weights)
        vel = torch.from_numpy(x_out - x0)
        mol = torch.repeat_interleave(torch.arange(b), counts.cpu())
        mean = torch.zeros((b, 3)).index_add_(0, mol, vel) / counts.clamp(min=1)[:, None].cpu().float()
        vel = vel - mean[mol]
        out = torch.zeros((b, n, d), dtype=z.dtype, device=z.device)
        out[mask] = torch.cat([vel, torch.from_numpy(h_out[:, :-1])], dim=1).to(z.dtype).to(z.device)
        return out


def make_network(denoiser: "EDMDenoiser", backend: str) -> Network:
    """The callable evaluating ``denoiser``'s network with a resolved backend name."""
    dynamics = denoiser.model.dynamics
    if backend == "torch":
        return dynamics
    if backend == "cpp":
        return CppNetwork(dynamics)
    if backend == "onnx":
        from edm_core.onnx_backend import onnx_network

        return onnx_network(denoiser)
    raise ValueError(f"Unknown backend {backend!r}, choose from {sorted(BACKENDS)}")


def describe(backend: str) -> dict:
    """What a run manifest records about the backend."""
    out = {"backend": backend}
    if backend == "cpp":
        from kernels import _egnn_cpp

        out |= {"openmp": _egnn_cpp.openmp_enabled(), "threads": _egnn_cpp.max_threads()}
    return out
