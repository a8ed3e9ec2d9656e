"""Start a model with another atom decoder from a trained one (fine-tuning across datasets).

An EDM network sees the atom types only through its input embedding (one column per
element, plus a charge column when the model was trained with charges, plus the time)
and writes them only through its output embedding (one row per feature). Everything
between, the equivariant blocks that hold what the model knows about geometry, does
not depend on the decoder. So a QM9 model (H C N O F, with charges) can start a
DRUGS model (EDM's GEOM decoder: 16 elements, no charges) with all of its blocks:

- an element both decoders hold keeps its column, with the charge column folded into
  it (the charge feature of an element is always its atomic number, so the embedding
  of every such molecule is unchanged);
- an element new to the model starts as a copy of a *donor*, the source element of
  the nearest periodic group (S from O, Cl Br I from F, P from N, Si from C), so that
  at the start it is seen as its lighter analogue and training separates the two.

For molecules made only of the source's elements, the new model predicts exactly the
source's position noise, which the tests check.
"""

from __future__ import annotations

import dataclasses

import torch
from ase.data import atomic_numbers

from edm_core.model import EDMConfig, EDMDenoiser

#: Periodic group of each element an EDM decoder holds (12 for Hg, the d-block metal
#: of GEOM's decoder).
GROUP: dict[str, int] = {"H": 1, "B": 13, "Al": 13, "C": 14, "Si": 14, "N": 15, "P": 15, "As": 15, "Bi": 15,
                         "O": 16, "S": 16, "F": 17, "Cl": 17, "Br": 17, "I": 17, "Hg": 12}


def donor_element(element: str, available: tuple[str, ...]) -> str:
    """The element of ``available`` whose column a new ``element`` starts from: the same
    element, else the lightest of the same periodic group, else of the nearest group
    (ties: the lighter group), hydrogen only for hydrogen."""
    if element in available:
        return element
    if element not in GROUP:
        raise ValueError(f"no periodic group known for element {element!r}")
    heavy = [e for e in available if e != "H" and e in GROUP] or list(available)
    return min(heavy, key=lambda e: (abs(GROUP[e] - GROUP[element]), GROUP[e], atomic_numbers[e]))


def with_atom_decoder(source: EDMDenoiser, config: EDMConfig) -> tuple[EDMDenoiser, dict[str, str]]:
    """A new model with ``config``'s atom decoder and charges, every other weight from ``source``.

    Parameters
    ----------
    source : EDMDenoiser
        A trained model (its network sizes, schedule and normalisation are kept).
    config : EDMConfig
        Gives the new ``dataset``, ``atom_decoder``, ``include_charges``,
        ``max_n_nodes``, ``max_diameter`` and ``n_nodes_histogram``; its other options
        are ignored.

    Returns
    -------
    (EDMDenoiser, dict)
        The new model (in training mode, on ``source``'s device) and, for each element
        new to it, the source element it started from.
    """
    target_config = dataclasses.replace(
        source.config, dataset=config.dataset, atom_decoder=tuple(config.atom_decoder),
        include_charges=config.include_charges, max_n_nodes=config.max_n_nodes, max_diameter=config.max_diameter,
        n_nodes_histogram=dict(config.n_nodes_histogram))
    target = EDMDenoiser(target_config).to(next(source.parameters()).device)
    src_decoder = tuple(source.config.atom_decoder)
    donors = {e: donor_element(e, src_decoder) for e in target_config.atom_decoder}
    state = {k: v.clone() for k, v in source.model.state_dict().items()}
    prefix = "dynamics.egnn."
    w_in, w_out, b_out = (state.pop(prefix + name) for name in
                          ("embedding.weight", "embedding_out.weight", "embedding_out.bias"))
    k_src, k_new = len(src_decoder), len(target_config.atom_decoder)
    # The normalised features: one_hot / f_h, charge (atomic number) / f_c.
    f_h, f_c = source.config.normalize_factors[1], source.config.normalize_factors[2]
    new_in = torch.zeros((w_in.shape[0], k_new + int(target_config.include_charges) + (w_in.shape[1] - k_src
                          - int(source.config.include_charges))), dtype=w_in.dtype, device=w_in.device)
    new_out = torch.zeros((new_in.shape[1], w_out.shape[1]), dtype=w_out.dtype, device=w_out.device)
    new_bias = torch.zeros(new_in.shape[1], dtype=b_out.dtype, device=b_out.device)
    for j, element in enumerate(target_config.atom_decoder):
        i = src_decoder.index(donors[element])
        new_in[:, j] = w_in[:, i]
        if source.config.include_charges and not target_config.include_charges:
            new_in[:, j] += w_in[:, k_src] * atomic_numbers[donors[element]] * f_h / f_c
        new_out[j], new_bias[j] = w_out[i], b_out[i]
    if target_config.include_charges:  # a charge column: the source's, or a fresh zero one
        if source.config.include_charges:
            new_in[:, k_new] = w_in[:, k_src]
            new_out[k_new], new_bias[k_new] = w_out[k_src], b_out[k_src]
    tail_src = k_src + int(source.config.include_charges)  # the time column, when present
    tail_new = k_new + int(target_config.include_charges)
    new_in[:, tail_new:] = w_in[:, tail_src:]
    new_out[tail_new:], new_bias[tail_new:] = w_out[tail_src:], b_out[tail_src:]
    state.update({prefix + "embedding.weight": new_in, prefix + "embedding_out.weight": new_out,
                  prefix + "embedding_out.bias": new_bias})
    target.model.load_state_dict(state, strict=True)
    return target, {e: d for e, d in donors.items() if e != d}
