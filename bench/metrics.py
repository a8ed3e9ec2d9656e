"""Every headline number of edm-bench: pure functions over the per-molecule tables.

The run, the leaderboard, the CI gate, the asv suite and the reports all call
:func:`summarise`; nothing else computes a headline number. Each metric in
:data:`METRICS` has a name, a unit, a direction and a one-line definition (the
README's METRICS section is generated from them).

The failure rule (:data:`FAILURE_RULE`, written into every manifest and report)
means every molecule counts: a method whose output or oracle call fails on a
molecule takes the reference start's values there, and only a molecule without
a reference at all is left out, of every method alike.

Seeds: a stochastic denoiser has one row per (molecule, seed); statistics pool
the rows, and intervals come from a bootstrap over molecules that keeps each
molecule's seeds together. "Tied" is decided from a paired bootstrap of the
per-molecule difference between two methods, on the same resampled molecules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.columns import Col, Status
from bench.units import EV_TO_KCAL_MOL

#: The method every paired metric is measured against.
REFERENCE = "mmff"
#: Energy threshold of "within chemical accuracy of the ground state".
CHEMICAL_ACCURACY_KCAL_MOL = 1.0
#: Relaxed-energy difference beyond which two relaxations ended in different basins
#: (the study's appendix C).
SAME_BASIN_KCAL_MOL = 0.2

#: The rule for failures, as the manifest, the report and the README state it.
FAILURE_RULE = (
    "(1) A row whose method gave no usable structure (exception, NaN or inf, wrong shape, coincident atoms) or on "
    "whose structure the oracle failed takes the MMFF start's oracle values for that molecule (the practitioner's "
    "fallback); its denoiser cost stays; counted in n_failed. (2) An oracle relaxation that stopped at its step "
    "limit counts with the steps it used; counted in n_unconverged. (3) A molecule whose ground state or MMFF start "
    "has no oracle value is left out of every method of that table (rows stay paired); counted in n_excluded.")

#: Per table, the oracle-derived columns that the failure rule takes from the reference start.
SUBSTITUTED: dict[str, tuple[str, ...]] = {
    "energy": (Col.ENERGY_ABOVE_GROUND, Col.RMSD_HEAVY, Col.RMSD_ALL),
    "relax": (Col.ORACLE_STEPS, Col.N_FORCE_CALLS, Col.WALL_S, Col.RELAXED_ENERGY, Col.RELAXED_RMSD_HEAVY,
              Col.RELAXED_RMSD_ALL),
    "stability": (Col.N_ATOMS, Col.N_ATOMS_STABLE, Col.MOLECULE_STABLE, Col.VALID),
}
#: Columns a failed row keeps: what the method itself spent.
KEPT = (Col.NETWORK_EVALUATIONS, Col.DENOISER_S)
_FAILED = (Status.OUTPUT_FAILED, Status.ORACLE_FAILED)
#: Path-table columns: per-atom-averaged cosines along the denoiser path.
GAP_STUDY, GAP_FIXED = "gap_study_gs", "gap_fixed_gs"


@dataclass(frozen=True)
class Sample:
    """One method's values on one table's molecules, after the failure rule.

    ``own[c]`` is an (n_molecules, n_seeds) array and ``ref[c]`` the reference
    start's (n_molecules, 1) column, rows aligned with ``ids``.
    """

    method: str
    table: str
    ids: np.ndarray
    own: Mapping[str, np.ndarray]
    ref: Mapping[str, np.ndarray] = field(default_factory=dict)
    n_failed: int = 0
    n_unconverged: int = 0
    excluded: tuple[str, ...] = ()

    def take(self, index: np.ndarray) -> "Sample":
        """The sample on the molecules ``index`` (with repeats: a bootstrap resample)."""
        return Sample(self.method, self.table, self.ids[index], {c: v[index] for c, v in self.own.items()},
                      {c: v[index] for c, v in self.ref.items()}, self.n_failed, self.n_unconverged, self.excluded)

    def restrict(self, ids: Sequence[str]) -> "Sample":
        """The sample on the given molecules, in their order."""
        where = {m: k for k, m in enumerate(self.ids)}
        return self.take(np.array([where[m] for m in ids], dtype=int))


def _grid(rows: pd.DataFrame, ids: np.ndarray, seeds: list, column: str) -> np.ndarray:
    """``column`` of ``rows`` as an (len(ids), len(seeds)) float array; NaN where a row is missing."""
    key = rows[Col.SEED].astype("object").where(rows[Col.SEED].notna(), None)
    table = pd.Series(rows[column].to_numpy(dtype=float), index=pd.MultiIndex.from_arrays([rows[Col.ID], key]))
    table = table[~table.index.duplicated()]
    full = pd.MultiIndex.from_product([ids, seeds])
    return table.reindex(full).to_numpy(dtype=float).reshape(len(ids), len(seeds))


def _seeds(rows: pd.DataFrame) -> list:
    values = rows[Col.SEED].dropna().unique().tolist() if Col.SEED in rows else []
    return sorted(int(v) for v in values) or [None]


def excluded_molecules(df: pd.DataFrame, reference: str = REFERENCE) -> list[str]:
    """Molecules of a table without a reference value (rule 3): a failed ground
    state, or a reference start with no oracle value."""
    ids = pd.unique(df[Col.ID])
    bad = set(df.loc[df[Col.STATUS] == Status.REFERENCE_FAILED, Col.ID])
    ref = df[df[Col.METHOD] == reference].drop_duplicates(Col.ID).set_index(Col.ID)[Col.STATUS]
    bad |= {m for m in ids if m not in ref.index or ref[m] in _FAILED}
    return [m for m in ids if m in bad]


def prepare(df: pd.DataFrame, table: str, method: str, reference: str = REFERENCE) -> Sample:
    """The :class:`Sample` of ``method`` in a per-molecule ``table`` (``energy``,
    ``relax`` or ``stability``), with the failure rule applied (see the module docstring)."""
    if reference not in set(df[Col.METHOD]):
        raise ValueError(f"the {table} table has no rows of the reference method {reference!r}")
    excluded = excluded_molecules(df, reference)
    ids = np.array([m for m in pd.unique(df[Col.ID]) if m not in set(excluded)], dtype=object)
    rows = df[df[Col.METHOD] == method]
    ref_rows = df[df[Col.METHOD] == reference].drop_duplicates(Col.ID).assign(**{Col.SEED: pd.NA})
    seeds = _seeds(rows)
    status = rows[Col.STATUS].astype(str)
    failed = _grid(rows.assign(_f=status.isin(_FAILED).astype(float)), ids, seeds, "_f")
    failed = np.where(np.isnan(failed), 1.0, failed).astype(bool)  # a missing row is a failed one
    unconverged = _grid(rows.assign(_u=(status == Status.UNCONVERGED).astype(float)), ids, seeds, "_u")
    own, ref = {}, {}
    for col in SUBSTITUTED[table]:
        if col not in df:
            continue
        ref[col] = _grid(ref_rows, ids, [None], col)
        own[col] = np.where(failed, ref[col], _grid(rows, ids, seeds, col))
    for col in KEPT:
        if col in df:
            own[col] = np.nan_to_num(_grid(rows, ids, seeds, col))
    return Sample(method, table, ids, own, ref, int(failed.sum()), int(np.nansum(unconverged)), tuple(excluded))


def prepare_path(df: pd.DataFrame, method: str, k: int = 10) -> Sample:
    """The path table of ``method`` as per-molecule alignment gaps, mean over frames
    of cos(Delta_k, gs) - cos(Delta_k, f): against the relaxation of the path's own
    end (the study's gs; molecules whose relaxation did not converge are left out)
    and against the molecule's fixed reference ground state."""
    rows = df[df[Col.METHOD] == method]
    ids = np.array(pd.unique(rows[Col.ID]), dtype=object)

    def cosine(name: str) -> pd.Series:  # a path shorter than k steps has no such column
        return rows[name] if name in rows else pd.Series(np.nan, index=rows.index)

    gap_study = (cosine(f"cos_d{k}_gs") - cosine(f"cos_d{k}_f")).where(rows["path_ground_converged"].astype(bool))
    gap_fixed = cosine(f"cos_d{k}_rgs") - cosine(f"cos_d{k}_f")
    per_molecule = pd.DataFrame({Col.ID: rows[Col.ID], GAP_STUDY: gap_study, GAP_FIXED: gap_fixed}).groupby(
        Col.ID, sort=False).mean().reindex(ids)
    not_converged = rows.groupby(Col.ID, sort=False)["path_ground_converged"].all()
    excluded = tuple(m for m in ids if not bool(not_converged[m]))
    return Sample(method, "path", ids, {c: per_molecule[c].to_numpy(dtype=float)[:, None] for c in (GAP_STUDY,
                                                                                                  GAP_FIXED)},
                  excluded=excluded)


# -- the metrics ---------------------------------------------------------------------------------------------------

def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator of two energies above the ground state; a method at
    or below the ground state on average (denominator <= 0) has ratio +inf."""
    if not np.isfinite(numerator) or not np.isfinite(denominator) or numerator <= 0:
        return float("nan")
    return float("inf") if denominator <= 0 else float(numerator / denominator)


def _nanmean(values: np.ndarray) -> float:
    """Mean over the finite values; NaN (without a warning) when there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _e(s: Sample) -> np.ndarray:
    return s.own[Col.ENERGY_ABOVE_GROUND]


def _e_ref(s: Sample) -> np.ndarray:
    return s.ref[Col.ENERGY_ABOVE_GROUND]


def speedups(s: Sample) -> np.ndarray:
    """Per (molecule, seed): 1 - steps / steps of the reference start. A reference
    that needed 0 steps counts as 1 step (a method then loses what it takes)."""
    return 1.0 - s.own[Col.ORACLE_STEPS] / np.maximum(s.ref[Col.ORACLE_STEPS], 1.0)


def energy_deltas(s: Sample) -> np.ndarray:
    """Per (molecule, seed): E(relaxed from the reference) - E(relaxed from the method), kcal/mol."""
    return (s.ref[Col.RELAXED_ENERGY] - s.own[Col.RELAXED_ENERGY]) * EV_TO_KCAL_MOL


def _same_basin_speedup(s: Sample) -> float:
    keep = np.abs(energy_deltas(s)) <= SAME_BASIN_KCAL_MOL
    return float(np.median(speedups(s)[keep])) if keep.any() else float("nan")


def _oracle_s_saved(s: Sample) -> np.ndarray:
    """Per (molecule, seed): force calls saved x the molecule's time per call, taken from
    the reference relaxation (one relaxation, one process)."""
    per_call = s.ref[Col.WALL_S] / np.maximum(s.ref[Col.N_FORCE_CALLS], 1.0)
    return (s.ref[Col.N_FORCE_CALLS] - s.own[Col.N_FORCE_CALLS]) * per_call


@dataclass(frozen=True)
class Metric:
    """A headline number: how it is computed, in what unit, which way is better."""

    name: str
    tables: tuple[str, ...]
    unit: str
    higher_is_better: bool | None
    definition: str
    fn: Callable[[Sample], float]
    #: Reported with a bootstrap interval over molecules (``<name>_ci_low``/``_ci_high``).
    interval: bool = False
    #: The per-molecule value (seeds averaged) behind the metric, for the paired tie test.
    per_molecule: Callable[[Sample], np.ndarray] | None = None

    def __call__(self, sample: Sample) -> float:
        return float(self.fn(sample))


_METRICS = [
    Metric("energy_ratio", ("energy",), "ratio", True,
           "mean E(MMFF start) / mean E(method) above the oracle ground state, same molecules (the study's ratio); "
           "+inf when the method's mean is <= 0", lambda s: _ratio(np.mean(_e_ref(s)), np.mean(_e(s))), True,
           lambda s: -_e(s).mean(axis=1)),
    Metric("excess_removed", ("energy",), "fraction", True,
           "1 - mean E(method) / mean E(MMFF start): the share of MMFF's excess energy removed (bounded companion "
           "of energy_ratio)", lambda s: 1.0 - np.mean(_e(s)) / np.mean(_e_ref(s)), True),
    Metric("energy_ratio_of_medians", ("energy",), "ratio", True,
           "median E(MMFF start) / median E(method); +inf when the method's median is <= 0",
           lambda s: _ratio(np.median(_e_ref(s)), np.median(_e(s)))),
    Metric("mean_energy_above_ground_kcal_mol", ("energy",), "kcal/mol", False,
           "mean oracle energy of the method's structure above the oracle ground state", lambda s: np.mean(_e(s)),
           True, lambda s: -_e(s).mean(axis=1)),
    Metric("median_energy_above_ground_kcal_mol", ("energy",), "kcal/mol", False,
           "median oracle energy of the method's structure above the oracle ground state",
           lambda s: np.median(_e(s))),
    Metric("within_1_kcal_mol", ("energy",), "fraction", True,
           "fraction of (molecule, seed) structures at most 1 kcal/mol above the oracle ground state",
           lambda s: np.mean(_e(s) <= CHEMICAL_ACCURACY_KCAL_MOL), True),
    Metric("mean_rmsd_heavy_ang", ("energy",), "Angstrom", False,
           "mean symmetry-aware aligned RMSD of the method's structure to the oracle ground state, heavy atoms",
           lambda s: _nanmean(s.own[Col.RMSD_HEAVY])),
    Metric("mean_rmsd_all_ang", ("energy",), "Angstrom", False,
           "mean symmetry-aware aligned RMSD of the method's structure to the oracle ground state, all atoms",
           lambda s: _nanmean(s.own[Col.RMSD_ALL])),
    Metric("median_speedup", ("relax",), "fraction of steps", True,
           "median over (molecule, seed) of 1 - BFGS steps from the method / BFGS steps from the MMFF start",
           lambda s: np.median(speedups(s)), True, lambda s: speedups(s).mean(axis=1)),
    Metric("p25_speedup", ("relax",), "fraction of steps", True, "25th percentile of the speedup",
           lambda s: np.quantile(speedups(s), 0.25)),
    Metric("p75_speedup", ("relax",), "fraction of steps", True, "75th percentile of the speedup",
           lambda s: np.quantile(speedups(s), 0.75)),
    Metric("fraction_slower", ("relax",), "fraction", False,
           "fraction of (molecule, seed) relaxations that took more steps than from the MMFF start",
           lambda s: np.mean(speedups(s) < 0)),
    Metric("median_speedup_same_basin", ("relax",), "fraction of steps", True,
           "median speedup over the relaxations whose final energy is within 0.2 kcal/mol of the MMFF-started one",
           _same_basin_speedup),
    Metric("median_oracle_steps", ("relax",), "BFGS steps", False, "median BFGS steps of the oracle relaxation",
           lambda s: np.median(s.own[Col.ORACLE_STEPS])),
    Metric("median_delta_e_kcal_mol", ("relax",), "kcal/mol", None,
           "median of E(relaxed from MMFF) - E(relaxed from the method); > 0 when the method's relaxation ended lower",
           lambda s: np.median(energy_deltas(s))),
    Metric("mean_relaxed_rmsd_heavy_ang", ("relax",), "Angstrom", False,
           "mean symmetry-aware aligned RMSD of the oracle-relaxed structure to the oracle ground state, heavy atoms",
           lambda s: _nanmean(s.own[Col.RELAXED_RMSD_HEAVY])),
    Metric("oracle_calls_saved_per_molecule", ("relax",), "force calls", True,
           "mean force calls of the relaxation from MMFF minus from the method",
           lambda s: np.mean(s.ref[Col.N_FORCE_CALLS] - s.own[Col.N_FORCE_CALLS])),
    Metric("net_saving_s_per_molecule", ("relax",), "s", True,
           "mean of (force calls saved x the molecule's time per call in its MMFF relaxation) - the method's own time "
           "(denoiser_ms_per_molecule), on the run's hardware",
           lambda s: np.mean(_oracle_s_saved(s) - s.own[Col.DENOISER_S]), True),
    Metric("network_evaluations_per_molecule", ("relax", "energy"), "evaluations", False,
           "mean network evaluations the denoiser spent per molecule (0 for baselines)",
           lambda s: np.mean(s.own[Col.NETWORK_EVALUATIONS])),
    Metric("denoiser_ms_per_molecule", ("relax", "energy"), "ms", False,
           "mean time the method itself spends per molecule: a denoiser's network evaluations x its measured time "
           "per evaluation, or a baseline's own computation (a UFF or xTB pre-relaxation)",
           lambda s: 1000 * np.mean(s.own[Col.DENOISER_S])),
    Metric("output_atom_stability", ("stability",), "fraction", True,
           "stable atoms / atoms of the method's structures, pooled over molecules and seeds (EDM's atom "
           "stability, by EDM's bond rule for the dataset's elements)",
           lambda s: float(np.nansum(s.own[Col.N_ATOMS_STABLE]) / max(np.nansum(s.own[Col.N_ATOMS]), 1.0))),
    Metric("output_molecule_stability", ("stability",), "fraction", True,
           "fraction of (molecule, seed) structures whose every atom is stable (EDM's molecule stability)",
           lambda s: _nanmean(s.own[Col.MOLECULE_STABLE]), True,
           per_molecule=lambda s: s.own[Col.MOLECULE_STABLE].mean(axis=1)),
    Metric("output_validity", ("stability",), "fraction", True,
           "fraction of structures whose perceived bonds RDKit accepts (EDM's validity, largest fragment)",
           lambda s: _nanmean(s.own[Col.VALID])),
    Metric("alignment_gap", ("path",), "cosine", True,
           "mean over molecules of the frame-mean cos(Δ10, gs) - cos(Δ10, f), gs = to the relaxation of the "
           "path's end (the study's); molecules whose relaxation did not converge left out",
           lambda s: _nanmean(s.own[GAP_STUDY]), True),
    Metric("alignment_gap_fixed_gs", ("path",), "cosine", True,
           "as alignment_gap with gs = to the molecule's fixed reference ground state",
           lambda s: _nanmean(s.own[GAP_FIXED])),
]
#: Every metric, by name, in report order.
METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}
#: The metric a benchmark table is ranked by: the first of these that its runs measured.
PRIMARY = ("median_speedup", "energy_ratio")
#: Counts reported beside the metrics.
COUNTS = {"n_molecules": "molecules the metrics are computed over (the subset minus n_excluded)",
          "n_seeds": "denoiser seeds pooled (1 for deterministic methods)",
          "n_failed": "(molecule, seed) rows whose output or oracle call failed; they take the MMFF start's values",
          "n_unconverged": "oracle relaxations that stopped at the step limit (counted with the steps they used)",
          "n_excluded": "molecules without a reference value (ground state or MMFF start failed), left out of "
                        "every method",
          "n_path_excluded": "molecules whose path-end relaxation did not converge (left out of alignment_gap)"}


# -- statistics -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bootstrap:
    """Settings of every interval and tie test (recorded in the run's manifest)."""

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 10 or not 0 < self.level < 1:
            raise ValueError(f"need n_resamples >= 10 and 0 < level < 1, got {self.n_resamples}, {self.level}")

    def indices(self, n: int) -> np.ndarray:
        """(n_resamples, n) molecule indices drawn with replacement (seeded)."""
        return np.random.default_rng(self.seed).integers(0, n, size=(self.n_resamples, n))

    def bounds(self, values: np.ndarray) -> tuple[float, float]:
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return float("nan"), float("nan")
        # the empirical quantiles (no interpolation: a draw may be +inf, a perfect method's ratio)
        lo, hi = np.quantile(values, [(1 - self.level) / 2, (1 + self.level) / 2], method="inverted_cdf")
        return float(lo), float(hi)


def interval(metric: Metric, sample: Sample, bootstrap: Bootstrap = Bootstrap()) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric``, resampling molecules (each with all its seeds)."""
    if len(sample.ids) < 2:
        return float("nan"), float("nan")
    return bootstrap.bounds(np.array([metric(sample.take(i)) for i in bootstrap.indices(len(sample.ids))]))


def _difference(a: float, b: float) -> float:
    return 0.0 if a == b else a - b  # equal infinities differ by nothing


def paired_difference(metric: Metric, a: Sample, b: Sample, bootstrap: Bootstrap = Bootstrap()
                      ) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` on the molecules both have, with a paired bootstrap
    interval: both are resampled with the same molecules."""
    common = [m for m in a.ids if m in set(b.ids)]
    a, b = a.restrict(common), b.restrict(common)
    diff = _difference(metric(a), metric(b))
    if len(common) < 2:
        return diff, float("nan"), float("nan")
    draws = np.array([_difference(metric(a.take(i)), metric(b.take(i))) for i in bootstrap.indices(len(common))])
    return (diff, *bootstrap.bounds(draws))


def separable(metric: Metric, a: Sample, b: Sample, bootstrap: Bootstrap = Bootstrap()) -> bool:
    """Whether two methods differ in ``metric`` beyond the noise of the molecule choice.

    With a per-molecule value behind the metric (speedup, energy): the bootstrap
    interval over molecules of the mean per-molecule difference a_i - b_i must
    exclude 0 (a paired test: a method better on most molecules is separable even
    when the medians of a small set coincide). Otherwise (ratios of means): the
    paired interval of ``metric(a) - metric(b)`` must.
    """
    if metric.per_molecule is None:
        _, lo, hi = paired_difference(metric, a, b, bootstrap)
    else:
        common = [m for m in a.ids if m in set(b.ids)]
        d = metric.per_molecule(a.restrict(common)) - metric.per_molecule(b.restrict(common))
        if len(common) < 2 or np.all(d == 0):
            return False
        lo, hi = bootstrap.bounds(d[bootstrap.indices(len(d))].mean(axis=1))
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))


# -- whole runs -----------------------------------------------------------------------------------------------------

def samples(tables: Mapping[str, pd.DataFrame], method: str, reference: str = REFERENCE) -> dict[str, Sample]:
    """A method's :class:`Sample` for each per-molecule table it has rows in."""
    out = {}
    for name in ("stability", "energy", "relax"):  # relax last: summarise_method counts its molecules
        if name in tables and method in set(tables[name][Col.METHOD]):
            out[name] = prepare(tables[name], name, method, reference)
    if "path" in tables and method in set(tables["path"][Col.METHOD]):
        out["path"] = prepare_path(tables["path"], method)
    return out


def methods_of(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Every method of the tables, in order of first appearance."""
    seen: dict[str, None] = {}
    for name in ("energy", "relax", "path", "stability"):
        if name in tables:
            seen.update(dict.fromkeys(pd.unique(tables[name][Col.METHOD])))
    return list(seen)


def metric_sample(metric: Metric, method_samples: Mapping[str, Sample]) -> Sample | None:
    """The sample a metric is computed on: the first of its tables the method has."""
    return next((method_samples[t] for t in metric.tables if t in method_samples), None)


def summarise_method(method_samples: Mapping[str, Sample], bootstrap: Bootstrap | None = Bootstrap()
                     ) -> dict[str, float | int]:
    """Every metric (and interval, unless ``bootstrap`` is None) and count of one method."""
    row: dict[str, float | int] = {}
    for metric in METRICS.values():
        sample = metric_sample(metric, method_samples)
        if sample is None:
            continue
        row[metric.name] = metric(sample)
        if metric.interval and bootstrap is not None:
            row[f"{metric.name}_ci_low"], row[f"{metric.name}_ci_high"] = interval(metric, sample, bootstrap)
    paired = [s for t, s in method_samples.items() if t != "path"]
    if paired:
        first = paired[-1]  # relax when measured: its molecule set is the one the speedups count
        row["n_molecules"] = len(first.ids)
        row["n_seeds"] = first.own[next(iter(first.own))].shape[1]
        row["n_failed"] = max(s.n_failed for s in paired)
        row["n_unconverged"] = sum(s.n_unconverged for s in paired)
        row["n_excluded"] = len(set().union(*(s.excluded for s in paired)))
    if "path" in method_samples:
        row["n_path_excluded"] = len(method_samples["path"].excluded)
    return row


def summarise(tables: Mapping[str, pd.DataFrame], bootstrap: Bootstrap | None = Bootstrap(),
              reference: str = REFERENCE) -> pd.DataFrame:
    """One row per method: every metric with its interval and the counts (the
    headline table of a run, a report and a leaderboard)."""
    rows = [{Col.METHOD: m, **summarise_method(samples(tables, m, reference), bootstrap)} for m in methods_of(tables)]
    return pd.DataFrame(rows)


def per_molecule(df: pd.DataFrame, table: str, reference: str = REFERENCE) -> pd.DataFrame:
    """The rows of a per-molecule table as the metrics count them: long format,
    one row per (molecule, method, seed), with the failure rule applied and, for
    ``relax``, the speedup and energy delta of each row (for figures)."""
    frames = []
    for method in methods_of({table: df}):
        s = prepare(df, table, method, reference)
        n_seeds = next(iter(s.own.values())).shape[1]
        seeds = _seeds(df[df[Col.METHOD] == method])
        out = pd.DataFrame({Col.ID: np.repeat(s.ids, n_seeds), Col.METHOD: method,
                            Col.SEED: pd.array(np.tile(seeds, len(s.ids)), dtype="Int64")})
        for col, values in s.own.items():
            out[col] = values.ravel()
        if table == "relax":
            out[Col.REFERENCE_ORACLE_STEPS] = np.repeat(s.ref[Col.ORACLE_STEPS][:, 0], n_seeds)
            out[Col.SPEEDUP] = speedups(s).ravel()
            out[Col.DELTA_E] = energy_deltas(s).ravel()
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def metrics_markdown() -> str:
    """The README's METRICS section body: every metric and count with its unit,
    direction and definition."""
    lines = ["| metric | unit | better | definition |", "| --- | --- | --- | --- |"]
    for m in METRICS.values():
        better = {True: "higher", False: "lower", None: "-"}[m.higher_is_better]
        lines.append(f"| `{m.name}` | {m.unit} | {better} | {m.definition}"
                     + (" (95 % bootstrap interval)" if m.interval else "") + " |")
    lines += [f"| `{name}` | count | - | {text} |" for name, text in COUNTS.items()]
    return "\n".join(lines)
