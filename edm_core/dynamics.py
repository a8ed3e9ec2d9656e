"""The denoising network phi(z_t, t): EGNN plus EDM's input/output conventions.

Input ``z`` (B, N, 3 + K + c) in normalised space and ``t`` (B, 1) in [0, 1];
output ``eps_hat`` of the same shape: a centred position block (the predicted
noise on coordinates, from the EGNN's coordinate displacement) and the feature
block from the EGNN's output embedding, time column dropped.
"""

from __future__ import annotations


import torch
from torch import nn

from edm_core.egnn import EGNN


def edge_mask_from(node_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, N, 1) mask of edges: pairs of real atoms with ``i != j``."""
    m = node_mask[..., 0]
    eye = torch.eye(m.shape[1], dtype=m.dtype, device=m.device)
    return (m[:, :, None] * m[:, None, :] * (1 - eye))[..., None]


def remove_mean(x: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
    """Subtract each molecule's mean position over its real atoms (padding stays 0)."""
    n = node_mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (x * node_mask).sum(dim=1, keepdim=True) / n
    return (x - mean) * node_mask


class EGNNDynamics(nn.Module):
    """EDM's ``egnn_dynamics``: state-dict prefix ``egnn.``.

    Parameters
    ----------
    in_node_nf : int
        K + c, the atom-type and charge columns of z.
    condition_time : bool
        Append t as a node feature (True in every published model).
    **egnn_kwargs
        Passed to :class:`~edm_core.egnn.EGNN`.
    """

    def __init__(self, in_node_nf: int, condition_time: bool = True, **egnn_kwargs: object) -> None:
        super().__init__()
        self.in_node_nf = in_node_nf
        self.condition_time = condition_time
        self.egnn = EGNN(in_node_nf + int(condition_time), **egnn_kwargs)

    def forward(self, z: torch.Tensor, t: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """eps_hat = phi(z, t) on a padded batch.

        Parameters
        ----------
        z : (B, N, 3 + K + c) tensor
        t : (B, 1) or (B,) or scalar tensor, in [0, 1]
        node_mask : (B, N, 1) tensor of 0/1
        """
        b, n, _ = z.shape
        z = z * node_mask
        x, h = z[..., :3], z[..., 3:]
        if self.condition_time:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device).reshape(-1, 1)
            h = torch.cat([h, t.expand(b, 1)[:, None, :].expand(b, n, 1)], dim=-1)
        h_out, x_out = self.egnn(h, x, node_mask, edge_mask_from(node_mask))
        vel = (x_out - x) * node_mask
        if self.condition_time:
            h_out = h_out[..., :-1]
        return torch.cat([remove_mean(vel, node_mask), h_out * node_mask], dim=-1)
