"""Physics and bookkeeping checks shared by every oracle (DFT ones behind markers)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Executor

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces
from ase.optimize import BFGS

from bench.errors import InputError, UnsupportedMoleculeError
from bench.oracles import ORACLES, get_oracle
from bench.oracles.base import Oracle
from bench.store import ResultStore
from tests.conftest import molecule_from_smiles

FAST_ORACLES = ["xtb", "mmff", "uff"]


def distorted(atoms: Atoms, rng: np.random.Generator, scale: float = 0.05) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(scale=scale, size=out.positions.shape)
    return out


@pytest.mark.parametrize("name", FAST_ORACLES)
def test_forces_are_minus_the_energy_gradient(name, ethanol, rng):
    atoms = distorted(ethanol, rng)
    oracle = get_oracle(name)
    sp = oracle.single_point(atoms)
    atoms.calc = oracle.make_calculator(atoms)
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    assert sp.ok
    np.testing.assert_allclose(sp.forces_ev_ang, numeric, atol=2e-3)


@pytest.mark.parametrize("name", FAST_ORACLES)
def test_relaxed_structure_is_a_minimum_and_takes_no_further_steps(name, ethanol, rng):
    oracle = get_oracle(name)
    res = oracle.relax(distorted(ethanol, rng), fmax=0.01)
    assert res.status == "converged" and res.converged
    assert res.fmax_ev_ang < 0.01
    relaxed = ethanol.copy()
    relaxed.positions = res.positions_ang
    sp = oracle.single_point(relaxed)
    assert np.abs(sp.forces_ev_ang).max() < 0.01
    assert sp.energy_ev == pytest.approx(res.energy_ev, abs=1e-6)
    again = oracle.relax(relaxed, fmax=0.01)
    assert again.n_steps == 0 and again.n_force_calls == 1 and again.converged


@pytest.mark.parametrize("name", FAST_ORACLES)
def test_step_count_matches_ase_get_number_of_steps(name, ethanol, rng):
    oracle = get_oracle(name)
    start = distorted(ethanol, rng, 0.08)
    res = oracle.relax(start, fmax=0.03)
    direct = start.copy()
    direct.calc = oracle.make_calculator(direct)
    opt = BFGS(direct, logfile=None)
    opt.run(fmax=0.03, steps=1000)
    assert res.n_steps == opt.get_number_of_steps() > 3
    # BFGS evaluates once per step plus once at the start.
    assert res.n_force_calls == res.n_steps + 1
    np.testing.assert_allclose(res.positions_ang, direct.positions, atol=1e-8)


def test_max_steps_gives_not_converged_with_the_last_geometry(ethanol, rng):
    res = get_oracle("xtb").relax(distorted(ethanol, rng, 0.1), fmax=0.001, max_steps=3)
    assert res.status == "not_converged" and not res.converged
    assert res.n_steps == 3 and np.isfinite(res.energy_ev)


def test_xtb_agrees_with_a_direct_tblite_call(ethanol):
    from ase.units import Bohr, Hartree
    from tblite.interface import Calculator

    calc = Calculator("GFN2-xTB", ethanol.numbers, ethanol.positions / Bohr)
    calc.set("verbosity", 0)
    ref = calc.singlepoint()
    sp = get_oracle("xtb").single_point(ethanol)
    assert sp.energy_ev == pytest.approx(ref.get("energy") * Hartree, abs=1e-6)
    np.testing.assert_allclose(sp.forces_ev_ang, -ref.get("gradient") * Hartree / Bohr, atol=1e-6)


def test_xtb_passes_charge_and_multiplicity(rng):
    from ase.units import Bohr, Hartree
    from tblite.interface import Calculator

    ammonium = molecule_from_smiles("[NH4+]")
    sp = get_oracle("xtb").single_point(ammonium)
    calc = Calculator("GFN2-xTB", ammonium.numbers, ammonium.positions / Bohr, charge=1.0)
    calc.set("verbosity", 0)
    assert sp.energy_ev == pytest.approx(calc.singlepoint().get("energy") * Hartree, abs=1e-6)
    neutral = ammonium.copy()
    neutral.info.update(charge=0, multiplicity=2)  # NH4 radical: 11 electrons
    assert get_oracle("xtb").single_point(neutral).energy_ev != pytest.approx(sp.energy_ev, abs=1.0)


def test_scf_failure_is_recorded_not_raised(ethanol, rng):
    oracle = get_oracle("xtb", max_iterations=1)
    sp = oracle.single_point(distorted(ethanol, rng))
    assert sp.status == "failed" and not sp.ok and np.isnan(sp.energy_ev)
    assert "xtb" in sp.message
    res = oracle.relax(distorted(ethanol, rng))
    assert res.status == "failed" and not res.converged and res.message


class NaNForcesOracle(Oracle):
    """Test double: a calculator that returns NaN forces after two good calls."""

    name = "nan-test"

    def make_calculator(self, atoms):
        from ase.calculators.emt import EMT

        calc = EMT()
        inner = calc.calculate
        calls = [0]

        def calculate(*args, **kwargs):
            inner(*args, **kwargs)
            calls[0] += 1
            if calls[0] > 2:
                calc.results["forces"] = calc.results["forces"] * np.nan

        calc.calculate = calculate
        return calc

    @dataclasses.dataclass(frozen=True)
    class Settings:  # no settings
        pass


def test_nan_forces_are_a_failure_keeping_the_last_good_geometry(ethanol, rng):
    oracle = NaNForcesOracle()
    res = oracle.relax(distorted(ethanol, rng, 0.1), fmax=1e-4)
    assert res.status == "failed" and "non-finite forces" in res.message
    assert res.n_force_calls == 3 and np.isfinite(res.energy_ev)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.positions.__setitem__((1, 0), np.nan), "non-finite"),
        (lambda a: a.positions.__setitem__(1, a.positions[0]), "coincident"),
        (lambda a: a.positions.__setitem__((1, 2), 1e30), "atoms span 1e\\+30 A"),
        (lambda a: a.info.update(multiplicity=2), "multiplicity 2 is impossible"),
    ],
)
@pytest.mark.parametrize("name", FAST_ORACLES)
def test_bad_molecules_raise_input_error_naming_the_molecule(name, ethanol, mutate, message):
    atoms = ethanol.copy()
    mutate(atoms)
    with pytest.raises(InputError, match=rf"ethanol-7: .*{message}"):
        get_oracle(name).relax(atoms, name="ethanol-7")


@pytest.mark.parametrize("name", ["mmff", "uff"])
def test_force_fields_refuse_open_shells(name):
    methyl = Atoms("CH3", positions=[(0, 0, 0), (1.08, 0, 0), (-0.54, 0.94, 0), (-0.54, -0.94, 0)])
    methyl.info["multiplicity"] = 2
    with pytest.raises(UnsupportedMoleculeError, match="closed-shell"):
        get_oracle(name).single_point(methyl, name="methyl")


def test_mmff_refuses_elements_it_lacks():
    bf3 = Atoms(
        "BF3", positions=[(0, 0, 0), (1.31, 0, 0), (-0.655, 1.1345, 0), (-0.655, -1.1345, 0)])
    bf3.info["smiles"] = "FB(F)F"
    with pytest.raises(UnsupportedMoleculeError, match="BF3: MMFF94 has no parameters"):
        get_oracle("mmff").single_point(bf3, name="BF3")


def test_mmff_without_smiles_perceives_bonds_from_geometry(ethanol):
    plain = ethanol.copy()
    del plain.info["smiles"]
    a = get_oracle("mmff").single_point(ethanol)
    b = get_oracle("mmff").single_point(plain)
    assert a.energy_ev == pytest.approx(b.energy_ev, abs=1e-8)


def test_results_are_cached_in_the_store(ethanol, rng, tmp_path):
    store = ResultStore(tmp_path / "store.sqlite")
    oracle = get_oracle("xtb", store=store)
    start = distorted(ethanol, rng)
    first = oracle.relax(start)
    sp = oracle.single_point(start)

    def boom(atoms):
        raise AssertionError("cache miss: the oracle was called again")

    oracle.make_calculator = boom
    again = oracle.relax(start)
    assert again.n_steps == first.n_steps and again.energy_ev == first.energy_ev
    np.testing.assert_array_equal(again.positions_ang, first.positions_ang)
    assert oracle.single_point(start).energy_ev == sp.energy_ev
    # other settings or a moved atom are other keys
    assert store.count("relax") == 1
    other = get_oracle("xtb", store=store, accuracy=0.5)
    assert other.key != oracle.key


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        get_oracle("gaussian")
    with pytest.raises(ValueError, match="choose from"):
        get_oracle("xtb").relax(Atoms("H2", positions=[(0, 0, 0), (0.74, 0, 0)]), optimizer="Newton")
    with pytest.raises(ValueError, match="GFN2-xTB"):
        get_oracle("xtb", method="GFN3")
    assert sorted(ORACLES) == ["dft", "mmff", "uff", "xtb"]


@pytest.mark.dft
def test_dft_water_matches_the_psi4_pyscf_reference(water):
    """B3LYP/6-31G(2df,p) water: -76.4211614 Ha (the study's reference: Psi4 and pyscf agree to 3e-8)."""
    from bench.units import HARTREE_TO_EV

    sp = get_oracle("dft").single_point(water)
    assert sp.ok
    assert sp.energy_ev / HARTREE_TO_EV == pytest.approx(-76.4211614, abs=1e-6)
    # symmetric molecule: mirror-symmetric H forces, and no net force up to the
    # DFT grid's small breaking of translation invariance (no grid response)
    np.testing.assert_allclose(sp.forces_ev_ang.sum(axis=0), 0, atol=1e-3)
    assert sp.forces_ev_ang[1, 1] == pytest.approx(-sp.forces_ev_ang[2, 1], abs=1e-7)


@pytest.mark.dft
def test_dft_forces_are_minus_the_energy_gradient(water):
    oracle = get_oracle("dft")
    sp = oracle.single_point(water)
    atoms = water.copy()
    atoms.calc = oracle.make_calculator(atoms)
    numeric = calculate_numerical_forces(atoms, eps=1e-3, iatoms=[0, 1], icarts=[1, 2])
    # 5e-4 eV/A: analytic forces omit the DFT grid response (as Psi4 does)
    np.testing.assert_allclose(sp.forces_ev_ang[:2, 1:], numeric, atol=5e-4)


@pytest.mark.dft
def test_dft_scf_failure_is_recorded(water):
    sp = get_oracle("dft", max_cycle=2).single_point(water)
    assert sp.status == "failed" and "SCF not converged" in sp.message


def test_a_single_atom_is_a_minimum_with_zero_steps():
    neon = Atoms("Ne", positions=[(0.3, -0.2, 1.0)])
    oracle = get_oracle("xtb")
    sp = oracle.single_point(neon, name="Ne")
    assert sp.ok and np.abs(sp.forces_ev_ang).max() < 1e-8
    res = oracle.relax(neon, name="Ne")
    assert res.converged and res.n_steps == 0
    hydrogen = Atoms("H", positions=[(0, 0, 0)])  # one electron: a doublet by default
    assert get_oracle("xtb").single_point(hydrogen).ok
    hydrogen.info["multiplicity"] = 1
    with pytest.raises(InputError, match="multiplicity 1 is impossible with 1 electrons"):
        get_oracle("xtb").single_point(hydrogen, name="H atom")


def test_batched_calls_on_worker_processes_match_the_sequential_ones(ethanol, rng, tmp_path):
    from bench.parallel import make_executor

    starts = [distorted(ethanol, rng) for _ in range(4)]
    bad = ethanol.copy()
    bad.positions[0, 0] = np.nan
    items = [(a, f"m{i}") for i, a in enumerate(starts)] + [(bad, "broken")]
    sequential = get_oracle("xtb").relax_many(items)
    store = ResultStore(tmp_path / "s.sqlite")
    with make_executor(2, None) as pool:
        parallel = get_oracle("xtb", store=store, executor=pool).relax_many(items)
    for a, b in zip(sequential[:4], parallel[:4]):
        assert a.n_steps == b.n_steps and a.energy_ev == pytest.approx(b.energy_ev, abs=1e-8)
    assert parallel[4].status == "invalid" and "broken: non-finite" in parallel[4].message
    assert store.count("relax") == 4  # written by this process; the invalid one is not cached
    sps = get_oracle("xtb", store=store).single_point_many(items)
    assert [sp.status for sp in sps] == ["ok"] * 4 + ["invalid"]


@pytest.mark.parametrize("workers", [0, 2])
def test_one_geometry_twice_in_a_batch_is_computed_once(ethanol, rng, workers):
    from bench.parallel import make_executor

    start, other = distorted(ethanol, rng), distorted(ethanol, rng)
    items = [(start, "seed0"), (other, "other"), (start.copy(), "seed1"), (start.copy(), "seed2")]
    calls = []

    class Counting(Executor):  # the pool's submissions, counted
        def __init__(self, pool):
            self.pool = pool

        def submit(self, fn, *args, **kwargs):
            calls.append(args)
            return self.pool.submit(fn, *args, **kwargs)

    if workers:
        with make_executor(workers, None) as pool:
            results = get_oracle("xtb", executor=Counting(pool)).relax_many(items)
    else:
        oracle = get_oracle("xtb")
        build = oracle.make_calculator
        oracle.make_calculator = lambda atoms: calls.append(atoms) or build(atoms)  # one per relaxation
        results = oracle.relax_many(items)
    assert len(calls) == 2
    assert results[0].n_steps == results[2].n_steps == results[3].n_steps and results[2] is not results[0]
    np.testing.assert_array_equal(results[3].positions_ang, results[0].positions_ang)


class _DyingExecutor:
    """An executor whose workers always die (as a killed Dask worker would)."""

    def submit(self, fn, *args, **kwargs):
        from concurrent.futures import Future

        fut = Future()
        fut.set_exception(RuntimeError("worker lost"))
        return fut


def test_a_lost_worker_is_a_recorded_failure_and_not_cached(ethanol, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    (res,) = get_oracle("xtb", store=store, executor=_DyingExecutor()).relax_many([(ethanol, "m")])
    assert res.status == "failed" and "worker lost" in res.message
    assert store.count() == 0
    assert get_oracle("xtb", store=store).relax(ethanol).converged  # a retry without the executor succeeds


@pytest.mark.dft
def test_dft_oracle_agrees_with_a_direct_pyscf_call(water):
    from pyscf import dft, gto

    from bench.units import BOHR_TO_ANG, HARTREE_TO_EV

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(water.numbers, water.positions)], unit="Angstrom",
                basis="6-31g(2df,p)", verbose=0)
    mf = dft.RKS(mol)
    mf.xc, mf.conv_tol = "b3lypg", 1e-10
    energy = mf.kernel()
    grad = mf.nuc_grad_method().kernel()
    sp = get_oracle("dft").single_point(water)
    assert sp.energy_ev == pytest.approx(energy * HARTREE_TO_EV, abs=1e-6)
    np.testing.assert_allclose(sp.forces_ev_ang, -grad * HARTREE_TO_EV / BOHR_TO_ANG, atol=1e-5)


@pytest.mark.dft
def test_density_fitting_keeps_energy_differences_and_forces(water):
    """``density_fit=True`` (RI, about 3x faster on QM9 molecules) moves the total
    energy but not what the benchmarks use: energy differences and forces."""
    from bench.units import EV_TO_KCAL_MOL

    bent = water.copy()
    bent.positions[1] += (0.03, 0.05, -0.02)
    exact, fitted = get_oracle("dft"), get_oracle("dft", density_fit=True)
    (e0, e1), (f0, f1) = ([oracle.single_point(a) for a in (water, bent)] for oracle in (exact, fitted))
    assert abs(f0.energy_ev - e0.energy_ev) * EV_TO_KCAL_MOL < 0.1
    gap = ((f1.energy_ev - f0.energy_ev) - (e1.energy_ev - e0.energy_ev)) * EV_TO_KCAL_MOL
    assert abs(gap) < 0.005
    np.testing.assert_allclose(f1.forces_ev_ang, e1.forces_ev_ang, atol=2e-3)


# -- the two GFN2-xTB codes --------------------------------------------------------------------------------------

def test_tblite_and_xtb_python_agree_on_shipped_molecules():
    """The study's code (xtb-python 22.1) against tblite on 20 qm9-xtb test molecules,
    at their MMFF starts and ground states (README, "Oracles": the measured agreement)."""
    pytest.importorskip("xtb.ase.calculator", reason="xtb-python not installed (pip install 'edm-bench[xtb-python]')")
    from bench.data import load_dataset
    from bench.oracles import get_oracle

    tblite, xtb_python = get_oracle("xtb"), get_oracle("xtb", backend="xtb-python")
    assert tblite.key != xtb_python.key and "xtb" in xtb_python.describe()["versions"]
    de, df = [], []
    for rec in load_dataset("qm9-xtb", "test")[:20]:
        for which in ("start", "ground"):
            a, b = tblite.single_point(rec.to_atoms(which)), xtb_python.single_point(rec.to_atoms(which))
            assert a.ok and b.ok
            de.append(abs(a.energy_ev - b.energy_ev))
            df.append(np.abs(a.forces_ev_ang - b.forces_ev_ang).max())
    assert max(de) < 5e-4 and np.median(de) < 1e-5  # eV
    assert max(df) < 2e-3  # eV/A


def test_xtb_python_reads_charge_and_spin():
    pytest.importorskip("xtb.ase.calculator", reason="xtb-python not installed")
    from ase import Atoms

    from bench.oracles import get_oracle

    oh = Atoms("OH", positions=[(0, 0, 0), (0, 0, 0.97)])
    for charge, mult in ((-1, 1), (0, 2)):
        oh.info.update(charge=charge, multiplicity=mult)
        a = get_oracle("xtb").single_point(oh)
        b = get_oracle("xtb", backend="xtb-python").single_point(oh)
        assert a.ok and b.ok and b.energy_ev == pytest.approx(a.energy_ev, abs=1e-4), (charge, mult)


@pytest.mark.parametrize(("settings", "message"), [
    ({"backend": "xtb-fortran"}, "unknown backend 'xtb-fortran'"),
    ({"electronic_temperature_k": -1.0}, "electronic_temperature_k must be a finite number >= 0"),
    ({"accuracy": float("nan")}, "accuracy must be a finite number > 0"),
    ({"max_iterations": 0}, "max_iterations must be >= 1"),
    ({"method": "GFN3"}, "unknown method 'GFN3'"),
])
def test_bad_xtb_settings_are_refused_before_any_work(settings, message):
    from bench.errors import SettingsError
    from bench.oracles import get_oracle

    with pytest.raises(SettingsError, match=message):
        get_oracle("xtb", **settings)


# -- the two DFT codes -------------------------------------------------------------------------------------------

def _psi4_or_skip():
    import shutil

    if shutil.which("psi4") is None:
        pytest.skip("no psi4 command (Debian: apt-get install psi4; .ci/run installs it)")


@pytest.mark.dft
@pytest.mark.parametrize("name", ["water", "ammonia"])
def test_pyscf_and_psi4_agree_at_the_studys_level(name, water, tmp_path, monkeypatch):
    """B3LYP/6-31G(2df,p), one basis (pyscf's, written for Psi4), default grids:
    energies to 1e-6 Ha, gradients to 5e-5 Ha/bohr (measured: 4e-8 Ha and 1.5e-5
    Ha/bohr on water; the gradient difference is the two codes' grids, 8e-7 at
    grid_level 5)."""
    _psi4_or_skip()
    from bench.oracles.dft import psi4_files
    from bench.units import BOHR_TO_ANG, HARTREE_TO_EV

    monkeypatch.setenv("EDM_BENCH_PSI4_DIR", str(tmp_path / "psi4"))
    atoms = water if name == "water" else molecule_from_smiles("N")
    a = get_oracle("dft", backend="psi4").single_point(atoms)
    b = get_oracle("dft").single_point(atoms)
    assert a.ok and b.ok, a.message
    assert abs(a.energy_ev - b.energy_ev) / HARTREE_TO_EV < 1e-6
    assert np.abs(a.forces_ev_ang - b.forces_ev_ang).max() / HARTREE_TO_EV * BOHR_TO_ANG < 5e-5
    if name == "water":
        assert a.energy_ev / HARTREE_TO_EV == pytest.approx(-76.4211614, abs=2e-7)  # the study's reference value
    [folder] = list(psi4_files().iterdir())
    assert {"input.dat", "output.dat", "result.json"} <= {p.name for p in folder.iterdir()}


@pytest.mark.dft
def test_a_psi4_scf_that_does_not_converge_is_a_recorded_failure(water, tmp_path, monkeypatch):
    _psi4_or_skip()
    monkeypatch.setenv("EDM_BENCH_PSI4_DIR", str(tmp_path / "psi4"))
    res = get_oracle("dft", backend="psi4", max_cycle=2).single_point(water)
    assert not res.ok and "psi4 failed" in res.message and np.isnan(res.energy_ev)


def test_a_missing_psi4_is_a_recorded_failure_not_a_crash(water, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    oracle = get_oracle("dft", backend="psi4")
    [res] = oracle.single_point_many([(water, "water")])
    assert res.status == "failed" and "needs Psi4's psi4 command" in res.message


@pytest.mark.parametrize(("settings", "message"), [
    ({"backend": "orca"}, "unknown backend 'orca'"),
    ({"backend": "psi4", "xc": "pbe"}, "cannot run xc 'pbe'"),
    ({"backend": "psi4", "grid_level": 2}, "no grid matching pyscf's grid_level 2"),
    ({"backend": "psi4", "device": "gpu"}, "runs on the CPU only"),
])
def test_settings_psi4_cannot_honour_are_refused(settings, message):
    from bench.errors import SettingsError

    with pytest.raises(SettingsError, match=message):
        get_oracle("dft", **settings)


def test_the_basis_written_for_psi4_is_pyscfs():
    import re

    from pyscf import gto

    from bench.oracles.dft import gaussian94_basis

    text = gaussian94_basis("6-31g(2df,p)", {1, 8})
    hydrogen = text.split("****")[1]
    assert "P 1 1.00\n  1.1000000000e+00" in hydrogen  # the standard p exponent, not basis_set_exchange's two
    n_shells = {z: sum(len(shell[1]) - 1 for shell in gto.basis.load("6-31g(2df,p)", z)) for z in ("H", "O")}
    def headers(block: str) -> int:
        return sum(bool(re.fullmatch(r"[SPDFGHI] \d+ 1\.00", line)) for line in block.splitlines())

    assert headers(hydrogen) == n_shells["H"] and headers(text.split("****")[2]) == n_shells["O"]
