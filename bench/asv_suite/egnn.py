"""Speed and memory of the denoiser network per backend (asv ``time_*``, ``peakmem_*``).

Parameterised by backend and size, so one asv plot compares the backends at QM9
size (a ragged batch of 16 shipped QM9 test molecules) and DRUGS size (4 shipped
drugs-xtb test molecules). Inputs are built in the untimed ``setup``.
"""

from __future__ import annotations

from ._inputs import BACKENDS, SIZES, evaluate, molecules, network, network_inputs


class EGNNLayer:
    """One fused equivariant block (EDM's nf 256 block, with the embeddings around it)."""

    params = (BACKENDS, SIZES)
    param_names = ["backend", "size"]
    timeout = 300

    def setup(self, backend: str, size: str) -> None:
        self.model = network(backend, n_layers=1)
        self.args = network_inputs(self.model, molecules(size))

    def time_egnn_layer(self, backend: str, size: str) -> None:
        evaluate(self.model, *self.args)


class EGNNNetwork:
    """The whole network (EDM's QM9 network: nf 256, 9 blocks)."""

    params = (BACKENDS, SIZES)
    param_names = ["backend", "size"]
    timeout = 300

    def setup(self, backend: str, size: str) -> None:
        self.model = network(backend)
        self.args = network_inputs(self.model, molecules(size))

    def time_egnn_network(self, backend: str, size: str) -> None:
        evaluate(self.model, *self.args)


class EGNNNetworkMemory:
    """Peak resident memory of a process evaluating the whole network at DRUGS size
    (the padded torch reference holds B x N x N x nf pair tensors; the fused
    backends reduce pairs on the fly)."""

    params = (BACKENDS,)
    param_names = ["backend"]
    timeout = 300

    def setup(self, backend: str) -> None:
        self.model = network(backend)
        self.args = network_inputs(self.model, molecules("drugs"))

    def peakmem_egnn_network(self, backend: str) -> None:
        evaluate(self.model, *self.args)
