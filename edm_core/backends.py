"""Backend dispatch for inference: which implementation evaluates the EGNN.

=======  =====================================================  ==========
name     implementation                                         device
=======  =====================================================  ==========
torch    ``edm_core.egnn`` (the reference, padded, dense pairs)  CPU, CUDA
cpp      ``kernels._egnn_cpp.egnn_forward`` (fused, ragged)      CPU
triton   ``kernels.egnn_triton`` per-pair kernels + torch GEMMs  CUDA (CPU
                                                                under
                                                                TRITON_INTERPRET=1)
onnx     the network exported to ONNX, run by onnxruntime       CPU, CUDA
=======  =====================================================  ==========

``auto`` picks the fastest available for the model's device (triton on CUDA,
cpp on CPU when built, else torch) and logs why; the choice is recorded in run manifests via
:func:`describe`. Training always uses the torch path (the backends are
forward-only). This is the only module that imports ``kernels``.
"""

from __future__ import annotations

import logging
import os
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


def _triton_info() -> BackendInfo:
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return BackendInfo("triton", False, f"triton is not installed ({exc})")
    if os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available():
        return BackendInfo("triton", True)
    return BackendInfo("triton", False, "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on the CPU)")


def _onnx_info() -> BackendInfo:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return BackendInfo("onnx", False, f"onnxruntime is not installed ({exc}); pip install onnxruntime")
    return BackendInfo("onnx", True)


BACKENDS: dict[str, Callable[[], BackendInfo]] = {
    "torch": lambda: BackendInfo("torch", True),
    "cpp": _cpp_info,
    "triton": _triton_info,
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
        if device.type == "cuda" and _triton_info().available:
            log.info("backend auto -> triton (CUDA device)")
            return "triton"
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

        mask, counts, h0, x0, mol, _ = _ragged(z, t, node_mask)
        offsets = np.concatenate([[0], np.cumsum(counts.cpu().numpy())]).astype(np.int64)
        h_out, x_out = _egnn_cpp.egnn_forward(h0.cpu().numpy(), x0.cpu().numpy(), offsets, **self.weights)
        vel = torch.from_numpy(x_out) - x0.cpu()
        return _scatter_output(z.cpu(), mask.cpu(), counts.cpu(), mol.cpu(), vel,
                               torch.from_numpy(h_out[:, :-1])).to(z.device)


def _ragged(z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> tuple:
    """Padded batch -> ragged atoms: (mask, counts, h0 = [features, t], x0, per-atom
    molecule start and count, molecule index)."""
    b, n, _ = z.shape
    mask = node_mask[..., 0].bool()
    counts = mask.sum(dim=1)
    zr = z[mask].float()
    t_atoms = torch.as_tensor(t, dtype=torch.float32, device=z.device).reshape(-1, 1).expand(b, 1)
    t_atoms = t_atoms[:, None, :].expand(b, n, 1)[mask]
    mol = torch.repeat_interleave(torch.arange(b, device=z.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    h0 = torch.cat([zr[:, 3:], t_atoms], dim=1).contiguous()
    return mask, counts, h0, zr[:, :3].contiguous(), mol, starts


def _scatter_output(z: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor, mol: torch.Tensor,
                    vel: torch.Tensor, h_out: torch.Tensor) -> torch.Tensor:
    """Centre the velocity per molecule and scatter [vel, h_out] back to the padded layout."""
    b = z.shape[0]
    mean = torch.zeros((b, 3), dtype=vel.dtype, device=vel.device).index_add_(0, mol, vel)
    vel = vel - (mean / counts.clamp(min=1)[:, None].to(vel.dtype))[mol]
    out = torch.zeros_like(z)
    out[mask] = torch.cat([vel, h_out], dim=1).to(z.dtype)
    return out


class TritonNetwork:
    """eps_hat(z, t) with the per-pair work in Triton kernels and per-node GEMMs in torch.

    ``allow_tf32`` (opt-in) uses TF32 tensor cores for the pair products on GPUs.
    """

    def __init__(self, dynamics: EGNNDynamics, allow_tf32: bool = False) -> None:
        if not dynamics.condition_time:
            raise ValueError("the fused kernels need condition_time=True (every published EDM model)")
        device = next(dynamics.parameters()).device
        w = pack_egnn_weights(dynamics)
        self.allow_tf32 = allow_tf32
        self.w = {k: (torch.as_tensor(v, device=device) if isinstance(v, np.ndarray) else
                      [torch.as_tensor(a, device=device) for a in v] if isinstance(v, list) else v)
                  for k, v in w.items()}

    def __call__(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        from kernels.egnn_triton import egnn_coord, egnn_message

        w = self.w
        mask, counts, h0, x0, mol, starts = _ragged(z, t, node_mask)
        start = starts[mol].to(torch.int64).contiguous()
        count = counts[mol].to(torch.int64).contiguous()
        max_atoms = int(counts.max()) if len(counts) else 1
        silu = torch.nn.functional.silu
        h = h0 @ w["emb_w_t"] + w["emb_b"]
        x = x0
        k = 0
        for layer in range(w["n_layers"]):
            for _ in range(w["inv_sublayers"]):
                m, v = w["gcl"][6 * k:6 * k + 6], w["gcl_vec"][8 * k:8 * k + 8]
                P = (h @ m[0] + v[2]).contiguous()
                Q = (h @ m[1]).contiguous()
                agg = egnn_message(P, Q, x, x0, start, count, v[0], v[1], m[2], v[3], v[4], v[5],
                                   w["normalization_factor"], max_atoms, self.allow_tf32)
                h = h + silu(h @ m[3] + agg @ m[4] + v[6]) @ m[5] + v[7]
                k += 1
            m, v = w["coord"][3 * layer:3 * layer + 3], w["coord_vec"][5 * layer:5 * layer + 5]
            P = (h @ m[0] + v[2]).contiguous()
            Q = (h @ m[1]).contiguous()
            x = x + egnn_coord(P, Q, x, x0, start, count, v[0], v[1], m[2], v[3], v[4], w["coords_range"],
                               w["norm_constant"], w["normalization_factor"], max_atoms, self.allow_tf32)
        h_out = h @ w["out_w_t"] + w["out_b"]
        return _scatter_output(z, mask, counts, mol, x - x0, h_out[:, :-1])


def make_network(denoiser: "EDMDenoiser", backend: str, allow_tf32: bool = False) -> Network:
    """The callable evaluating ``denoiser``'s network with a resolved backend name."""
    dynamics = denoiser.model.dynamics
    if backend == "torch":
        return dynamics
    if backend == "cpp":
        return CppNetwork(dynamics)
    if backend == "triton":
        return TritonNetwork(dynamics, allow_tf32=allow_tf32)
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
