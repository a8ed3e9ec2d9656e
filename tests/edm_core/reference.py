"""An independent float64 implementation of EDM's EGNN dynamics (one molecule,
no padding, explicit loops over atom pairs), used to check edm_core's network.

It reads the weights by their original state-dict names and shares no code with
edm_core."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form


def silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


def linear(w: dict, prefix: str, x: np.ndarray, bias: bool = True) -> np.ndarray:
    out = x @ w[prefix + ".weight"].T
    return out + w[prefix + ".bias"] if bias else out


def eps_hat_reference(weights: dict, z: np.ndarray, t: float, n_layers: int, inv_sublayers: int = 1,
                      coords_range: float = 15.0, norm_constant: float = 1.0,
                      normalization_factor: float = 1.0) -> np.ndarray:
    """eps_hat for one molecule: z (n, 3 + F') float64, t in [0, 1]."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    n = z.shape[0]
    x0 = z[:, :3].copy()
    h = np.concatenate([z[:, 3:], np.full((n, 1), t)], axis=1)
    d0 = np.array([[np.sum((x0[i] - x0[j]) ** 2) for j in range(n)] for i in range(n)])
    h = linear(w, "dynamics.egnn.embedding", h)
    x = x0.copy()
    for b in range(n_layers):
        p = f"dynamics.egnn.e_block_{b}."
        r = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(n)] for i in range(n)])
        for s in range(inv_sublayers):
            g = p + f"gcl_{s}."
            agg = np.zeros_like(h)
            for i in range(n):
                for j in range(n):
                    if i == j:
                        continue
                    e = np.concatenate([h[i], h[j], [r[i, j], d0[i, j]]])
                    m = silu(linear(w, g + "edge_mlp.2", silu(linear(w, g + "edge_mlp.0", e))))
                    a = sigmoid(linear(w, g + "att_mlp.0", m))
                    agg[i] += m * a / normalization_factor
            h = h + linear(w, g + "node_mlp.2", silu(linear(w, g + "node_mlp.0", np.concatenate([h, agg], axis=1))))
        c = p + "gcl_equiv."
        x_new = x.copy()
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                e = np.concatenate([h[i], h[j], [r[i, j], d0[i, j]]])
                s_ij = linear(w, c + "coord_mlp.4",
                              silu(linear(w, c + "coord_mlp.2", silu(linear(w, c + "coord_mlp.0", e)))), bias=False)
                u = (x[i] - x[j]) / (np.sqrt(r[i, j] + 1e-8) + norm_constant)
                x_new[i] += u * np.tanh(s_ij[0]) * coords_range / normalization_factor
        x = x_new
    h_out = linear(w, "dynamics.egnn.embedding_out", h)[:, :-1]
    vel = x - x0
    vel -= vel.mean(axis=0)
    return np.concatenate([vel, h_out], axis=1)
