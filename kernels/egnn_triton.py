"""Triton kernels for the per-pair work of an EDM EGNN block (GPU; tested on the
CPU under ``TRITON_INTERPRET=1``).

Design
------
The first linear layer of each edge MLP is split into per-node products
``P = h W_a^T + b`` and ``Q = h W_b^T`` (plain GEMMs, done by torch), so for a
pair (i, j) the hidden row is ``e_ij = silu(P_i + Q_j + r_ij w_r + d0_ij w_d)``.
One program owns one receiver atom i of a ragged batch (molecules packed
without padding). It walks over its molecule's senders j in tiles of
``BLOCK_J``, builds the ``BLOCK_J x NF`` hidden tile in registers, runs the
second layer with ``tl.dot``, and reduces over j on the fly:

* ``_egnn_message_kernel``: ``agg_i = sum_j sigmoid(w_att . m_ij + b_att) m_ij / norm``
  with ``m_ij = silu(e_ij W2^T + b2)`` (the GCL message, attention-gated);
* ``_egnn_coord_kernel``: ``dx_i = sum_j u_ij tanh(w5 . silu(e_ij W6^T + b6)) range / norm``
  with ``u_ij = (x_i - x_j) / (sqrt(r_ij + 1e-8) + norm_constant)``.

Distances ``r_ij`` (block input) and ``d0_ij`` (network input) are recomputed
from the coordinates in the kernel, so no per-pair tensor is ever written to
memory.

Limits: the whole ``NF x NF`` second-layer weight is held per program; that is
register-friendly up to NF = 128 and spills at NF = 256 on current GPUs (a
K-tiled variant is the next step). Molecules up to any size (j is tiled).
float32 with IEEE dot products by default; ``allow_tf32=True`` is opt-in.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _pair_hidden(p_i, Q, start, j, jmask, f, fmask, r, d0, wr, wd, NF: tl.constexpr):
    """e = silu(P_i + Q_j + r w_r + d0 w_d) for a tile of senders j (BLOCK_J x BLOCK_F)."""
    q = tl.load(Q + (start + j)[:, None] * NF + f[None, :], mask=jmask[:, None] & fmask[None, :], other=0.0)
    e = p_i[None, :] + q + r[:, None] * wr[None, :] + d0[:, None] * wd[None, :]
    return e * tl.sigmoid(e)


@triton.jit
def _pair_distances(X, X0, a, start, j, jmask):
    """(dx, dy, dz, r) at the block input and d0 at the network input for pairs (a, j)."""
    xi0, xi1, xi2 = tl.load(X + 3 * a), tl.load(X + 3 * a + 1), tl.load(X + 3 * a + 2)
    xj0 = tl.load(X + 3 * (start + j), mask=jmask, other=0.0)
    xj1 = tl.load(X + 3 * (start + j) + 1, mask=jmask, other=0.0)
    xj2 = tl.load(X + 3 * (start + j) + 2, mask=jmask, other=0.0)
    dx, dy, dz = xi0 - xj0, xi1 - xj1, xi2 - xj2
    yi0, yi1, yi2 = tl.load(X0 + 3 * a), tl.load(X0 + 3 * a + 1), tl.load(X0 + 3 * a + 2)
    yj0 = tl.load(X0 + 3 * (start + j), mask=jmask, other=0.0)
    yj1 = tl.load(X0 + 3 * (start + j) + 1, mask=jmask, other=0.0)
    yj2 = tl.load(X0 + 3 * (start + j) + 2, mask=jmask, other=0.0)
    d0 = (yi0 - yj0) * (yi0 - yj0) + (yi1 - yj1) * (yi1 - yj1) + (yi2 - yj2) * (yi2 - yj2)
    return dx, dy, dz, dx * dx + dy * dy + dz * dz, d0


@triton.jit
def _receiver_setup(P, WR, WD, B, WT, a, NF: tl.constexpr, BLOCK_F: tl.constexpr):
    """Feature lanes, P_i, the split first-layer vectors, and the second layer (W^T, b)."""
    f = tl.arange(0, BLOCK_F)
    fmask = f < NF
    p_i = tl.load(P + a * NF + f, mask=fmask, other=0.0)
    wr = tl.load(WR + f, mask=fmask, other=0.0)
    wd = tl.load(WD + f, mask=fmask, other=0.0)
    b = tl.load(B + f, mask=fmask, other=0.0)
    w = tl.load(WT + f[:, None] * NF + f[None, :], mask=fmask[:, None] & fmask[None, :], other=0.0)
    return f, fmask, p_i, wr, wd, b, w


@triton.jit
def _second_layer(e, w, b, ALLOW_TF32: tl.constexpr):
    """silu(e W^T + b) with IEEE float32 products, or TF32 when allowed (opt-in)."""
    if ALLOW_TF32:
        m = tl.dot(e, w, input_precision="tf32") + b[None, :]
    else:
        m = tl.dot(e, w, input_precision="ieee") + b[None, :]
    return m * tl.sigmoid(m)


@triton.jit
def _egnn_message_kernel(P, Q, X, X0, START, COUNT, WR, WD, W2T, B2, WA, BA, AGG, inv_norm,
                         NF: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_J: tl.constexpr,
                         ALLOW_TF32: tl.constexpr):
    """agg_i = sum_{j != i} sigmoid(w_a . m_ij + b_a) m_ij / norm, m_ij = silu(e_ij W2^T + b2)."""
    a = tl.program_id(0)
    start = tl.load(START + a)
    n = tl.load(COUNT + a)
    f, fmask, p_i, wr, wd, b2, w2 = _receiver_setup(P, WR, WD, B2, W2T, a, NF, BLOCK_F)
    wa = tl.load(WA + f, mask=fmask, other=0.0)
    ba = tl.load(BA)
    acc = tl.zeros([BLOCK_F], dtype=tl.float32)
    for j0 in range(0, n, BLOCK_J):
        j = j0 + tl.arange(0, BLOCK_J)
        jmask = (j < n) & (start + j != a)
        _, _, _, r, d0 = _pair_distances(X, X0, a, start, j, jmask)
        m = _second_layer(_pair_hidden(p_i, Q, start, j, jmask, f, fmask, r, d0, wr, wd, NF), w2, b2, ALLOW_TF32)
        gate = tl.sigmoid(tl.sum(m * wa[None, :], axis=1) + ba)
        gate = tl.where(jmask, gate, 0.0) * inv_norm
        acc += tl.sum(m * gate[:, None], axis=0)
    tl.store(AGG + a * NF + f, acc, mask=fmask)


@triton.jit
def _egnn_coord_kernel(P, Q, X, X0, START, COUNT, WR, WD, W6T, B6, W5, DX, coords_range, norm_constant,
                       inv_norm, NF: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_J: tl.constexpr,
                       ALLOW_TF32: tl.constexpr):
    """dx_i = sum_{j != i} u_ij tanh(w5 . silu(e_ij W6^T + b6)) coords_range / norm."""
    a = tl.program_id(0)
    start = tl.load(START + a)
    n = tl.load(COUNT + a)
    f, fmask, p_i, wr, wd, b6, w6 = _receiver_setup(P, WR, WD, B6, W6T, a, NF, BLOCK_F)
    w5 = tl.load(W5 + f, mask=fmask, other=0.0)
    acc0 = tl.zeros([BLOCK_J], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_J], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_J], dtype=tl.float32)
    for j0 in range(0, n, BLOCK_J):
        j = j0 + tl.arange(0, BLOCK_J)
        jmask = (j < n) & (start + j != a)
        dx, dy, dz, r, d0 = _pair_distances(X, X0, a, start, j, jmask)
        m = _second_layer(_pair_hidden(p_i, Q, start, j, jmask, f, fmask, r, d0, wr, wd, NF), w6, b6, ALLOW_TF32)
        s = tl.sum(m * w5[None, :], axis=1)
        s = (2.0 * tl.sigmoid(2.0 * s) - 1.0) * coords_range * inv_norm  # tanh
        scale = tl.where(jmask, s / (tl.sqrt(r + 1e-8) + norm_constant), 0.0)
        acc0 += dx * scale
        acc1 += dy * scale
        acc2 += dz * scale
    tl.store(DX + 3 * a, tl.sum(acc0, axis=0))
    tl.store(DX + 3 * a + 1, tl.sum(acc1, axis=0))
    tl.store(DX + 3 * a + 2, tl.sum(acc2, axis=0))


def _check(tensors: dict[str, torch.Tensor], n_atoms: int, nf: int) -> None:
    for name, t in tensors.items():
        if t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous float32 tensor, got {t.dtype}")
    if tensors["P"].shape != (n_atoms, nf) or tensors["Q"].shape != (n_atoms, nf):
        raise ValueError(f"P and Q must have shape ({n_atoms}, {nf})")


def _blocks(nf: int, max_atoms: int) -> tuple[int, int]:
    block_f = max(16, triton.next_power_of_2(nf))
    block_j = min(64, max(16, triton.next_power_of_2(max_atoms)))
    return block_f, block_j


def egnn_message(P: torch.Tensor, Q: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, start: torch.Tensor,
                 count: torch.Tensor, w_r: torch.Tensor, w_d: torch.Tensor, w2_t: torch.Tensor, b2: torch.Tensor,
                 w_att: torch.Tensor, b_att: torch.Tensor, normalization_factor: float, max_atoms: int,
                 allow_tf32: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """Attention-gated, summed GCL messages per atom: (n_atoms, nf).

    ``start[a]`` / ``count[a]``: first atom and atom count of atom a's molecule.
    ``out``: an (n_atoms, nf) buffer to write into (every element is written).
    """
    n_atoms, nf = P.shape
    _check({"P": P, "Q": Q, "x": x, "x0": x0, "w2_t": w2_t}, n_atoms, nf)
    agg = torch.empty_like(P) if out is None else out
    block_f, block_j = _blocks(nf, max_atoms)
    if n_atoms:
        _egnn_message_kernel[(n_atoms,)](P, Q, x, x0, start, count, w_r, w_d, w2_t, b2, w_att, b_att, agg,
                                         1.0 / normalization_factor, NF=nf, BLOCK_F=block_f, BLOCK_J=block_j,
                                         ALLOW_TF32=allow_tf32)
    return agg


def egnn_coord(P: torch.Tensor, Q: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, start: torch.Tensor,
               count: torch.Tensor, w_r: torch.Tensor, w_d: torch.Tensor, w6_t: torch.Tensor, b6: torch.Tensor,
               w5: torch.Tensor, coords_range: float, norm_constant: float, normalization_factor: float,
               max_atoms: int, allow_tf32: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """Coordinate displacement per atom: (n_atoms, 3); ``out`` as in :func:`egnn_message`."""
    n_atoms, nf = P.shape
    _check({"P": P, "Q": Q, "x": x, "x0": x0, "w6_t": w6_t}, n_atoms, nf)
    dx = torch.empty((n_atoms, 3), dtype=torch.float32, device=P.device) if out is None else out
    block_f, block_j = _blocks(nf, max_atoms)
    if n_atoms:
        _egnn_coord_kernel[(n_atoms,)](P, Q, x, x0, start, count, w_r, w_d, w6_t, b6, w5, dx, coords_range,
                                       norm_constant, 1.0 / normalization_factor, NF=nf, BLOCK_F=block_f,
                                       BLOCK_J=block_j, ALLOW_TF32=allow_tf32)
    return dx
