"""The dataset builder: SMILES -> ETKDG -> MMFF94 start -> GFN2-xTB ground state.

For every SMILES line (the line index is the molecule's ``source_index``):

1. RDKit parses it; the canonical SMILES fixes the atom order
   (``AddHs(MolFromSmiles(canonical))``), so a record can always be matched to
   its graph again.
2. ETKDG embeds ``n_conformers`` conformers (seeded), each optimised with MMFF94.
   The MMFF-lowest conformer is the *start* (the classical baseline geometry).
3. Each conformer is relaxed with the oracle (ASE BFGS to ``ground_fmax``); the
   lowest oracle energy is the *ground state*. A relaxation that changes the
   covalent bonding (proton transfer in a zwitterion, ring opening) is not a
   ground state of this molecule: it is rejected with that reason.

Failures at any stage are recorded in ``rejects.csv`` with the stage and reason;
they never stop the build. Work is distributed over processes (or a Dask
cluster) and every finished molecule is stored at once in
``<out>/work/build.sqlite``, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import SHIPPED_ROOT, FORMAT_VERSION, write_json_atomic, write_split
from bench.errors import InputError
from bench.parallel import make_executor, run_jobs
from bench.store import ResultStore, settings_hash

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # bench/ -> the repository -> beside it


@dataclass(frozen=True)
class BuildSettings:
    """Every setting that determines a built molecule (all recorded in the manifest)."""

    seed: int = 20240913
    n_conformers: int = 1
    mmff_variant: str = "MMFF94"
    mmff_max_iters: int = 5000
    oracle: str = "xtb"
    ground_fmax: float = 0.005
    ground_optimizer: str = "BFGS"
    ground_max_steps: int = 3000
    #: With several conformers: relax each to this fmax first, then only the
    #: lowest to ``ground_fmax`` (``None``: every conformer to ``ground_fmax``).
    screen_fmax: float | None = None
    #: Tighten the lowest screened conformer by continuing its optimizer (True; on two
    #: DRUGS molecules 7-26% fewer xTB calls, measured), or with a fresh one (None/False).
    screen_continue: bool | None = None
    #: bond broken if longer than this times the sum of covalent radii ...
    bond_break_factor: float = 1.3
    #: ... and a new bond if an unbonded pair is shorter than this times the sum.
    bond_form_factor: float = 1.0
    split_fractions: tuple[float, float, float] = (0.90, 0.05, 0.05)

    def __post_init__(self) -> None:
        if self.n_conformers < 1:
            raise ValueError("n_conformers must be >= 1")
        if not 0 < self.ground_fmax <= 0.03:
            raise ValueError(f"ground_fmax must be in (0, 0.03] eV/A, got {self.ground_fmax}")
        if self.screen_fmax is not None and self.screen_fmax < self.ground_fmax:
            raise ValueError(f"screen_fmax ({self.screen_fmax}) must be >= ground_fmax ({self.ground_fmax})")
        if abs(sum(self.split_fractions) - 1) > 1e-9 or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be >= 0 and sum to 1, got {self.split_fractions}")

    def key(self) -> str:
        """Hash of the settings; unset (``None``) options are left out, so adding an
        option does not invalidate work done before it existed."""
        return settings_hash({k: v for k, v in dataclasses.asdict(self).items() if v is not None})


@dataclass(frozen=True)
class Recipe:
    """A named dataset: where its SMILES come from and how it is built."""

    name: str
    smiles_path: Path
    settings: BuildSettings
    description: str
    #: SMILES files whose molecules this set must not hold (a training set kept
    #: disjoint from a test set by canonical SMILES).
    exclude: tuple[Path, ...] = ()


RECIPES: dict[str, Recipe] = {
    "qm9-xtb": Recipe(
        "qm9-xtb", SHARED_DATA / "qm9_smiles.txt", BuildSettings(),
        "QM9 molecules (GDB-9, up to 9 heavy atoms C, N, O, F), first lines of the shuffled SMILES list",
    ),
    "drugs-xtb": Recipe(
        "drugs-xtb", SHARED_DATA / "real_formats" / "geom_drugs_smiles.txt",
        BuildSettings(n_conformers=3, screen_fmax=0.03),
        "GEOM-DRUGS test-set molecules; ground state = lowest of 3 xTB-relaxed conformers (screened at "
        "fmax 0.03, the lowest tightened to 0.005), start = MMFF-lowest",
    ),
    "zinc-xtb": Recipe(
        "zinc-xtb", SHARED_DATA / "zinc_leq20nodes.txt",
        BuildSettings(n_conformers=3, screen_fmax=0.03),
        "ZINC drug-like molecules with at most 20 heavy atoms (a smaller DRUGS-like set, to train on); "
        "none of the GEOM-DRUGS test molecules (by canonical SMILES)",
        exclude=(SHARED_DATA / "real_formats" / "geom_drugs_smiles.txt",),
    ),
}


def resolve_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise InputError(f"unknown dataset recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name]


def split_of(canonical_smiles: str, fractions: tuple[float, float, float]) -> str:
    """Deterministic split from the sha256 of the canonical SMILES."""
    u = int(hashlib.sha256(canonical_smiles.encode()).hexdigest()[:15], 16) / 16**15
    if u < fractions[0]:
        return "train"
    return "valid" if u < fractions[0] + fractions[1] else "test"


def _topology_change(numbers: np.ndarray, positions: np.ndarray, bonds: set[tuple[int, int]],
                     s: BuildSettings) -> str:
    """'' if the bonding of ``positions`` matches ``bonds``, else what changed."""
    from ase.data import covalent_radii

    r = covalent_radii[numbers]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    limit = r[:, None] + r[None]
    for i, j in sorted(bonds):
        if d[i, j] > s.bond_break_factor * limit[i, j]:
            return f"bond {i}-{j} broken ({d[i, j]:.2f} A)"
    close = np.argwhere(np.triu(d < s.bond_form_factor * limit, k=1))
    for i, j in close:
        if (int(i), int(j)) not in bonds:
            return f"new bond {i}-{j} ({d[i, j]:.2f} A)"
    return ""


def build_molecule(source_index: int, smiles: str, name: str, settings: BuildSettings) -> dict[str, Any]:
    """Build one molecule; never raises for a chemistry failure.

    Returns a dict with ``status`` ``"ok"`` (and the record fields) or
    ``"rejected"`` (with ``stage`` and ``reason``).
    """
    from ase import Atoms
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    from bench.oracles import get_oracle

    RDLogger.DisableLog("rdApp.*")
    t0 = time.perf_counter()
    base = {"source_index": source_index, "input_smiles": smiles}

    def reject(stage: str, reason: str) -> dict[str, Any]:
        return {**base, "status": "rejected", "stage": stage, "reason": reason, "wall_s": time.perf_counter() - t0}

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return reject("parse", "RDKit cannot parse the SMILES")
    canonical = Chem.MolToSmiles(mol)
    mol = Chem.AddHs(Chem.MolFromSmiles(canonical))
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    charge = Chem.GetFormalCharge(mol)
    multiplicity = 1 + sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    bonds = {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds()}
    if len(Chem.GetMolFrags(mol)) > 1:
        return reject("parse", "disconnected fragments")

    params = AllChem.ETKDGv3()
    params.randomSeed = settings.seed
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=settings.n_conformers, params=params))
    if not conf_ids:
        params.useRandomCoords = True
        conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=settings.n_conformers, params=params))
    if not conf_ids:
        return reject("embed", "ETKDG embedding failed (also from random coordinates)")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        return reject("mmff", f"{settings.mmff_variant} has no parameters for this molecule")
    results = AllChem.MMFFOptimizeMoleculeConfs(
        mol, maxIters=settings.mmff_max_iters, mmffVariant=settings.mmff_variant)
    mmff_energies = [e for (_, e) in results]
    if not all(np.isfinite(mmff_energies)):
        return reject("mmff", "MMFF optimisation gave a non-finite energy")
    start_conf = conf_ids[int(np.argmin(mmff_energies))]

    oracle = get_oracle(settings.oracle)
    start_pos = mol.GetConformer(start_conf).GetPositions()
    start_pos = start_pos - start_pos.mean(axis=0)
    start_atoms = Atoms(numbers=numbers, positions=start_pos)
    start_atoms.info.update(charge=charge, multiplicity=multiplicity, smiles=canonical)
    sp = oracle.single_point(start_atoms, name=f"{name}[{source_index}]")
    if not sp.ok:
        return reject("oracle-start", sp.message)

    def relax(run: Any, fmax: float, label: str) -> tuple[float, np.ndarray] | str:
        """Run a relaxation to ``fmax``: (energy, centred positions), or why it failed."""
        res = run.run(fmax, settings.ground_max_steps)
        n_steps.append(res.n_steps)
        if res.status != "converged":
            return f"{label}: {res.status} {res.message}".strip()
        changed = _topology_change(numbers, res.positions_ang, bonds, settings)
        if changed:
            return f"{label}: topology changed during relaxation: {changed}"
        return res.energy_ev, res.positions_ang - res.positions_ang.mean(axis=0)

    def start(positions: np.ndarray) -> Any:
        atoms = start_atoms.copy()
        atoms.positions = positions - positions.mean(axis=0)
        return oracle.relaxation(atoms, f"{name}[{source_index}]", settings.ground_optimizer)

    screen = settings.screen_fmax if len(conf_ids) > 1 else None
    n_steps: list[int] = []
    failures: list[str] = []
    candidates: list[tuple[tuple[float, np.ndarray], Any]] = []
    for cid in conf_ids:
        run = start(mol.GetConformer(cid).GetPositions())
        out = relax(run, screen or settings.ground_fmax, f"conformer {cid}")
        if isinstance(out, str):
            failures.append(out)
        else:
            candidates.append((out, run))
    best = min(candidates, key=lambda c: c[0][0]) if candidates else None
    if best is not None and screen is not None:
        # Tighten the lowest: go on with its optimizer (BFGS keeps its Hessian) or start afresh.
        run = best[1] if settings.screen_continue else start(best[0][1])
        best = relax(run, settings.ground_fmax, "lowest conformer, tight")
        if isinstance(best, str):
            failures.append(best)
            best = None
    else:
        best = best[0] if best is not None else None
    if best is None:
        stage = "topology" if all("topology" in f for f in failures) else "oracle-relax"
        return reject(stage, "; ".join(failures))
    return {
        **base, "status": "ok", "smiles": canonical, "numbers": numbers.tolist(), "charge": charge,
        "multiplicity": multiplicity, "start_positions": start_pos, "ground_positions": best[1],
        "start_energy_ev": sp.energy_ev, "ground_energy_ev": best[0],
        "split": split_of(canonical, settings.split_fractions), "relax_steps": n_steps,
        "n_conformers_relaxed": len(candidates), "wall_s": time.perf_counter() - t0,
    }


def read_smiles(path: Path, limit: int | None = None) -> list[tuple[int, str]]:
    """(line index, SMILES) of the first ``limit`` non-empty lines (first column)."""
    out = []
    with open(path) as fh:
        for i, line in enumerate(fh):
            fields = line.split()
            if fields:
                out.append((i, fields[0]))
            if limit is not None and len(out) >= limit:
                break
    return out


def canonical_set(paths: Sequence[Path]) -> set[str]:
    """Canonical SMILES (RDKit, stereo kept) of every parsable line of the files."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out = set()
    for path in paths:
        for _, smiles in read_smiles(path):
            mol = Chem.MolFromSmiles(smiles)
            if mol is not None:
                out.add(Chem.MolToSmiles(mol))
    return out


def _excluded_row(source_index: int, smiles: str, excluded: set[str], sources: Sequence[Path]
                  ) -> dict[str, Any] | None:
    """The reject record of a line whose molecule is in an excluded set, or None."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None or Chem.MolToSmiles(mol) not in excluded:
        return None
    return {"source_index": source_index, "input_smiles": smiles, "status": "rejected", "stage": "excluded",
            "reason": "the same molecule (canonical SMILES) is in " + ", ".join(p.name for p in sources)}


def build_dataset(
    name: str,
    out_dir: Path | None = None,
    smiles_path: Path | None = None,
    limit: int | None = None,
    workers: int | None = None,
    dask: str | None = None,
    settings: BuildSettings | None = None,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_s: float | None = 600.0,
) -> dict[str, Any]:
    """Build (or resume building) a dataset and write it to ``out_dir``.

    Parameters
    ----------
    name : str
        A recipe in :data:`RECIPES` (``qm9-xtb``, ``drugs-xtb``, ``zinc-xtb``).
    out_dir : Path, optional
        Output folder (default: the shipped location ``datasets/<name>``).
    smiles_path : Path, optional
        SMILES file (default: the recipe's file in the shared data folder).
    limit : int, optional
        Use only the first ``limit`` SMILES.
    workers : int, optional
        Processes (default: all cores).
    dask : str, optional
        ``"local"`` for a Dask LocalCluster, or a scheduler address.
    settings : BuildSettings, optional
        Override the recipe's settings.
    checkpoint_s : float, optional
        Rewrite the dataset files from the finished molecules this often (seconds),
        so that a build stopped at any time leaves a usable, consistent dataset.

    Returns
    -------
    dict
        The manifest written to ``out_dir/manifest.json``.
    """
    recipe = resolve_recipe(name)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1 (SMILES lines to build), got {limit}")
    if workers is not None and workers < 0:
        raise InputError(f"--workers must be >= 1 (or 0: all cores), got {workers}")
    settings = settings or recipe.settings
    out_dir = Path(out_dir) if out_dir else SHIPPED_ROOT / name
    smiles_path = Path(smiles_path) if smiles_path else recipe.smiles_path
    if not smiles_path.is_file():
        raise FileNotFoundError(f"SMILES file {smiles_path} not found (pass --smiles PATH)")
    entries = read_smiles(smiles_path, limit)
    store = ResultStore(out_dir / "work" / "build.sqlite")
    skey = settings.key()

    def key(i: int, smi: str) -> str:
        return f"{skey}/{i}/{smi}"

    _import_existing(out_dir, skey, store, key, dict(entries))
    done = store.keys("build")
    todo = [(i, s) for i, s in entries if key(i, s) not in done]
    if recipe.exclude and todo:  # rejected before any work, with the reason
        excluded = canonical_set(recipe.exclude)
        rows = {(i, s): _excluded_row(i, s, excluded, recipe.exclude) for i, s in todo}
        for (i, s), row in rows.items():
            if row is not None:
                store.put("build", key(i, s), row)
        todo = [entry for entry in todo if rows[entry] is None]
    t0 = last_checkpoint = time.perf_counter()

    def finalise() -> dict[str, Any]:
        rows = [row for i, s in entries if (row := store.get("build", key(i, s))) is not None]
        return _finalise(recipe, settings, out_dir, smiles_path, rows, len(entries), time.perf_counter() - t0)

    if todo:
        from tqdm import tqdm

        n_workers = workers or os.cpu_count() or 1
        bar = tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"build {name}",
                   unit="mol", disable=not progress, smoothing=0.05)

        n_rej = 0
        pool = make_executor(n_workers, dask)
        previous = _sigterm_as_interrupt()
        try:
            # A bounded number in flight: molecules finish nearly in file order,
            # so an interrupted build holds a prefix of the SMILES file.
            jobs = (((i, s), (i, s, name, settings)) for i, s in todo)
            for job in run_jobs(pool, build_molecule, jobs, window=2 * n_workers):
                i, s = job.key
                row = job.value if job.error is None else _worker_reject(i, s, job.error, job.attempts)
                store.put("build", key(i, s), row)
                n_rej += row["status"] != "ok"
                if on_result is not None:
                    on_result(row)
                bar.update(1)
                bar.set_postfix(rejected=n_rej)
                if checkpoint_s and time.perf_counter() - last_checkpoint > checkpoint_s:
                    finalise()
                    last_checkpoint = time.perf_counter()
        except KeyboardInterrupt:
            # Stopped (Ctrl-C, SIGINT or SIGTERM): drop queued molecules without
            # waiting for running ones (their workers die with this process), and
            # write what is done.
            _stop_workers(pool)  # first: shutdown forgets the worker processes, and exit would wait for them
            pool.shutdown(wait=False, cancel_futures=True)
            finalise()
            raise
        else:
            pool.shutdown()
        finally:
            bar.close()
            _restore_sigterm(previous)
    manifest = finalise()
    store.close()
    return manifest


def _worker_reject(source_index: int, smiles: str, exc: BaseException, attempts: int) -> dict[str, Any]:
    """The record of a molecule whose worker failed ``attempts`` times (a Dask
    ``KilledWorker``, or a local pool broken more than :data:`WORKER_RETRIES` times)."""
    return {"source_index": source_index, "input_smiles": smiles, "status": "rejected", "stage": "worker",
            "reason": f"{type(exc).__name__}: {exc} ({attempts} attempt{'s' * (attempts > 1)})"}


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM stop a build like Ctrl-C (main thread only); returns the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _stop_workers(pool: Any) -> None:
    """Terminate a local process pool's workers (a Dask cluster's are its own business)."""
    stop = getattr(pool, "terminate_workers", None)
    if stop is not None:
        stop()


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _import_existing(out_dir: Path, skey: str, store: ResultStore, key: Callable[[int, str], str],
                     smiles_by_line: dict[int, str]) -> None:
    """Seed the work store from a dataset already written in ``out_dir`` with the
    same settings (a shipped set from git): a fresh clone resumes, not restarts.
    A record is taken only if its SMILES-file line still canonicalises to it."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")

    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file() or store.count("build"):
        return
    import json

    from bench.data.dataset import load_dataset

    manifest = json.loads(manifest_path.read_text())
    if manifest.get("settings_key") != skey:
        return
    items = []
    for split in manifest["splits"]:
        ms = load_dataset(out_dir, split)
        a = ms.arrays
        for k in range(len(ms)):
            rec = ms[k]
            row = {"source_index": int(a["source_index"][k]), "input_smiles": rec.smiles, "status": "ok",
                   "smiles": rec.smiles, "numbers": rec.numbers.tolist(), "charge": rec.charge,
                   "multiplicity": rec.multiplicity, "start_positions": rec.start_positions,
                   "ground_positions": rec.ground_positions, "start_energy_ev": rec.start_energy,
                   "ground_energy_ev": rec.ground_energy, "split": split, "imported": True}
            line = smiles_by_line.get(row["source_index"])
            parsed = Chem.MolFromSmiles(line) if line else None
            if parsed is not None and Chem.MolToSmiles(parsed) == rec.smiles:
                items.append((key(row["source_index"], line), {**row, "input_smiles": line}))
    for r in iter_rejects(out_dir):
        idx = int(r["source_index"])
        if smiles_by_line.get(idx) == r["smiles"]:
            items.append((key(idx, r["smiles"]), {"source_index": idx, "input_smiles": r["smiles"],
                                                 "status": "rejected", "stage": r["stage"], "reason": r["reason"],
                                                 "imported": True}))
    store.put_many("build", items)


def _finalise(recipe: Recipe, settings: BuildSettings, out_dir: Path, smiles_path: Path,
              rows: list[dict[str, Any]], n_requested: int, wall_s: float) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    rejected = [r for r in rows if r["status"] != "ok"]
    for r in ok:
        r["id"] = f"{recipe.name}-{r['source_index']:06d}"
    splits = {}
    for split in ("train", "valid", "test"):
        splits[split] = write_split(out_dir, split, [r for r in ok if r["split"] == split])
    with open(out_dir / "rejects.csv.tmp", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_index", "smiles", "stage", "reason"])
        for r in rejected:
            w.writerow([r["source_index"], r["input_smiles"], r["stage"], r["reason"]])
    os.replace(out_dir / "rejects.csv.tmp", out_dir / "rejects.csv")
    gaps = np.array([r["start_energy_ev"] - r["ground_energy_ev"] for r in ok]) if ok else np.zeros(0)
    from bench.units import EV_TO_KCAL_MOL

    stages: dict[str, int] = {}
    for r in rejected:
        stages[r["stage"]] = stages.get(r["stage"], 0) + 1
    build_cpu_s = float(sum(r.get("wall_s", 0.0) for r in rows))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": recipe.name,
        "description": recipe.description,
        "source": {"smiles_file": smiles_path.name, "smiles_sha256": hashlib.sha256(smiles_path.read_bytes()).hexdigest(),
                   "lines_requested": n_requested, "lines_done": len(rows), "complete": len(rows) == n_requested},
        "settings": dataclasses.asdict(settings),
        "settings_key": settings.key(),
        "oracle": {"name": settings.oracle, "method": "GFN2-xTB", "code": "tblite", "energy_unit": "eV"},
        "versions": {p: version(p) for p in ("rdkit", "tblite", "ase", "numpy")},
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
        "splits": splits,
        "n_molecules": len(ok),
        "rejects": {"n": len(rejected), "by_stage": stages},
        "start_minus_ground_kcal_mol": {
            "median": float(np.median(gaps) * EV_TO_KCAL_MOL) if len(gaps) else None,
            "mean": float(np.mean(gaps) * EV_TO_KCAL_MOL) if len(gaps) else None,
        },
        "build": {"cpu_s_summed_over_molecules": round(build_cpu_s, 1), "last_session_wall_s": round(wall_s, 1)},
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    return manifest


def iter_rejects(out_dir: Path) -> Iterable[dict[str, str]]:
    """The rows of a built dataset's ``rejects.csv``."""
    with open(Path(out_dir) / "rejects.csv", newline="") as fh:
        yield from csv.DictReader(fh)
