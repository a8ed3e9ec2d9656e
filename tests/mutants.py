"""Hand-written mutants of the metric and analysis code (``make test-mutants``).

Each mutant replaces one exact piece of source text by a plausible mistake (a
flipped sign, swapped arguments, an off-by-one, a dropped rule) and runs the tests
that should notice. A mutant is *killed* when those tests fail; the script prints
each outcome and the kill rate, and exits 1 if any mutant survived. The source is
restored after every mutant, also on Ctrl-C.

    python -m tests.mutants            # all mutants
    python -m tests.mutants -k energy  # those whose name contains "energy"
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS_TESTS = ("tests/bench/test_metrics.py",)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...] = METRICS_TESTS


MUTANTS = [
    Mutant("energy ratio inverted", "bench/metrics.py",
           "lambda s: _ratio(np.mean(_e_ref(s)), np.mean(_e(s)))", "lambda s: _ratio(np.mean(_e(s)), np.mean(_e_ref(s)))"),
    Mutant("energy ratio of medians instead of means", "bench/metrics.py",
           "lambda s: _ratio(np.mean(_e_ref(s)), np.mean(_e(s)))",
           "lambda s: _ratio(np.median(_e_ref(s)), np.median(_e(s)))"),
    Mutant("perfect method gets NaN", "bench/metrics.py",
           'return float("inf") if denominator <= 0 else', 'return float("nan") if denominator <= 0 else'),
    Mutant("within 1 kcal/mol strict", "bench/metrics.py",
           "np.mean(_e(s) <= CHEMICAL_ACCURACY_KCAL_MOL)", "np.mean(_e(s) < CHEMICAL_ACCURACY_KCAL_MOL)"),
    Mutant("p25 and p75 swapped", "bench/metrics.py",
           "lambda s: np.quantile(speedups(s), 0.25)", "lambda s: np.quantile(speedups(s), 0.75)"),
    Mutant("speedup against steps, not 1 - ratio", "bench/metrics.py",
           "return 1.0 - s.own[Col.ORACLE_STEPS] / np.maximum(s.ref[Col.ORACLE_STEPS], 1.0)",
           "return s.own[Col.ORACLE_STEPS] / np.maximum(s.ref[Col.ORACLE_STEPS], 1.0) - 1.0"),
    Mutant("reference of 0 steps divides by 0", "bench/metrics.py",
           "np.maximum(s.ref[Col.ORACLE_STEPS], 1.0)", "s.ref[Col.ORACLE_STEPS]"),
    Mutant("fraction slower counts ties", "bench/metrics.py",
           "np.mean(speedups(s) < 0)", "np.mean(speedups(s) <= 0)"),
    Mutant("energy delta sign flipped", "bench/metrics.py",
           "(s.ref[Col.RELAXED_ENERGY] - s.own[Col.RELAXED_ENERGY])",
           "(s.own[Col.RELAXED_ENERGY] - s.ref[Col.RELAXED_ENERGY])"),
    Mutant("failures dropped instead of taking the start's values", "bench/metrics.py",
           "own[col] = np.where(failed, ref[col], _grid(rows, ids, seeds, col))",
           "own[col] = _grid(rows, ids, seeds, col)"),
    Mutant("molecules without a reference kept", "bench/metrics.py",
           "bad |= {m for m in ids if m not in ref.index or ref[m] in _FAILED}", "bad |= set()"),
    Mutant("denoiser cost added to the saving", "bench/metrics.py",
           "np.mean(_oracle_s_saved(s) - s.own[Col.DENOISER_S])", "np.mean(_oracle_s_saved(s) + s.own[Col.DENOISER_S])"),
    Mutant("cost from wall times, not calls", "bench/metrics.py",
           "return (s.ref[Col.N_FORCE_CALLS] - s.own[Col.N_FORCE_CALLS]) * per_call",
           "return s.ref[Col.WALL_S] - s.own[Col.WALL_S]"),
    Mutant("alignment gap sign flipped", "bench/metrics.py",
           'gap_study = (cosine(f"cos_d{k}_gs") - cosine(f"cos_d{k}_f"))',
           'gap_study = (cosine(f"cos_d{k}_f") - cosine(f"cos_d{k}_gs"))'),
    Mutant("alignment gap keeps non-converged ends", "bench/metrics.py",
           '.where(rows["path_ground_converged"].astype(bool))', ""),
    Mutant("paired difference resamples other molecules for b", "bench/metrics.py",
           "_difference(metric(a.take(i)), metric(b.take(i)))",
           "_difference(metric(a.take(i)), metric(b.take((i + 1) % len(common))))"),
    Mutant("tie test resamples the two methods apart", "bench/metrics.py",
           "lo, hi = bootstrap.bounds(d[bootstrap.indices(len(d))].mean(axis=1))",
           "lo, hi = bootstrap.bounds((d + metric.per_molecule(b.restrict(common)))[bootstrap.indices(len(d))]"
           ".mean(axis=1) - metric.per_molecule(b.restrict(common))[bootstrap.indices(len(d))[::-1]].mean(axis=1))"),
    Mutant("interval resamples nothing", "bench/metrics.py",
           "bootstrap.bounds(np.array([metric(sample.take(i)) for i in bootstrap.indices(len(sample.ids))]))",
           "bootstrap.bounds(np.array([metric(sample) for i in bootstrap.indices(len(sample.ids))]))"),
    Mutant("unconverged relaxation called an oracle failure", "bench/tasks/relaxation.py",
           "row[Col.STATUS] = Status.UNCONVERGED", "row[Col.STATUS] = Status.ORACLE_FAILED",
           ("tests/bench/tasks/test_relaxation.py",)),
    Mutant("NaN output accepted", "bench/tasks/relaxation.py",
           "if not np.all(np.isfinite(pos)):", "if False:", ("tests/bench/tasks/test_relaxation.py",)),
    Mutant("a failing batch fails every molecule", "bench/tasks/relaxation.py",
           "                one = call([i])", "                one = call(ok)", ("tests/bench/tasks/test_relaxation.py",)),
    Mutant("fixed ground-state vector reversed", "bench/tasks/alignment.py",
           "to_rgs = ground.positions - path[s]", "to_rgs = path[s] - ground.positions",
           ("tests/bench/tasks/test_alignment.py",)),
    Mutant("all-atom RMSD ignores the symmetry", "bench/tasks/structure.py",
           "rmsd_all = rdMolAlign.GetBestRMS(_with_conformer(full, probe), _with_conformer(full, reference),\n"
           "                                     maxMatches=MAX_MATCHES)",
           "rmsd_all = rdMolAlign.GetBestRMS(_with_conformer(full, probe), _with_conformer(full, reference),\n"
           "                                     maxMatches=1)", ("tests/bench/tasks/test_structure.py",)),
    Mutant("RMSD not aligned", "bench/tasks/structure.py",
           "rmsd_heavy = rdMolAlign.GetBestRMS(", "rmsd_heavy = rdMolAlign.CalcRMS(",
           ("tests/bench/tasks/test_structure.py",)),
    Mutant("burn-in sliced from the wrong end", "bench/tasks/boltzmann.py",
           "return ChainResult(energies[burn_in:],", "return ChainResult(energies[:n_steps - burn_in],",
           ("tests/bench/tasks/test_boltzmann.py",)),
    Mutant("wrong Boltzmann constant", "bench/tasks/boltzmann.py",
           "K_B_EV = kB", "K_B_EV = 1e-4", ("tests/bench/tasks/test_boltzmann.py",)),
    Mutant("Boltzmann shift sign flipped", "bench/tasks/boltzmann_stats.py",
           'diffusion[E] - diffusion["molecule"].map(shift).fillna(0.0)',
           'diffusion[E] + diffusion["molecule"].map(shift).fillna(0.0)', ("tests/bench/tasks/test_boltzmann_stats.py",)),
    Mutant("phases: final at one frame, not from it on", "bench/tasks/phases.py",
           "elements_final = settled(numbers == numbers[-1])", "elements_final = numbers == numbers[-1]",
           ("tests/bench/tasks/test_phases.py",)),
    Mutant("phases: Frobenius step size", "bench/tasks/phases.py",
           "steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean(axis=1)",
           "steps = np.linalg.norm(np.diff(positions, axis=0), axis=(1, 2))", ("tests/bench/tasks/test_phases.py",)),
    Mutant("phases: bond-order rows, not bond counts", "bench/tasks/phases.py",
           "counts = np.stack([o.sum(axis=1) for o in orders])", "counts = np.stack(orders)",
           ("tests/bench/tasks/test_phases.py",)),
    Mutant("repeat_step uses step n", "edm_core/model.py",
           "torch.cat([z[..., :3], types], dim=-1), n - 1,", "torch.cat([z[..., :3], types], dim=-1), n,",
           ("tests/edm_core/test_network.py",)),
    Mutant("repeat_step carries the types over", "edm_core/model.py",
           "torch.cat([z[..., :3], types], dim=-1), n - 1,", "z, n - 1,", ("tests/edm_core/test_network.py",)),
    Mutant("leaderboard ranks the wrong way", "bench/leaderboard.py",
           "-key if up else key", "key if up else -key", ("tests/bench/test_leaderboard.py",)),
    Mutant("leaderboard ties from the wrong neighbour", "bench/leaderboard.py",
           'df.at[i + 1, Col.METHOD], df.at[i + 1, "run"]', 'df.at[i, Col.METHOD], df.at[i, "run"]',
           ("tests/bench/test_leaderboard.py",)),
]


def run_mutant(mutant: Mutant) -> bool:
    """Apply the mutant, run its tests, restore; True when the tests failed (killed)."""
    path = ROOT / mutant.path
    source = path.read_text()
    if source.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name!r}: its text occurs {source.count(mutant.old)} times in "
                         f"{mutant.path} (expected once); update tests/mutants.py")
    try:
        path.write_text(source.replace(mutant.old, mutant.new))
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 "-p", "no:randomly", *mutant.tests], cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(source)
    return result.returncode != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k in m.name]
    killed = 0
    for k, mutant in enumerate(chosen, 1):
        t0 = time.perf_counter()
        dead = run_mutant(mutant)
        killed += dead
        print(f"[{k}/{len(chosen)}] {'killed  ' if dead else 'SURVIVED'} {mutant.name} "
              f"({mutant.path}, {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"kill rate: {killed}/{len(chosen)} = {killed / max(1, len(chosen)):.0%}")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main())
