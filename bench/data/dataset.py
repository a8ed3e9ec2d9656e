"""Benchmark datasets on disk: format, writer and :func:`load_dataset`.

Format (version 1)
------------------
A dataset is a folder::

    manifest.json          recipe, settings, code versions, counts, content hashes
    rejects.csv            molecules that could not be built, with stage and reason
    <split>-<k>.npz        shards (k = 000, 001, ...) of at most SHARD_SIZE molecules

Each shard is an uncompressed ``.npz`` holding, for its ``n`` molecules with
``N`` atoms in all: ``id`` (n,) str, ``smiles`` (n,) str, ``n_atoms`` (n,) int32,
``numbers`` (N,) int16, ``charge`` (n,) int16, ``multiplicity`` (n,) int16,
``start_positions`` (N, 3) float32 [A], ``ground_positions`` (N, 3) float32 [A],
``start_energy_ev`` (n,) float64, ``ground_energy_ev`` (n,) float64,
``source_index`` (n,) int64 (line of the SMILES file). Atoms of molecule i are
rows ``offsets[i]:offsets[i+1]`` with ``offsets = cumsum([0, *n_atoms])``.

The content hash of a split is the sha256 of its arrays (names, dtypes, shapes,
bytes, shard by shard); ``manifest.json`` records it and :func:`load_dataset`
can check it (``verify=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from bench.data.records import MoleculeRecord
from bench.errors import InputError

FORMAT_VERSION = 1
SHARD_SIZE = 10_000
SPLITS = ("train", "valid", "test")
#: Every split together: an evaluation set that nothing trains on (``drugs-xtb``,
#: whose splits are only hash buckets) is scored on all its molecules.
ALL = "all"
#: Where the shipped sets live: ``<repo>/datasets/<name>``.
SHIPPED_ROOT = Path(__file__).resolve().parents[2] / "datasets"
SHIPPED = ("qm9-xtb", "drugs-xtb", "zinc-xtb")

_ARRAYS = {
    "id": None, "smiles": None, "n_atoms": np.int32, "numbers": np.int16, "charge": np.int16,
    "multiplicity": np.int16, "start_positions": np.float32, "ground_positions": np.float32,
    "start_energy_ev": np.float64, "ground_energy_ev": np.float64, "source_index": np.int64,
}


class MoleculeSet(Sequence[MoleculeRecord]):
    """A split of a dataset: a sequence of :class:`MoleculeRecord` built on access.

    The packed arrays are public (``numbers``, ``start_positions``, ... and
    ``offsets``) so that batched code can use them without a Python loop.
    """

    def __init__(self, arrays: dict[str, np.ndarray], split: str, name: str = "") -> None:
        self.arrays = arrays
        self.split = split
        self.name = name
        self.offsets = np.concatenate([[0], np.cumsum(arrays["n_atoms"], dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.arrays["id"])

    @overload
    def __getitem__(self, i: int) -> MoleculeRecord: ...
    @overload
    def __getitem__(self, i: slice) -> list[MoleculeRecord]: ...

    def __getitem__(self, i: int | slice) -> MoleculeRecord | list[MoleculeRecord]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} molecules")
        i %= n
        a, lo, hi = self.arrays, self.offsets[i], self.offsets[i + 1]
        return MoleculeRecord(
            id=str(a["id"][i]), smiles=str(a["smiles"][i]), numbers=a["numbers"][lo:hi].astype(np.int64),
            charge=int(a["charge"][i]), multiplicity=int(a["multiplicity"][i]),
            start_positions=a["start_positions"][lo:hi].astype(np.float64),
            ground_positions=a["ground_positions"][lo:hi].astype(np.float64),
            start_energy=float(a["start_energy_ev"][i]), ground_energy=float(a["ground_energy_ev"][i]),
            split=self.split,
        )

    def __iter__(self) -> Iterator[MoleculeRecord]:
        return (self[i] for i in range(len(self)))

    def frame(self) -> Any:
        """A tidy pandas frame, one row per molecule (no geometries)."""
        import pandas as pd

        a = self.arrays
        return pd.DataFrame({
            "id": a["id"], "smiles": a["smiles"], "n_atoms": a["n_atoms"], "charge": a["charge"],
            "multiplicity": a["multiplicity"], "start_energy_ev": a["start_energy_ev"],
            "ground_energy_ev": a["ground_energy_ev"], "split": self.split,
        })


def arrays_from_records(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Pack builder rows (dicts with the record fields) into the shard arrays."""
    out: dict[str, np.ndarray] = {
        "id": np.array([r["id"] for r in rows], dtype=str),
        "smiles": np.array([r["smiles"] for r in rows], dtype=str),
        "n_atoms": np.array([len(r["numbers"]) for r in rows], dtype=np.int32),
        "charge": np.array([r["charge"] for r in rows], dtype=np.int16),
        "multiplicity": np.array([r["multiplicity"] for r in rows], dtype=np.int16),
        "start_energy_ev": np.array([r["start_energy_ev"] for r in rows], dtype=np.float64),
        "ground_energy_ev": np.array([r["ground_energy_ev"] for r in rows], dtype=np.float64),
        "source_index": np.array([r["source_index"] for r in rows], dtype=np.int64),
    }
    for key, dtype in (("numbers", np.int16), ("start_positions", np.float32), ("ground_positions", np.float32)):
        parts = [np.asarray(r[key], dtype=dtype) for r in rows]
        empty = np.zeros((0, 3) if key != "numbers" else (0,), dtype=dtype)
        out[key] = np.concatenate(parts) if parts else empty
    return out


def content_hash(shards: Sequence[dict[str, np.ndarray]]) -> str:
    """sha256 of the arrays of a split (names, dtypes, shapes and bytes, in order)."""
    h = hashlib.sha256()
    for arrays in shards:
        for key in _ARRAYS:
            arr = np.ascontiguousarray(arrays[key])
            h.update(f"{key}|{arr.dtype.str}|{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def write_split(out_dir: Path, split: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write one split as shards; return its manifest entry (files, count, hash)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{split}-*.npz"):
        old.unlink()
    shards, files = [], []
    for k in range(max(1, -(-len(rows) // SHARD_SIZE))):
        arrays = arrays_from_records(rows[k * SHARD_SIZE:(k + 1) * SHARD_SIZE])
        path = out_dir / f"{split}-{k:03d}.npz"
        _atomic_savez(path, arrays)
        shards.append(arrays)
        files.append(path.name)
    return {"files": files, "n_molecules": len(rows), "n_atoms": int(sum(len(r["numbers"]) for r in rows)),
            "content_sha256": content_hash(shards)}


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def resolve_dataset_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """The folder of a shipped set (by name) or of a built one (by path)."""
    text = str(name_or_path)
    if text in SHIPPED:
        return SHIPPED_ROOT / text
    path = Path(text)
    if (path / "manifest.json").is_file():
        return path
    raise InputError(
        f"{text!r} is neither a shipped dataset ({', '.join(SHIPPED)}) nor a folder with a manifest.json "
        "(build one with `edm-bench data build NAME --out DIR`)"
    )


def read_manifest(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a dataset."""
    path = resolve_dataset_dir(name_or_path) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the dataset manifest ({exc})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: dataset format {manifest.get('format_version')}, this code reads {FORMAT_VERSION}")
    return manifest


def load_dataset(name_or_path: str | os.PathLike[str], split: str = "test", verify: bool = False) -> MoleculeSet:
    """Load one split of a shipped (``"qm9-xtb"``, ``"drugs-xtb"``) or built dataset.

    Parameters
    ----------
    name_or_path : str or path
        A shipped set's name, or a folder written by ``edm-bench data build``.
    split : {"train", "valid", "test", "all"}
        ``"all"``: the three splits concatenated (train, valid, test).
    verify : bool
        Recompute the content hash and compare it with the manifest.

    Returns
    -------
    MoleculeSet
        A sequence of :class:`MoleculeRecord` (attribute access: ``id``, ``smiles``,
        ``numbers``, ``charge``, ``multiplicity``, ``start_positions``,
        ``ground_positions`` [A], ``start_energy``, ``ground_energy`` [eV]).

    Raises
    ------
    InputError
        Unknown set, unknown split, missing or corrupt files, hash mismatch.
    """
    if split not in (*SPLITS, ALL):
        raise InputError(f"unknown split {split!r}, choose from {[*SPLITS, ALL]}")
    root = resolve_dataset_dir(name_or_path)
    manifest = read_manifest(root)
    shards = []
    for part in (SPLITS if split == ALL else (split,)):
        entry = manifest["splits"].get(part)
        if entry is None:
            if split == ALL:
                continue
            raise InputError(f"{root}: dataset has no {split!r} split")
        own = []
        for fname in entry["files"]:
            try:
                with np.load(root / fname, allow_pickle=False) as z:
                    own.append({k: z[k] for k in _ARRAYS})
            except (OSError, KeyError, ValueError) as exc:
                raise InputError(f"{root / fname}: corrupt or incomplete dataset shard ({exc})") from exc
        if verify and content_hash(own) != entry["content_sha256"]:
            raise InputError(f"{root}: content hash of split {part!r} does not match manifest.json")
        shards += own
    if not shards:
        raise InputError(f"{root}: dataset has no molecules")
    arrays = {k: np.concatenate([s[k] for s in shards]) for k in _ARRAYS}
    return MoleculeSet(arrays, split, manifest.get("name", str(name_or_path)))


def smiles_overlap(smiles: Sequence[str], name_or_path: str | os.PathLike[str], split: str = ALL) -> int:
    """How many of ``smiles`` (canonical, as datasets store them) are molecules of
    that dataset split: the overlap a model card states between a training set and
    an evaluation set."""
    held = set(load_dataset(name_or_path, split).arrays["smiles"].tolist())
    return sum(1 for s in smiles if s in held)


def split_content_sha256(manifest: dict[str, Any], split: str) -> str:
    """The content hash a run records for ``split``: the split's own, or for ``"all"``
    the sha256 of the splits' hashes in order (train, valid, test)."""
    if split != ALL:
        return manifest["splits"][split]["content_sha256"]
    parts = [manifest["splits"][p]["content_sha256"] for p in SPLITS if p in manifest["splits"]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def describe_markdown(name_or_path: str | os.PathLike[str]) -> str:
    """A Markdown section describing a dataset from its manifest (for datasets/README.md)."""
    m = read_manifest(name_or_path)
    s = m["settings"]
    src = m["source"]
    gap = m["start_minus_ground_kcal_mol"]
    rows = "\n".join(
        f"| {split} | {e['n_molecules']} | {e['n_atoms']} | `{e['content_sha256']}` |"
        for split, e in m["splits"].items()
    )
    rejects = ", ".join(f"{k}: {v}" for k, v in sorted(m["rejects"]["by_stage"].items())) or "none"
    status = "complete" if src.get("complete") else f"partial ({src['lines_done']} of {src['lines_requested']} lines)"
    return f"""## {m['name']}

{m['description']}.

- Source: `{src['smiles_file']}` (sha256 `{src['smiles_sha256'][:16]}...`), first {src['lines_requested']} lines; {status}.
- Start geometry: RDKit ETKDGv3 (seed {s['seed']}, {s['n_conformers']} conformer(s)), {s['mmff_variant']}
  optimisation (max {s['mmff_max_iters']} iterations); the MMFF-lowest conformer, centred.
- Ground state: GFN2-xTB (tblite {m['versions']['tblite']}), ASE {s['ground_optimizer']} to fmax
  {s['ground_fmax']} eV/A (max {s['ground_max_steps']} steps){'' if s.get('screen_fmax') is None else
  f"; conformers screened at fmax {s['screen_fmax']}, the lowest tightened"}; rejected if the covalent
  bonding changes (bond longer than {s['bond_break_factor']} x or new contact shorter than
  {s['bond_form_factor']} x the sum of covalent radii).
- Split by sha256 of the canonical SMILES: {' / '.join(str(f) for f in s['split_fractions'])} (train / valid / test).
- Molecules: {m['n_molecules']}; rejected: {m['rejects']['n']} ({rejects}; each listed with its reason
  in `rejects.csv`).
- MMFF start above the xTB ground state: median {gap['median']:.2f} kcal/mol, mean {gap['mean']:.2f} kcal/mol.
- Build cost: {m['build']['cpu_s_summed_over_molecules']:.0f} worker-seconds summed over molecules (2-core machine, busy).

| split | molecules | atoms | content sha256 (arrays) |
| --- | --- | --- | --- |
{rows}
"""
