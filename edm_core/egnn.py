"""The E(n) equivariant graph network of EDM (reference implementation, PyTorch).

Satorras, Hoogeboom and Welling (2021), with the EDM modifications of Hoogeboom
et al. (2022): attention-gated messages, normalised coordinate directions and
``tanh``-bounded coordinate updates. Molecules are fully connected: every
ordered pair ``(i, j)`` of real atoms with ``i != j`` is an edge, messages flow
``j -> i`` and are summed over ``j``. This module works on padded batches with
a node mask, as the original, in a dense ``(B, N, N, .)`` pair layout.

Module and parameter names are those of the original checkpoints
(``e_block_{i}.gcl_{j}.edge_mlp.0.weight`` ...), so a state dict loads as is.
The compiled backends (``kernels/``) must reproduce exactly this function.

Shapes: ``h`` (B, N, nf), ``x`` (B, N, 3) [normalised units = Angstrom],
``node_mask`` (B, N, 1), ``edge_mask`` (B, N, N, 1).
"""

from __future__ import annotations

import torch
from torch import nn


def pair_geometry(x: torch.Tensor, norm_constant: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances ``r_ij = |x_i - x_j|^2`` (B, N, N, 1) and unit-ish
    directions ``(x_i - x_j) / (sqrt(r_ij + 1e-8) + norm_constant)`` (B, N, N, 3)."""
    diff = x[:, :, None, :] - x[:, None, :, :]
    radial = (diff**2).sum(-1, keepdim=True)
    return radial, diff / (torch.sqrt(radial + 1e-8) + norm_constant)


def pair_concat(h: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
    """``[h_i, h_j, e_ij]`` for every pair: (B, N, N, 2 nf + n_edge_attr)."""
    b, n, f = h.shape
    return torch.cat([h[:, :, None, :].expand(b, n, n, f), h[:, None, :, :].expand(b, n, n, f), edge_attr], dim=-1)


class GCL(nn.Module):
    """One invariant sublayer: gated messages, sum aggregation, residual node MLP."""

    def __init__(self, nf: int, edge_attr_nf: int, normalization_factor: float, attention: bool = True) -> None:
        super().__init__()
        self.normalization_factor = normalization_factor
        self.edge_mlp = nn.Sequential(nn.Linear(2 * nf + edge_attr_nf, nf), nn.SiLU(), nn.Linear(nf, nf), nn.SiLU())
        self.node_mlp = nn.Sequential(nn.Linear(2 * nf, nf), nn.SiLU(), nn.Linear(nf, nf))
        self.attention = attention
        if attention:
            self.att_mlp = nn.Sequential(nn.Linear(nf, 1), nn.Sigmoid())

    def forward(self, h: torch.Tensor, edge_attr: torch.Tensor, edge_mask: torch.Tensor,
                node_mask: torch.Tensor) -> torch.Tensor:
        m = self.edge_mlp(pair_concat(h, edge_attr))
        if self.attention:
            m = m * self.att_mlp(m)
        agg = (m * edge_mask).sum(dim=2) / self.normalization_factor
        h = h + self.node_mlp(torch.cat([h, agg], dim=-1))
        return h * node_mask


class EquivariantUpdate(nn.Module):
    """Coordinate update: ``x_i += sum_j u_ij tanh(s_ij) coords_range / normalization_factor``."""

    def __init__(self, nf: int, edge_attr_nf: int, normalization_factor: float, coords_range: float,
                 tanh: bool = True) -> None:
        super().__init__()
        last = nn.Linear(nf, 1, bias=False)
        nn.init.xavier_uniform_(last.weight, gain=0.001)
        self.coord_mlp = nn.Sequential(nn.Linear(2 * nf + edge_attr_nf, nf), nn.SiLU(), nn.Linear(nf, nf), nn.SiLU(),
                                       last)
        self.tanh = tanh
        self.coords_range = coords_range
        self.normalization_factor = normalization_factor

    def forward(self, h: torch.Tensor, x: torch.Tensor, direction: torch.Tensor, edge_attr: torch.Tensor,
                edge_mask: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        s = self.coord_mlp(pair_concat(h, edge_attr))
        if self.tanh:
            s = torch.tanh(s) * self.coords_range
        x = x + (direction * s * edge_mask).sum(dim=2) / self.normalization_factor
        return x * node_mask


class EquivariantBlock(nn.Module):
    """``inv_sublayers`` GCLs then one coordinate update, with distances from the block's input x."""

    def __init__(self, nf: int, inv_sublayers: int, normalization_factor: float, coords_range: float,
                 norm_constant: float, attention: bool, tanh: bool, edge_attr_nf: int = 2) -> None:
        super().__init__()
        self.inv_sublayers = inv_sublayers
        self.norm_constant = norm_constant
        for j in range(inv_sublayers):
            self.add_module(f"gcl_{j}", GCL(nf, edge_attr_nf, normalization_factor, attention))
        self.gcl_equiv = EquivariantUpdate(nf, edge_attr_nf, normalization_factor, coords_range, tanh)

    def forward(self, h: torch.Tensor, x: torch.Tensor, d0: torch.Tensor, edge_mask: torch.Tensor,
                node_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        radial, direction = pair_geometry(x, self.norm_constant)
        edge_attr = torch.cat([radial, d0], dim=-1)
        for j in range(self.inv_sublayers):
            h = self._modules[f"gcl_{j}"](h, edge_attr, edge_mask, node_mask)
        x = self.gcl_equiv(h, x, direction, edge_attr, edge_mask, node_mask)
        return h * node_mask, x


class EGNN(nn.Module):
    """Embedding, ``n_layers`` equivariant blocks, output embedding.

    Parameters
    ----------
    in_node_nf : int
        Node input features F (atom types + charges + time [+ context]).
    nf : int
        Hidden size (256 in EDM).
    n_layers : int
        Equivariant blocks (9 for QM9, 4 for GEOM).
    inv_sublayers : int
        GCLs per block (1).
    coords_range : float
        Bound of each pairwise coordinate weight (15, passed unchanged to every block).
    """

    def __init__(self, in_node_nf: int, nf: int = 256, n_layers: int = 9, inv_sublayers: int = 1,
                 attention: bool = True, tanh: bool = True, norm_constant: float = 1.0,
                 normalization_factor: float = 1.0, coords_range: float = 15.0) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.embedding = nn.Linear(in_node_nf, nf)
        self.embedding_out = nn.Linear(nf, in_node_nf)
        for i in range(n_layers):
            self.add_module(f"e_block_{i}", EquivariantBlock(nf, inv_sublayers, normalization_factor, coords_range,
                                                             norm_constant, attention, tanh))

    def forward(self, h: torch.Tensor, x: torch.Tensor, node_mask: torch.Tensor,
                edge_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d0, _ = pair_geometry(x, 1.0)
        h = self.embedding(h)
        for i in range(self.n_layers):
            h, x = self._modules[f"e_block_{i}"](h, x, d0, edge_mask, node_mask)
        return self.embedding_out(h) * node_mask, x
