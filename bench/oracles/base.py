"""What every oracle shares: settings, results, caching and the relaxation loop.

An oracle is a factory of ASE calculators plus two operations, a single point
and a relaxation, both cached in an optional :class:`~bench.store.ResultStore`.
Subclasses only say how to build the calculator (:meth:`Oracle.make_calculator`).

Charge and spin travel with the molecule as ``atoms.info["charge"]`` and
``atoms.info["multiplicity"]`` (defaults 0 and the lowest multiplicity allowed
by the electron count), which is how :func:`bench.data.MoleculeRecord.to_atoms`
writes them.

Step counting
-------------
:attr:`RelaxResult.n_steps` is ASE's ``Optimizer.get_number_of_steps()`` after
the run: the number of position updates the optimizer made. A structure already
below ``fmax`` takes 0 steps; a BFGS run that updates the positions 12 times and
then finds ``max|F| < fmax`` takes 12 steps (and 13 force evaluations). The
study's speedups are ratios of exactly this number.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm import tqdm

from bench.data.validate import check_molecule, default_multiplicity
from bench.errors import InputError, OracleFailure, SettingsError
from bench.parallel import run_jobs
from bench.progress import show_progress
from bench.store import ResultStore, geometry_hash, settings_hash


OPTIMIZERS: dict[str, str] = {
    "BFGS": "ase.optimize:BFGS",
    "LBFGS": "ase.optimize:LBFGS",
    "FIRE": "ase.optimize:FIRE",
    "BFGSLineSearch": "ase.optimize:BFGSLineSearch",
}


def resolve_optimizer(name: str) -> type:
    """The ASE optimizer class called ``name``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown ASE optimizer {name!r}, choose from {sorted(OPTIMIZERS)}")
    module, attr = OPTIMIZERS[name].split(":")
    return getattr(__import__(module, fromlist=[attr]), attr)


def charge_and_multiplicity(atoms: Atoms) -> tuple[int, int]:
    """Charge and multiplicity of ``atoms`` (from ``atoms.info``, with defaults)."""
    charge = int(atoms.info.get("charge", 0))
    mult = atoms.info.get("multiplicity")
    return charge, int(mult) if mult is not None else default_multiplicity(atoms.numbers, charge)


@dataclass(frozen=True)
class SinglePointResult:
    """Energy and forces of one geometry, or the reason there are none."""

    status: str  # "ok" or "failed"
    energy_ev: float = float("nan")
    forces_ev_ang: np.ndarray | None = None
    wall_s: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RelaxResult:
    """Outcome of one relaxation.

    ``status`` is ``"converged"``, ``"not_converged"`` (hit ``max_steps``) or
    ``"failed"`` (the oracle raised; ``message`` says why, and the numbers are
    those of the last good geometry, NaN if there was none).
    """

    converged: bool
    n_steps: int
    n_force_calls: int
    energy_ev: float
    positions_ang: np.ndarray
    wall_s: float
    status: str
    message: str = ""
    fmax_ev_ang: float = float("nan")
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["positions_ang"] = np.asarray(self.positions_ang).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RelaxResult":
        return cls(**{**d, "positions_ang": np.asarray(d["positions_ang"], dtype=float)})


class Oracle:
    """Base class of the oracles: ASE calculators with cached single points and relaxations.

    Parameters
    ----------
    store : ResultStore, optional
        Cache for results; without it nothing is cached.
    executor : concurrent.futures.Executor, optional
        Where the ``*_many`` calls compute what the cache lacks (local processes or
        Dask, see :mod:`bench.parallel`); results are stored by this process only.
    **settings
        Oracle-specific settings (see each subclass's ``Settings``); they are part
        of every cache key and every run manifest.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type] = object
    #: Elements the oracle treats; ``None`` for all.
    elements: ClassVar[frozenset[int] | None] = None

    def __init__(self, store: ResultStore | None = None, executor: Executor | None = None, **settings: Any) -> None:
        fields = dataclasses.fields(self.Settings) if dataclasses.is_dataclass(self.Settings) else ()
        known = {f.name for f in fields}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SettingsError(f"oracle {self.name!r}: unknown setting(s) {unknown}; known: {sorted(known)}")
        self.settings = self.Settings(**settings)
        self.store = store
        self.executor = executor

    # -- to be provided by subclasses -------------------------------------------------
    def make_calculator(self, atoms: Atoms) -> Calculator:
        """A fresh ASE calculator for this molecule (charge and spin from ``atoms.info``)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Versions of the codes behind the oracle (part of the cache key)."""
        return {}

    # -- shared machinery ------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything that identifies this oracle's numbers (for manifests and keys)."""
        return {"oracle": self.name, "settings": dataclasses.asdict(self.settings), "versions": self.versions()}

    @property
    def key(self) -> str:
        """Short hash of :meth:`describe`: the store key prefix of this oracle."""
        return f"{self.name}-{settings_hash(self.describe())}"

    def check(self, atoms: Atoms, name: str = "molecule") -> None:
        """Raise :class:`InputError` if the oracle cannot treat ``atoms``."""
        charge, mult = charge_and_multiplicity(atoms)
        check_molecule(name, atoms.numbers, atoms.positions, charge, mult, self.elements)

    def _attach(self, atoms: Atoms, name: str) -> tuple[Atoms, list[int]]:
        """Copy ``atoms`` with a fresh calculator whose calls are counted and whose
        results are checked for NaN/inf (raised as :class:`OracleFailure`)."""
        atoms = atoms.copy()
        try:
            calc = self.make_calculator(atoms)
        except InputError as exc:  # e.g. no force-field parameters: name the molecule
            raise type(exc)(f"{name}: {exc}") from exc
        counter = [0]
        inner = calc.calculate

        def calculate(*args: Any, **kwargs: Any) -> None:
            counter[0] += 1
            try:
                inner(*args, **kwargs)
            except OracleFailure:
                raise
            except Exception as exc:  # any failure inside the QC code becomes an OracleFailure
                raise OracleFailure(f"{self.name}: {type(exc).__name__}: {exc}") from exc
            for prop in ("energy", "forces"):
                value = calc.results.get(prop)
                if value is not None and not np.all(np.isfinite(value)):
                    raise OracleFailure(f"{self.name}: non-finite {prop} returned")

        calc.calculate = calculate  # instance-level wrap: counts every evaluation
        atoms.calc = calc
        return atoms, counter

    def _cache_key(self, atoms: Atoms, extra: dict[str, Any] | None = None) -> str:
        """Store key (within a kind): oracle identity, call settings, geometry hash."""
        charge, mult = charge_and_multiplicity(atoms)
        geo = geometry_hash(atoms.numbers, atoms.positions, charge, mult)
        return f"{self.key}/{settings_hash(extra or {})}/{geo}"

    def single_point(self, atoms: Atoms, name: str = "molecule") -> SinglePointResult:
        """Energy (eV) and forces (eV/A) of ``atoms``; failures returned, not raised.

        Raises
        ------
        InputError
            If the molecule cannot be treated at all (checked before computing).
        """
        self.check(atoms, name)
        return self._many("single_point", [(atoms, name)], {}, strict=True)[0]

    def relax(
        self,
        atoms: Atoms,
        fmax: float = 0.03,
        optimizer: str = "BFGS",
        max_steps: int = 1000,
        name: str = "molecule",
        trajectory: list[np.ndarray] | None = None,
    ) -> RelaxResult:
        """Relax ``atoms`` with an ASE optimizer until ``max|F| < fmax`` (eV/A).

        Steps are counted as ASE's ``get_number_of_steps()`` (see the module
        docstring); ``n_force_calls`` counts every oracle evaluation. Oracle
        failures are returned as ``status="failed"``, never raised.

        Parameters
        ----------
        atoms : ase.Atoms
            Start geometry; not modified.
        fmax : float
            Convergence threshold on the largest atomic force, eV/A (study: 0.03).
        optimizer : str
            A name in :data:`OPTIMIZERS` (study: ``"BFGS"``, ASE defaults).
        max_steps : int
            Give up after this many steps (``status="not_converged"``).
        name : str
            Molecule name for error messages.
        trajectory : list, optional
            If given, every visited geometry is appended to it (computed here, not
            cached).

        Raises
        ------
        InputError
            If the molecule cannot be treated at all (checked before computing).
        """
        self.check(atoms, name)
        if trajectory is not None:
            settings = _relax_settings(fmax, optimizer, max_steps)
            return self._run_relaxation(atoms, name, resolve_optimizer(optimizer), settings, trajectory)
        return self._many("relax", [(atoms, name)], _relax_settings(fmax, optimizer, max_steps), strict=True)[0]

    def single_point_many(self, items: Sequence[tuple[Atoms, str]]) -> list[SinglePointResult]:
        """:meth:`single_point` of many ``(atoms, name)``: cached, in parallel on the
        executor when there is one. A molecule the oracle cannot treat comes back
        with ``status="invalid"`` and the reason, so one bad molecule never stops
        a batch."""
        return self._many("single_point", items, {})

    def relax_many(self, items: Sequence[tuple[Atoms, str]], fmax: float = 0.03, optimizer: str = "BFGS",
                   max_steps: int = 1000) -> list[RelaxResult]:
        """:meth:`relax` of many ``(atoms, name)``, as :meth:`single_point_many`."""
        return self._many("relax", items, _relax_settings(fmax, optimizer, max_steps))

    def _many(self, kind: str, items: Sequence[tuple[Atoms, str]], settings: dict, strict: bool = False) -> list:
        """Results of ``items`` in order: cached, computed here, or on the executor.

        A molecule refused while its calculator is built (no force-field
        parameters, say) comes back ``"invalid"``, or with ``strict`` raises its
        :class:`InputError`, as the one-molecule calls document. Items with the
        same cache key (the same geometry, e.g. a deterministic sampler's output
        under several seeds) are computed once.
        """
        decode = RelaxResult.from_dict if kind == "relax" else _single_point_from_dict
        results: list[Any] = [None] * len(items)
        todo: list[tuple[int, str]] = []
        repeats: dict[int, list[int]] = {}  # first index of a key in todo -> later indices with that key
        first_of: dict[str, int] = {}
        for idx, (atoms, name) in enumerate(items):
            try:
                self.check(atoms, name)
            except InputError as exc:
                results[idx] = _invalid(kind, atoms, str(exc))
                continue
            key = self._cache_key(atoms, settings if kind == "relax" else None)
            if self.store is not None and (hit := self.store.get(kind, key)) is not None:
                results[idx] = decode(hit)
            elif key in first_of:
                repeats.setdefault(first_of[key], []).append(idx)
            else:
                first_of[key] = idx
                todo.append((idx, key))
        what = "relaxations" if kind == "relax" else "single points"
        bar = tqdm(total=len(todo), desc=f"{self.name} {what}", disable=not show_progress(len(todo)), leave=False)
        cls, own_settings = type(self), dataclasses.asdict(self.settings)
        jobs = (((idx, key), (cls, own_settings, kind, *items[idx], settings)) for idx, key in todo)

        def here(_cls: type, _own: dict, *args: Any) -> dict:  # in this process: this oracle, not a rebuilt one
            return _compute_here(self, *args)

        for job in run_jobs(self.executor, _compute, jobs, local=here):
            idx, key = job.key
            atoms = items[idx][0]
            if job.error is None:
                results[idx] = self._finish(kind, key, job.value)
            elif isinstance(job.error, InputError):
                results[idx] = _refused(job.error, strict, kind, atoms)
            else:  # a worker that died or raised: a failure of this molecule, not cached
                results[idx] = decode(_as_dict(_worker_failure(kind, atoms, job.error, job.attempts)))
            bar.update()
        bar.close()
        for idx, copies in repeats.items():
            for copy in copies:  # a result object of its own, as a cache hit would give
                results[copy] = decode(_as_dict(results[idx]))
        return results

    def _finish(self, kind: str, key: str, doc: dict) -> Any:
        if self.store is not None:
            self.store.put(kind, key, doc)
        return RelaxResult.from_dict(doc) if kind == "relax" else _single_point_from_dict(doc)

    def _single_point_doc(self, atoms: Atoms, name: str) -> dict:
        work, _ = self._attach(atoms, name)
        t0 = time.perf_counter()
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces())
            result = SinglePointResult("ok", energy, forces, time.perf_counter() - t0)
        except OracleFailure as exc:
            result = SinglePointResult("failed", wall_s=time.perf_counter() - t0, message=str(exc))
        return dataclasses.asdict(result)

    def _run_relaxation(
        self, atoms: Atoms, name: str, opt_class: type, settings: dict, trajectory: list[np.ndarray] | None
    ) -> RelaxResult:
        return Relaxation(self, atoms, name, opt_class).run(settings["fmax"], settings["max_steps"], trajectory)

    def relaxation(self, atoms: Atoms, name: str = "molecule", optimizer: str = "BFGS") -> "Relaxation":
        """An uncached relaxation that can be continued with a tighter ``fmax``,
        keeping the optimizer's state (BFGS: its Hessian), as the dataset builder
        does for the lowest of several conformers."""
        self.check(atoms, name)
        return Relaxation(self, atoms, name, resolve_optimizer(optimizer))


class Relaxation:
    """One optimizer on one molecule; :meth:`run` may be called again to go on."""

    def __init__(self, oracle: Oracle, atoms: Atoms, name: str, opt_class: type) -> None:
        self.work, self.counter = oracle._attach(atoms, name)
        self.opt = opt_class(self.work, logfile=None)
        self.wall_s = 0.0
        self.last_good = (float("nan"), atoms.positions.copy(), float("nan"))

    def run(self, fmax: float, max_steps: int, trajectory: list[np.ndarray] | None = None) -> RelaxResult:
        """Optimise until ``max|F| < fmax`` or ``max_steps`` more steps; counts are cumulative."""
        t0 = time.perf_counter()
        converged = False
        try:
            for converged in self.opt.irun(fmax=fmax, steps=max_steps):
                # irun has just evaluated this geometry: read the calculator's results
                # directly (another get_forces() would only re-check the cache).
                res = self.work.calc.results
                self.last_good = (float(res["energy"]), self.work.positions.copy(),
                                  float(np.linalg.norm(res["forces"], axis=1).max()))
                if trajectory is not None:
                    trajectory.append(self.work.positions.copy())
            status, message = ("converged", "") if converged else ("not_converged", f"max_steps={max_steps} reached")
        except OracleFailure as exc:
            converged, status, message = False, "failed", str(exc)
        self.wall_s += time.perf_counter() - t0
        energy, positions, fmax_reached = self.last_good
        return RelaxResult(
            converged=bool(converged),
            n_steps=int(self.opt.get_number_of_steps()),
            n_force_calls=self.counter[0],
            energy_ev=energy,
            positions_ang=positions,
            wall_s=self.wall_s,
            status=status,
            message=message,
            fmax_ev_ang=fmax_reached,
            settings={"fmax": fmax, "optimizer": type(self.opt).__name__, "max_steps": max_steps},
        )


def _array_or_none(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=float)


def _single_point_from_dict(d: dict[str, Any]) -> SinglePointResult:
    return SinglePointResult(**{**d, "forces_ev_ang": _array_or_none(d["forces_ev_ang"])})


def _relax_settings(fmax: float, optimizer: str, max_steps: int) -> dict[str, Any]:
    if fmax <= 0 or max_steps < 0:
        raise ValueError(f"fmax must be > 0 and max_steps >= 0, got {fmax}, {max_steps}")
    resolve_optimizer(optimizer)
    return {"fmax": fmax, "optimizer": optimizer, "max_steps": max_steps}


def _invalid(kind: str, atoms: Atoms, message: str, status: str = "invalid") -> Any:
    if kind == "relax":
        return RelaxResult(False, 0, 0, float("nan"), atoms.positions.copy(), 0.0, status, message)
    return SinglePointResult(status, message=message)


def _as_dict(result: RelaxResult | SinglePointResult) -> dict:
    return result.to_dict() if isinstance(result, RelaxResult) else dataclasses.asdict(result)


def _refused(exc: InputError, strict: bool, kind: str, atoms: Atoms) -> Any:
    """The ``"invalid"`` result of a molecule refused by its calculator (not cached:
    a refusal costs nothing to repeat), or with ``strict`` the error itself."""
    if strict:
        raise exc
    return _invalid(kind, atoms, str(exc))


def _worker_failure(kind: str, atoms: Atoms, exc: Exception, attempts: int) -> Any:
    """The ``"failed"`` result of work whose worker died or raised, ``attempts`` times."""
    message = f"worker failed: {type(exc).__name__}: {exc}"
    return _invalid(kind, atoms, message + (f" ({attempts} attempts)" if attempts > 1 else ""), "failed")


def _compute_here(oracle: Oracle, kind: str, atoms: Atoms, name: str, settings: dict) -> dict:
    """One result as a document; a calculator that cannot be built is a ``"failed"``
    result like any other oracle failure (cached by geometry, so its message,
    like theirs, does not name the molecule). A molecule the calculator refuses
    raises :class:`InputError` naming it, for the caller to record."""
    try:
        if kind == "relax":
            return oracle._run_relaxation(atoms, name, resolve_optimizer(settings["optimizer"]), settings,
                                          None).to_dict()
        return oracle._single_point_doc(atoms, name)
    except OracleFailure as exc:
        return _as_dict(_invalid(kind, atoms, str(exc), "failed"))


def _compute(oracle_class: type[Oracle], oracle_settings: dict, kind: str, atoms: Atoms, name: str,
             settings: dict) -> dict:
    """Worker side of the ``*_many`` calls: a fresh store-less oracle computes one result.

    The class travels by reference (module and name), so any importable oracle,
    test doubles included, runs on local processes and Dask workers alike.
    """
    return _compute_here(oracle_class(**oracle_settings), kind, atoms, name, settings)


__all__ = ["Oracle", "RelaxResult", "SinglePointResult", "InputError", "OracleFailure",
           "resolve_optimizer", "charge_and_multiplicity", "OPTIMIZERS"]
