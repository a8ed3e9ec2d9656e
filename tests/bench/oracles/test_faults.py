"""Failing oracles: injected faults are recorded as failures, never as
numbers, lost workers are retried a bounded number of times, and the rest of
the batch completes. Charge and multiplicity reach the calculators, or the
molecule is refused with its name and the reason."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms

from bench.errors import UnsupportedMoleculeError
from bench.oracles import get_oracle
from bench.parallel import WORKER_RETRIES
from bench.parallel import make_executor
from bench.store import ResultStore
from tests.bench.oracles.faults import FaultOracle, charge_offset_ev, with_fault
from tests.conftest import molecule_from_smiles
from tests.reliability import FAULTS, KILLS, LOST, tally


def shifted(atoms: Atoms, rng: np.random.Generator, scale: float = 0.05) -> Atoms:
    """A distinct geometry (its own cache key) near ``atoms``."""
    out = atoms.copy()
    out.positions += rng.normal(scale=scale, size=out.positions.shape)
    return out


#: (fault, evaluation it strikes, status, message) of the faults a batch survives. Failures
#: of a calculation are cached by geometry, so their messages do not name the molecule
#: (its row does); refusals are not cached and name it.
IN_PROCESS_FAULTS = [
    ("raise", 1, "failed", r"^fault-test: RuntimeError: injected: segmentation fault"),
    ("scf", 3, "failed", r"SCF not converged"),
    ("nan-forces", 3, "failed", r"non-finite forces"),
    ("inf-energy", 1, "failed", r"non-finite energy"),
    ("refuse", 1, "invalid", r"m5: fault-test has no parameters"),
    ("no-calculator", 1, "failed", r"^fault-test: the calculator could not be started"),
]


def test_injected_faults_are_recorded_and_the_rest_of_the_batch_completes(ethanol, rng, tmp_path):
    good = [shifted(ethanol, rng) for _ in range(3)]
    faulty = [with_fault(shifted(ethanol, rng), fault, at) for fault, at, _, _ in IN_PROCESS_FAULTS]
    items = [(a, f"m{i}") for i, a in enumerate([good[0], *faulty, good[1], good[2]])]
    store = ResultStore(tmp_path / "s.sqlite")
    results = FaultOracle(store=store).relax_many(items, fmax=0.05)
    tally(FAULTS, len(faulty))
    clean = FaultOracle().relax_many([(a, "clean") for a in good], fmax=0.05)
    for got, want in zip([results[0], *results[-2:]], clean):
        assert got.status == "converged" and got.energy_ev == want.energy_ev
    for result, (fault, at, status, message) in zip(results[1:-2], IN_PROCESS_FAULTS):
        assert result.status == status and not result.converged, fault
        assert result.message and re.search(message, result.message), (fault, result.message)
        if at == 1:  # nothing good was computed: no number at all
            assert np.isnan(result.energy_ev) and result.n_steps == 0, fault
    # failures of the calculation are cached (repeating them costs a calculation); refusals are not
    assert store.count("relax") == len(items) - 1
    single = FaultOracle().single_point_many(items)
    assert [sp.status for sp in single] == ["ok", "failed", "ok", "ok", "failed", "invalid", "failed", "ok", "ok"]
    assert all(np.isnan(sp.energy_ev) and sp.forces_ev_ang is None for sp in single if not sp.ok)


def test_a_refusing_force_field_no_longer_stops_a_batch(ethanol):
    """MMFF94 has no parameters for BF3: the batch goes on, one molecule at a time still raises."""
    bf3 = Atoms("BF3", positions=[(0, 0, 0), (1.31, 0, 0), (-0.655, 1.1345, 0), (-0.655, -1.1345, 0)])
    bf3.info["smiles"] = "FB(F)F"
    first, refused = get_oracle("mmff").relax_many([(ethanol, "ethanol"), (bf3, "BF3")])
    assert first.converged
    assert refused.status == "invalid" and refused.message.startswith("BF3: MMFF94 has no parameters")
    with pytest.raises(UnsupportedMoleculeError, match="BF3: MMFF94 has no parameters"):
        get_oracle("mmff").relax(bf3, name="BF3")


def test_faults_on_worker_processes_are_recorded_like_in_process_ones(ethanol, rng, tmp_path):
    """The same faults through the local pool, with two SIGKILLed workers (mid-relaxation,
    once each) that are retried: every good molecule and both killed ones converge."""
    good = [shifted(ethanol, rng) for _ in range(2)]
    killed = [with_fault(shifted(ethanol, rng), "kill-once", 3, str(tmp_path / f"killed-{i}")) for i in range(2)]
    faulty = [with_fault(shifted(ethanol, rng), fault, at) for fault, at, _, _ in IN_PROCESS_FAULTS]
    molecules = [good[0], killed[0], *faulty, killed[1], good[1]]
    items = [(a, f"m{i}") for i, a in enumerate(molecules)]
    store = ResultStore(tmp_path / "s.sqlite")
    with make_executor(2, None) as pool:
        results = FaultOracle(store=store, executor=pool).relax_many(items, fmax=0.05)
        n_respawns = pool.n_respawns
    tally(FAULTS, len(faulty) + len(killed))
    assert all((tmp_path / f"killed-{i}").exists() for i in range(2))  # both workers were killed
    assert 1 <= n_respawns <= 2
    tally(KILLS, len(killed))
    expected = FaultOracle().relax_many([(a, "here") for a in molecules], fmax=0.05)
    statuses = [r.status for r in results]
    assert statuses == ["converged", "converged", *(s for _, _, s, _ in IN_PROCESS_FAULTS), "converged", "converged"]
    for got, want in zip(results, expected):
        if got.status == "converged":
            assert got.n_steps == want.n_steps and got.energy_ev == want.energy_ev
    n_lost = sum(r.status != "converged" for r in (results[0], results[1], results[-2], results[-1]))
    tally(LOST, n_lost)
    assert n_lost == 0 and store.count("relax") == len(items) - 1  # all but the refusal


def test_a_molecule_that_always_kills_its_worker_fails_after_bounded_retries(ethanol, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    with make_executor(1, None) as pool:
        oracle = FaultOracle(store=store, executor=pool)
        (poison,) = oracle.relax_many([(with_fault(ethanol, "kill", 2), "poison")])
        (after,) = oracle.relax_many([(ethanol, "after")])  # the pool still works
        assert pool.n_respawns == WORKER_RETRIES + 1
    tally(FAULTS)
    tally(KILLS, WORKER_RETRIES + 1)
    assert poison.status == "failed" and not poison.converged and np.isnan(poison.energy_ev)
    assert "worker failed: BrokenProcessPool" in poison.message
    assert f"({WORKER_RETRIES + 1} attempts)" in poison.message
    assert after.converged and store.count("relax") == 1  # the failure is not cached: a rerun tries again


def test_charge_and_multiplicity_reach_the_calculator_in_process_and_on_workers(rng):
    """The fault oracle's energy carries 100 * charge + 10 * multiplicity: compare with the neutral singlet."""
    base = Atoms("CH4", positions=[(0, 0, 0), (0.63, 0.63, 0.63), (-0.63, -0.63, 0.63), (-0.63, 0.63, -0.63),
                                   (0.63, -0.63, -0.63)])
    states = [(0, 1), (1, 2), (-1, 2), (2, 3), (0, 3), (-2, 1)]
    molecules = []
    for charge, multiplicity in states:
        atoms = base.copy()
        atoms.info.update(charge=charge, multiplicity=multiplicity)
        molecules.append((atoms, f"CH4 {charge:+d} {multiplicity}"))
    impossible = base.copy()
    impossible.info.update(charge=1, multiplicity=1)  # 9 electrons cannot be a singlet
    items = [*molecules, (impossible, "CH4+ singlet")]
    here = FaultOracle().single_point_many(items)
    with make_executor(2, None) as pool:
        there = FaultOracle(executor=pool).single_point_many(items)
    neutral = here[0].energy_ev - charge_offset_ev(0, 1)
    for results in (here, there):
        for sp, (charge, multiplicity) in zip(results, states):
            assert sp.energy_ev - neutral == pytest.approx(charge_offset_ev(charge, multiplicity), abs=1e-9)
        assert results[-1].status == "invalid"
        assert results[-1].message == ("CH4+ singlet: multiplicity 1 is impossible with 9 electrons (charge 1); "
                                       "use 2")


def test_charged_and_open_shell_molecules_on_the_real_oracles(tmp_path):
    """xtb through a worker gets the charge ([NH4]+ against the NH4 radical); the force
    fields refuse open shells in a batch, naming the molecule; DFT builds UKS with the spin."""
    ammonium = molecule_from_smiles("[NH4+]")
    radical = ammonium.copy()
    radical.info.update(charge=0, multiplicity=2)
    with make_executor(1, None) as pool:
        cation, neutral = get_oracle("xtb", executor=pool).single_point_many([(ammonium, "NH4+"), (radical, "NH4")])
    assert cation.energy_ev == pytest.approx(get_oracle("xtb").single_point(ammonium).energy_ev, abs=1e-8)
    assert neutral.ok and abs(neutral.energy_ev - cation.energy_ev) > 1.0
    (refused,) = get_oracle("mmff").single_point_many([(radical, "NH4 radical")])
    assert refused.status == "invalid"
    assert refused.message == "NH4 radical: mmff treats closed-shell molecules only (multiplicity 2)"
    methyl = Atoms("CH3", positions=[(0, 0, 0), (1.08, 0, 0), (-0.54, 0.94, 0), (-0.54, -0.94, 0)])
    methyl.info.update(charge=0, multiplicity=2)
    dft = get_oracle("dft")
    for atoms, (charge, spin, kind) in [(methyl, (0, 1, "UKS")), (ammonium, (1, 0, "RKS"))]:
        mf = dft.make_calculator(atoms).build_scf(atoms)  # built, not run
        assert (mf.mol.charge, mf.mol.spin, type(mf).__name__) == (charge, spin, kind)
