"""The metrics module on hand-computed cases: each expected value is worked out
here by hand (or with plain numpy on the raw numbers), never by the module."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import metrics
from bench.columns import Col, Status
from bench.units import EV_TO_KCAL_MOL

M = metrics.METRICS


def energy_table(values: dict[str, list], statuses: dict[str, list] | None = None, seeds: dict | None = None):
    """Rows of an energy table: values[method][i] is molecule i's energy (kcal/mol);
    a method given in ``seeds`` has one list per seed."""
    rows = []
    for method, per_molecule in values.items():
        for seed, vals in (seeds or {}).get(method, {None: per_molecule}).items():
            for i, e in enumerate(vals):
                status = (statuses or {}).get(method, [Status.OK] * len(vals))[i]
                rows.append({Col.ID: f"m{i}", Col.METHOD: method, Col.SEED: seed, Col.ENERGY_ABOVE_GROUND: e,
                             Col.RMSD_HEAVY: e / 10, Col.RMSD_ALL: e / 5, Col.STATUS: status,
                             Col.NETWORK_EVALUATIONS: 0, Col.DENOISER_S: 0.0})
    df = pd.DataFrame(rows)
    df[Col.SEED] = df[Col.SEED].astype("Int64")
    return df


def relax_table(steps: dict[str, list], statuses: dict[str, list] | None = None, energies: dict | None = None,
                calls: dict | None = None, wall: dict | None = None, denoiser_s: dict | None = None):
    rows = []
    for method, per_molecule in steps.items():
        for i, n in enumerate(per_molecule):
            rows.append({Col.ID: f"m{i}", Col.METHOD: method, Col.SEED: pd.NA, Col.ORACLE_STEPS: n,
                         Col.N_FORCE_CALLS: (calls or {}).get(method, [n + 1] * len(per_molecule))[i],
                         Col.WALL_S: (wall or {}).get(method, [0.1 * (n + 1)] * len(per_molecule))[i],
                         Col.RELAXED_ENERGY: (energies or {}).get(method, [-10.0] * len(per_molecule))[i],
                         Col.RELAXED_RMSD_HEAVY: 0.01, Col.RELAXED_RMSD_ALL: 0.02,
                         Col.STATUS: (statuses or {}).get(method, [Status.OK] * len(per_molecule))[i],
                         Col.NETWORK_EVALUATIONS: 0 if method == "mmff" else 51,
                         Col.DENOISER_S: (denoiser_s or {}).get(method, 0.0)})
    df = pd.DataFrame(rows)
    df[Col.SEED] = df[Col.SEED].astype("Int64")
    return df


def energy_sample(values, method="den", **kw):
    return metrics.prepare(energy_table(values, **kw), "energy", method)


# -- energy metrics -----------------------------------------------------------------------------------------------

def test_energy_ratio_is_the_ratio_of_means_not_of_medians():
    # MMFF: mean 6, median 2; den: mean 2, median 2
    s = energy_sample({"mmff": [1.0, 2.0, 15.0], "den": [1.0, 2.0, 3.0]})
    assert M["energy_ratio"](s) == pytest.approx(6.0 / 2.0)
    assert M["energy_ratio_of_medians"](s) == pytest.approx(2.0 / 2.0)
    assert M["excess_removed"](s) == pytest.approx(1 - 2.0 / 6.0)
    assert M["mean_energy_above_ground_kcal_mol"](s) == pytest.approx(2.0)
    assert M["median_energy_above_ground_kcal_mol"](s) == pytest.approx(2.0)
    assert M["within_1_kcal_mol"](s) == pytest.approx(1 / 3)  # 1.0 counts: "at most 1"
    assert M["mean_rmsd_heavy_ang"](s) == pytest.approx(0.2) and M["mean_rmsd_all_ang"](s) == pytest.approx(0.4)


def test_a_method_at_the_ground_state_has_an_infinite_ratio_never_nan():
    s = energy_sample({"mmff": [4.0, 8.0], "perfect": [0.0, 0.0]}, method="perfect")
    assert M["energy_ratio"](s) == np.inf and M["energy_ratio_of_medians"](s) == np.inf
    assert M["excess_removed"](s) == 1.0 and M["within_1_kcal_mol"](s) == 1.0
    below = energy_sample({"mmff": [4.0, 8.0], "below": [-0.1, 0.05]}, method="below")
    assert M["energy_ratio"](below) == np.inf  # mean below the reference ground state: still the best possible
    assert M["energy_ratio"](energy_sample({"mmff": [4.0, 8.0], "den": [12.0, 24.0]})) == pytest.approx(1 / 3)


def test_failed_outputs_take_the_mmff_values_and_are_counted():
    # the case: right on 3 of 10 molecules, NaN (failed) on the other 7
    mmff = [5.0] * 10
    half = [0.0] * 3 + [np.nan] * 7
    statuses = {"half": [Status.OK] * 3 + [Status.OUTPUT_FAILED] * 7}
    s = energy_sample({"mmff": mmff, "half": half}, method="half", statuses=statuses)
    assert s.n_failed == 7
    assert M["mean_energy_above_ground_kcal_mol"](s) == pytest.approx(7 * 5.0 / 10)
    assert M["energy_ratio"](s) == pytest.approx(5.0 / 3.5)
    assert M["within_1_kcal_mol"](s) == pytest.approx(0.3)
    oracle = energy_sample({"mmff": mmff, "o": [1.0] * 10}, method="o",
                           statuses={"o": [Status.ORACLE_FAILED] + [Status.OK] * 9})
    assert oracle.n_failed == 1 and M["mean_energy_above_ground_kcal_mol"](oracle) == pytest.approx(1.4)


def test_a_molecule_without_a_reference_leaves_every_method_and_is_counted():
    values = {"mmff": [5.0, np.nan, 3.0], "den": [1.0, 2.0, 1.0]}
    statuses = {"mmff": [Status.OK, Status.ORACLE_FAILED, Status.OK]}
    table = energy_table(values, statuses=statuses)
    for method in ("mmff", "den"):
        s = metrics.prepare(table, "energy", method)
        assert list(s.ids) == ["m0", "m2"] and s.excluded == ("m1",)
    row = metrics.summarise_method(metrics.samples({"energy": table}, "den"), bootstrap=None)
    assert row["n_excluded"] == 1 and row["n_molecules"] == 2
    assert row["energy_ratio"] == pytest.approx(4.0 / 1.0)
    ground = energy_table({"mmff": [5.0, 1.0], "den": [1.0, 1.0]},
                          statuses={"den": [Status.OK, Status.REFERENCE_FAILED]})
    assert metrics.prepare(ground, "energy", "den").excluded == ("m1",)


def test_seeds_are_pooled_per_molecule():
    seeds = {"den": {0: [1.0, 3.0], 1: [3.0, 5.0]}}
    s = energy_sample({"mmff": [4.0, 8.0], "den": None}, seeds=seeds)
    assert s.own[Col.ENERGY_ABOVE_GROUND].shape == (2, 2)
    assert M["mean_energy_above_ground_kcal_mol"](s) == pytest.approx(3.0)
    assert M["energy_ratio"](s) == pytest.approx(6.0 / 3.0)


# -- relaxation metrics --------------------------------------------------------------------------------------------

def test_speedup_percentiles_and_fraction_slower_by_hand():
    ref = [40, 20, 10, 10, 50]
    den = [10, 30, 10, 5, 0]  # speedups 0.75, -0.5, 0, 0.5, 1
    s = metrics.prepare(relax_table({"mmff": ref, "den": den}), "relax", "den")
    sp = np.array([0.75, -0.5, 0.0, 0.5, 1.0])
    assert metrics.speedups(s).ravel() == pytest.approx(sp)
    assert M["median_speedup"](s) == pytest.approx(0.5)
    assert M["p25_speedup"](s) == pytest.approx(np.quantile(sp, 0.25)) == pytest.approx(0.0)
    assert M["p75_speedup"](s) == pytest.approx(0.75)
    assert M["p25_speedup"](s) < M["p75_speedup"](s)
    assert M["fraction_slower"](s) == pytest.approx(0.2)
    assert M["median_oracle_steps"](s) == pytest.approx(10)


def test_a_reference_needing_no_steps_counts_as_one():
    s = metrics.prepare(relax_table({"mmff": [0, 0], "den": [0, 3]}), "relax", "den")
    assert metrics.speedups(s).ravel() == pytest.approx([1.0, -2.0])


def test_failures_and_unconverged_relaxations_in_the_speedup():
    ref, den = [20, 20, 20, 20], [2, np.nan, 1000, 2]
    statuses = {"den": [Status.OK, Status.OUTPUT_FAILED, Status.UNCONVERGED, Status.ORACLE_FAILED]}
    s = metrics.prepare(relax_table({"mmff": ref, "den": den}, statuses=statuses), "relax", "den")
    # failed rows take MMFF's 20 steps (speedup 0); the unconverged one counts its 1000 steps
    assert metrics.speedups(s).ravel() == pytest.approx([0.9, 0.0, 1 - 1000 / 20, 0.0])
    assert s.n_failed == 2 and s.n_unconverged == 1
    assert M["fraction_slower"](s) == pytest.approx(0.25)


def test_energy_delta_and_same_basin_speedup():
    ref, den = [40, 20], [10, 30]
    energies = {"mmff": [-10.0, -5.0], "den": [-10.01, -5.0]}  # molecule 0: 0.23 kcal/mol lower, another basin
    s = metrics.prepare(relax_table({"mmff": ref, "den": den}, energies=energies), "relax", "den")
    assert metrics.energy_deltas(s).ravel() == pytest.approx([0.01 * EV_TO_KCAL_MOL, 0.0])
    assert M["median_speedup_same_basin"](s) == pytest.approx(-0.5)  # only molecule 1 stays
    assert M["median_delta_e_kcal_mol"](s) == pytest.approx(0.005 * EV_TO_KCAL_MOL)


def test_cost_is_counted_from_calls_not_wall_times_of_other_processes():
    # molecule 0: MMFF 40 calls in 2.0 s (50 ms per call); the method 10 calls but a slow 9 s wall time
    calls = {"mmff": [40, 20], "den": [10, 30]}
    wall = {"mmff": [2.0, 1.0], "den": [9.0, 0.1]}
    s = metrics.prepare(relax_table({"mmff": [39, 19], "den": [9, 29]}, calls=calls, wall=wall,
                                    denoiser_s={"den": 0.25}), "relax", "den")
    saved = np.array([30 * 2.0 / 40, -10 * 1.0 / 20])
    assert M["oracle_calls_saved_per_molecule"](s) == pytest.approx(10.0)
    assert M["net_saving_s_per_molecule"](s) == pytest.approx(np.mean(saved - 0.25))
    assert M["denoiser_ms_per_molecule"](s) == pytest.approx(250.0)
    assert M["network_evaluations_per_molecule"](s) == pytest.approx(51)


# -- the path ------------------------------------------------------------------------------------------------------

def test_alignment_gap_sign_and_the_non_converged_rule():
    rows = []
    for mol, converged, gs, f, rgs in (("a", True, 0.9, 0.2, 0.5), ("b", False, 1.0, -1.0, 0.1)):
        for frame in range(2):
            rows.append({Col.ID: mol, Col.METHOD: "den", "frame": frame, "path_ground_converged": converged,
                         "cos_d10_gs": gs, "cos_d10_f": f, "cos_d10_rgs": rgs})
    s = metrics.prepare_path(pd.DataFrame(rows), "den")
    assert s.excluded == ("b",)
    assert M["alignment_gap"](s) == pytest.approx(0.9 - 0.2)  # towards the ground state: positive
    assert M["alignment_gap_fixed_gs"](s) == pytest.approx(np.mean([0.5 - 0.2, 0.1 + 1.0]))


# -- statistics ----------------------------------------------------------------------------------------------------

def test_the_bootstrap_resamples_molecules_with_their_seeds_together(rng):
    values = rng.normal(5, 2, size=30)
    one = energy_sample({"mmff": list(values + 3), "den": list(values)})
    three = energy_sample({"mmff": list(values + 3), "den": None},
                          seeds={"den": {0: list(values), 1: list(values), 2: list(values)}})
    boot = metrics.Bootstrap(n_resamples=300, seed=1)
    metric = M["mean_energy_above_ground_kcal_mol"]
    # seeds that agree add no information: resampling molecules gives the same interval;
    # resampling the 90 pooled rows as if independent would give a ~sqrt(3) narrower one
    assert metrics.interval(metric, three, boot) == pytest.approx(metrics.interval(metric, one, boot))
    lo, hi = metrics.interval(metric, one, boot)
    assert lo < values.mean() < hi


def test_ties_come_from_the_paired_difference_not_overlapping_intervals(rng):
    base = rng.normal(0, 3, size=40)  # a wide spread across molecules ...
    mmff = list(np.abs(base) + 10)
    a = list(np.abs(base) + 1.0)  # ... but b is 0.3 kcal/mol worse on every molecule
    b = list(np.abs(base) + 1.3)
    table = energy_table({"mmff": mmff, "a": a, "b": b})
    sa, sb = metrics.prepare(table, "energy", "a"), metrics.prepare(table, "energy", "b")
    metric, boot = M["mean_energy_above_ground_kcal_mol"], metrics.Bootstrap(n_resamples=300)
    lo_a, hi_a = metrics.interval(metric, sa, boot)
    lo_b, hi_b = metrics.interval(metric, sb, boot)
    assert lo_b < hi_a  # the marginal intervals overlap ...
    diff, lo, hi = metrics.paired_difference(metric, sa, sb, boot)
    assert diff == pytest.approx(-0.3) and hi < 0  # ... the paired difference does not
    assert metrics.separable(metric, sa, sb, boot)
    assert not metrics.separable(metric, sa, sa, boot)


def test_summarise_gives_every_metric_with_intervals_and_counts():
    energy = energy_table({"mmff": [5.0, 6.0, 7.0], "den": [1.0, 2.0, 0.5]})
    relax = relax_table({"mmff": [30, 20, 40], "den": [10, 15, 20]})
    out = metrics.summarise({"energy": energy, "relax": relax}, metrics.Bootstrap(n_resamples=50)).set_index("method")
    assert out.loc["mmff", "energy_ratio"] == 1.0 and out.loc["mmff", "median_speedup"] == 0.0
    assert out.loc["den", "energy_ratio"] == pytest.approx(18 / 3.5)
    assert out.loc["den", "energy_ratio_ci_low"] <= out.loc["den", "energy_ratio"] <= out.loc["den",
                                                                                             "energy_ratio_ci_high"]
    assert out.loc["den", "n_molecules"] == 3 and out.loc["den", "n_failed"] == 0
    not_measured = {"alignment_gap", "alignment_gap_fixed_gs"} | {
        name for name, m in metrics.METRICS.items() if m.tables == ("stability",)}  # tables not given
    assert set(metrics.METRICS) - not_measured <= set(out.columns)


def test_every_metric_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert metrics.metrics_markdown() in readme, "README's METRICS section is stale: paste metrics_markdown()"
    assert metrics.FAILURE_RULE in readme
