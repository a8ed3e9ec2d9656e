"""The relaxation tasks' rows: statuses, failure isolation, energies and RMSD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cards import LoadedDenoiser
from bench.columns import Col, Status
from bench.tasks.relaxation import (
    GroundReference,
    Start,
    denoiser_starts,
    energy_above_ground,
    output_problem,
    relax_from_starts,
)
from tests.reliability import BAD_OUTPUTS, tally


class ToyRecord:
    """A 1-D harmonic 'molecule': two H atoms; ground state at the MMFF start shifted."""

    def __init__(self, rid: str, stretch: float) -> None:
        self.id, self.n_atoms, self.numbers, self.smiles = rid, 2, np.array([1, 1]), "[H][H]"
        self.ground_positions = np.array([[0.0, 0, 0], [0.74, 0, 0]])
        self.start_positions = np.array([[0.0, 0, 0], [0.74 + stretch, 0, 0]])

    def to_atoms(self, which: str = "start"):
        from ase import Atoms

        pos = self.start_positions if which == "start" else self.ground_positions
        atoms = Atoms("H2", positions=pos)
        atoms.info.update(charge=0, multiplicity=1)
        return atoms


def test_output_problems_are_named():
    assert output_problem(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], 2) is None
    assert "shape" in output_problem(np.zeros((3, 3)), 2)
    assert "NaN or infinite" in output_problem(np.array([[0, 0, 0], [np.nan, 0, 0]]), 2)
    assert "coincident" in output_problem(np.zeros((2, 3)), 2)
    assert "span" in output_problem(np.array([[0, 0, 0], [2e4, 0, 0]]), 2)
    assert "not an array" in output_problem([["a", "b", "c"]], 1)


def test_a_denoiser_returning_the_ground_state_scores_zero_energy_and_no_steps():
    from bench.oracles import get_oracle

    xtb = get_oracle("xtb")
    ground = xtb.relax(ToyRecord("h2", 0.0).to_atoms("ground"), fmax=1e-4).positions_ang
    rec = ToyRecord("h2", 0.3)
    rec.ground_positions = ground
    grounds = [GroundReference(xtb.single_point(rec.to_atoms("ground")).energy_ev, ground, True)]
    starts = {("mmff", None): [Start(rec.start_positions)], ("exact", 0): [Start(ground)],
              ("broken", None): [Start(None, "no output")]}
    energy = energy_above_ground([rec], starts, xtb, grounds).set_index(Col.METHOD)
    assert energy.loc["exact", Col.ENERGY_ABOVE_GROUND] == pytest.approx(0.0, abs=1e-6)
    assert energy.loc["exact", Col.RMSD_ALL] == pytest.approx(0.0, abs=1e-6) and energy.loc["exact", Col.SEED] == 0
    assert energy.loc["mmff", Col.ENERGY_ABOVE_GROUND] > 1.0
    # aligned, each atom of the stretched pair is half the bond-length difference off
    bond = np.linalg.norm(ground[1] - ground[0])
    assert energy.loc["mmff", Col.RMSD_ALL] == pytest.approx(abs(0.74 + 0.3 - bond) / 2, abs=1e-6)
    assert energy.loc["broken", Col.STATUS] == Status.OUTPUT_FAILED
    assert np.isnan(energy.loc["broken", Col.ENERGY_ABOVE_GROUND])
    relax = relax_from_starts([rec], starts, xtb, grounds).set_index(Col.METHOD)
    assert relax.loc["exact", Col.ORACLE_STEPS] == 0 and relax.loc["exact", Col.STATUS] == Status.OK
    assert relax.loc["mmff", Col.ORACLE_STEPS] > 0
    assert relax.loc["broken", Col.STATUS] == Status.OUTPUT_FAILED
    unconverged = relax_from_starts([rec], {("mmff", None): [Start(rec.start_positions)]}, xtb, grounds,
                                    max_steps=1, fmax=1e-6)
    assert unconverged.loc[0, Col.STATUS] == Status.UNCONVERGED and unconverged.loc[0, Col.ORACLE_STEPS] == 1
    failed_ground = [GroundReference(np.nan, None, False, "SCF did not converge")]
    rows = energy_above_ground([rec], starts, xtb, failed_ground)
    assert (rows[Col.STATUS] == Status.REFERENCE_FAILED).all() and "SCF" in rows.loc[0, Col.MESSAGE]


class FlakyDenoiser:
    """Returns the input on most molecules, NaN on 'nan', raises on 'boom', the wrong
    shape on 'wide'; raises for a whole batch that holds 'boom'."""

    def __init__(self) -> None:
        self.calls = []

    def check(self, numbers, positions, name):
        if name == "refused":
            raise ValueError(f"{name}: element not supported")

    def relax(self, molecules, n_steps, names, keep_path=False, **kwargs):
        from types import SimpleNamespace

        self.calls.append(list(names))
        if "boom" in names:
            raise RuntimeError("network exploded")
        out = []
        for (numbers, pos), name in zip(molecules, names):
            if name == "nan":
                pos = np.full_like(pos, np.nan)
            elif name == "wide":
                pos = np.zeros((len(numbers), 4))
            out.append(pos)
        return SimpleNamespace(positions=out, paths=[np.stack([p, p]) for p in out] if keep_path else None)


def test_one_bad_molecule_fails_alone_and_is_named():
    names = ["ok1", "nan", "boom", "wide", "refused", "ok2"]
    records = [ToyRecord(n, 0.1) for n in names]
    den = FlakyDenoiser()
    starts, paths = denoiser_starts(records, LoadedDenoiser.bare(den), n_steps=7, keep_path=True)
    by_name = dict(zip(names, starts))
    assert by_name["ok1"].positions is not None and by_name["ok2"].positions is not None
    assert "NaN" in by_name["nan"].message and "network exploded" in by_name["boom"].message
    assert "shape" in by_name["wide"].message and "element not supported" in by_name["refused"].message
    for name in ("nan", "boom", "wide", "refused"):
        assert by_name[name].positions is None
    assert den.calls[0] == ["ok1", "nan", "boom", "wide", "ok2"]  # one batch first, then one by one
    assert sorted(map(tuple, den.calls[1:])) == [(n,) for n in sorted(["ok1", "nan", "boom", "wide", "ok2"])]
    assert by_name["ok1"].network_evaluations == 8 and by_name["ok1"].start_step == 7
    assert by_name["ok1"].denoiser_s > 0 and by_name["refused"].network_evaluations == 0
    assert paths[names.index("nan")] is None and paths[0].shape == (2, 2, 3)


def outside_denoiser(network):
    from edm_core import EDMConfig, EDMDenoiser

    return EDMDenoiser.from_network(EDMConfig(nf=8, n_layers=1), network, "entry point test:net")


def test_an_outside_network_that_returns_nan_fails_only_those_molecules():
    import torch

    def network(z, t, node_mask):  # NaN for molecules with 3 atoms, zero noise for the others
        out = torch.zeros_like(z)
        out[node_mask[:, :, 0].sum(dim=1) == 3] = float("nan")
        return out

    records = [ToyRecord("two-a", 0.1), ToyRecord("three", 0.1), ToyRecord("two-b", 0.2)]
    records[1].numbers, records[1].n_atoms = np.array([1, 1, 1]), 3
    records[1].start_positions = np.array([[0.0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]])
    starts, _ = denoiser_starts(records, LoadedDenoiser.bare(outside_denoiser(network)), n_steps=3)
    assert starts[0].positions is not None and starts[2].positions is not None
    assert starts[1].positions is None and "NaN or inf in the output" in starts[1].message


@pytest.mark.parametrize(("network", "message"), [
    (lambda z, t, m: z.long(), "expected a float"),
    (lambda z, t, m: None, "output is not an array"),
    (lambda z, t, m: z[..., :3], "output has shape"),
])
def test_an_outside_network_of_the_wrong_shape_or_type_fails_its_molecules(network, message):
    records = [ToyRecord("a", 0.1), ToyRecord("b", 0.2)]
    starts, _ = denoiser_starts(records, LoadedDenoiser.bare(outside_denoiser(network)), n_steps=2)
    for start in starts:
        assert start.positions is None and message in start.message


def test_a_network_wrong_only_for_batches_is_never_broadcast():
    """The first molecule's output for the whole batch (it was broadcast before):
    the batch is refused and each molecule runs alone, as it would by itself."""
    records = [ToyRecord("a", 0.1), ToyRecord("b", 0.3)]
    den = outside_denoiser(lambda z, t, m: z[:1] * 0.1)
    starts, _ = denoiser_starts(records, LoadedDenoiser.bare(den), n_steps=2, seed=4)
    for rec, start in zip(records, starts):
        [alone], _ = denoiser_starts([rec], LoadedDenoiser.bare(den), n_steps=2, seed=4)
        np.testing.assert_allclose(start.positions, alone.positions)


def test_a_network_that_calls_sys_exit_fails_its_molecules_not_the_run():
    import sys

    starts, _ = denoiser_starts([ToyRecord("a", 0.1)], LoadedDenoiser.bare(outside_denoiser(lambda z, t, m: sys.exit(0))),
                                n_steps=2)
    assert starts[0].positions is None and "SystemExit" in starts[0].message


def test_nan_from_our_own_torch_network_fails_the_molecule_never_a_zero_step():
    """Our checkpoints get the same check as outside networks: NaN weights fail
    every molecule (the original EDM would zero the step and report a success)."""
    import torch

    from edm_core import EDMConfig, EDMDenoiser

    den = EDMDenoiser(EDMConfig(nf=8, n_layers=1))
    with torch.no_grad():
        next(den.model.dynamics.parameters()).fill_(float("nan"))
    starts, _ = denoiser_starts([ToyRecord("a", 0.1), ToyRecord("b", 0.2)], LoadedDenoiser.bare(den), n_steps=3)
    assert all(s.positions is None and "NaN or inf in the output" in s.message for s in starts)
    tally(BAD_OUTPUTS, 2)


def toy_of_size(n_atoms: int) -> ToyRecord:
    """A toy record of ``n_atoms`` H atoms on a line (its atom count identifies it in any batch)."""
    record = ToyRecord(f"h{n_atoms}", 0.1)
    record.numbers, record.n_atoms = np.ones(n_atoms, dtype=int), n_atoms
    record.start_positions = np.array([[0.9 * i, 0.1 * i * i, 0.0] for i in range(n_atoms)])
    return record


@st.composite
def misbehaving_networks(draw):
    """A network output for batches of H2, H3 and H4: zero noise with NaN or inf on the
    atoms (real or padding) of chosen molecules, or a wrong width, batch size or dtype,
    or a nested list (an array-like, accepted), or None. Returns (network, atom counts
    of the molecules that must fail)."""
    import torch

    kind = draw(st.sampled_from(["poison", "width", "batch", "int", "list", "none"]))
    if kind == "poison":
        chosen = draw(st.sets(st.sampled_from([2, 3, 4])))
        value = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
        padding_too = draw(st.booleans())

        def network(z, t, mask):
            out = torch.zeros_like(z)
            sizes = mask[:, :, 0].sum(dim=1).long().tolist()
            for i, size in enumerate(sizes):
                if size in chosen:
                    out[i, size - 1, draw_column] = value
                if padding_too and size < z.shape[1]:
                    out[i, size:, :] = value  # poison on padding atoms is ignored
            return out

        draw_column = draw(st.integers(0, 3))
        return network, chosen
    broken = {"width": lambda z, t, m: z[..., :-1], "batch": lambda z, t, m: z[:-1] if len(z) > 1 else z[:0],
              "int": lambda z, t, m: z.long(), "list": lambda z, t, m: torch.zeros_like(z).tolist(),
              "none": lambda z, t, m: None}[kind]
    return broken, (set() if kind == "list" else {2, 3, 4})


@settings(max_examples=25, deadline=None)
@given(case=misbehaving_networks())
def test_whatever_a_network_returns_only_its_bad_molecules_fail(case):
    network, must_fail = case
    records = [toy_of_size(n) for n in (2, 3, 4)]
    starts, _ = denoiser_starts(records, LoadedDenoiser.bare(outside_denoiser(network)), n_steps=2, seed=1)
    failed = {r.n_atoms for r, s in zip(records, starts) if s.positions is None}
    assert failed == must_fail
    for record, start in zip(records, starts):
        assert bool(start.message) == (start.positions is None), record.id
    tally(BAD_OUTPUTS)
