"""Readers of molecule files: QM9 and plain xyz, SDF/MOL, EDM's processed QM9
npz and GEOM npy, and folders or tar archives of these.

Every reader splits one file into *records*: a label naming the file and the
record (``"ligands.sdf (record 8, 'ZINC03814457')"``, records counted from 1)
and a function that builds that record's :class:`Molecule`. Locating the
records first and parsing each one on its own is what lets
``on_error="skip"`` drop one bad record and keep the rest, and lets every
error say which file, which record and why.

There are two kinds of error:

* file errors (cannot be opened, not text / npz / npy / tar, no molecules at
  all, npz keys missing, npy of the wrong shape) are raised by the reader and
  name the file; reading that one file raises them whatever ``on_error`` says,
  since nothing in it can be located, while a folder or archive read with
  ``on_error="skip"`` leaves such a file out with a warning and reads the others;
* record errors (a bad line, an unknown element, non-finite or coincident
  atoms, a record RDKit cannot parse, an id already read) are raised by
  building or checking one record; the messages of the parsing helpers carry
  only the line and the reason, and :func:`_build` prefixes the record's label.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import tarfile
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from tokenize import TokenError
from typing import IO, Any, NamedTuple
from zipfile import BadZipFile

import numpy as np
from ase.data import atomic_numbers, chemical_symbols
from ase.io.extxyz import key_val_str_to_dict
from rdkit import Chem, rdBase

from bench.data.records import Molecule
from bench.data.validate import check_molecule, default_multiplicity
from bench.errors import InputError

#: What ``read_molecules`` may do with a bad record.
ON_ERROR = ("raise", "skip")

#: The 15 scalars on line 2 of a QM9 xyz file, in file order (after ``gdb N``).
QM9_SCALARS = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")

#: Keys every EDM processed QM9 npz has; every other per-molecule (1-D) key is a property.
NPZ_KEYS = ("num_atoms", "charges", "positions")

#: Largest file, archive member or decompressed npz content read into memory, in bytes.
MAX_FILE_BYTES = 256 * 2**20

#: Most lines one text file may have (a list of lines costs about 60 bytes a line).
MAX_LINES = 5_000_000

#: Most records (molecules) one file may hold, and one read may return (QM9 has 133,885).
MAX_RECORDS = 200_000

#: Archives read member by member, in place (tarfile detects the compression).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tar.bz2")

#: Stem of an EDM GEOM atom-counts file, split around the ``n_`` that
#: :func:`_counts_file_name` inserts into its conformer file's stem.
_COUNTS_STEM = re.compile(r"^(?P<prefix>.*)n_(?P<tail>(?:no_h_)?\d+)$")

#: What numpy raises on a damaged npy header (tokenize, ast) or npz zip directory.
_DAMAGED_NUMPY_FILE = (
    OSError, EOFError, ValueError, SyntaxError, TokenError, NotImplementedError, BadZipFile, zlib.error
)

#: A number as the text formats write it: ASCII decimal, exponent ``e`` or QM9's ``*^``.
_DECIMAL = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:(?:[eE]|\*\^)[+-]?[0-9]+)?|nan|inf|infinity)",
                      re.IGNORECASE | re.ASCII)
#: An integer as the text formats write it (``int`` would also take ``1_0``, non-ASCII digits, and
#: fail on 4300 digits).
_INTEGER = re.compile(r"[+-]?[0-9]{1,12}", re.ASCII)

#: Returned by ``next`` on an exhausted supplier.
_END = object()

#: RDKit's log-line prefix (``[12:00:00] ERROR: ``), removed from the reasons it gives.
_RDKIT_LOG_PREFIX = re.compile(r"^\[[\d:.]+\]\s*(?:ERROR:\s*)?")


@dataclass(frozen=True)
class _Source:
    """One file to read, on disk or inside a tar archive.

    Readers get this rather than a path so that archive members are read in
    place, without extraction.

    Attributes
    ----------
    name : str
        Path shown in messages and in ``Molecule.source``
        (``archive.tar.gz/member.xyz`` for a member).
    stem : str
        File name without folder and suffix: the prefix of generated ids.
    open : callable
        Returns the file's bytes as a binary stream.
    sibling : callable
        ``sibling(file_name)``: the source of that file in the same folder or
        archive folder, or None (GEOM's atom counts live in a sibling file).
    """

    name: str
    stem: str
    open: Callable[[], IO[bytes]]
    sibling: Callable[[str], _Source | None]


class _Record(NamedTuple):
    """One molecule of a file, not parsed yet."""

    label: str
    build: Callable[[], Molecule]


def read_molecules(path: str | os.PathLike[str], on_error: str = "raise") -> list[Molecule]:
    """Read every molecule of a supported file, folder or tar archive.

    Parameters
    ----------
    path : str or path-like
        A ``.xyz`` (plain, extended or QM9 ``dsgdb9nsd_*.xyz``), ``.sdf``/``.mol``,
        ``.npz`` (EDM processed QM9), ``.npy`` (EDM GEOM), ``.tar``/``.tar.gz``/
        ``.tar.bz2`` archive of such files (read in archive order), or a folder
        (its supported files, sorted by name, not recursing into sub-folders).
    on_error : {"raise", "skip"}
        What to do with a bad record: raise :class:`InputError`, or leave it out
        with a warning naming file, record and reason. A file that cannot be
        read at all raises either way when it is ``path`` itself; inside a
        folder or archive, ``"skip"`` leaves it out like a bad record.

    Returns
    -------
    list of Molecule
        In file order; every one passed :func:`check_molecule`, ids unique.

    Raises
    ------
    InputError
        Missing path, unsupported suffix, unreadable file, or (with
        ``on_error="raise"``) a bad record; the message names file, record and reason.
    ValueError
        ``on_error`` is not one of :data:`ON_ERROR`.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path)
    if path.is_dir():
        sources = _folder_sources(path)
        if not sources:
            raise InputError(f"{path}: no supported file in this folder (supported: {', '.join(_SUPPORTED)})")
    elif not path.exists():
        raise InputError(f"{path}: no such file or folder")
    elif _suffix(path.name) is None:
        raise InputError(f"{path}: unsupported file type (supported: {', '.join(_SUPPORTED)})")
    else:
        sources = [_disk_source(path)]
    read = _read_member if path.is_dir() else _read_source
    molecules = (molecule for source in sources for molecule in read(source, on_error))
    return list(_unique_ids(molecules, on_error))


# --------------------------------------------------------------------------
# Sources, records and the handling of bad ones


def _suffix(file_name: str) -> str | None:
    """The supported suffix ``file_name`` ends with (any case), else None."""
    lower = file_name.lower()
    return next((suffix for suffix in _SUPPORTED if lower.endswith(suffix)), None)


def _stem(file_name: str) -> str:
    """``file_name`` without its supported suffix."""
    return file_name[: len(file_name) - len(_suffix(file_name) or "")]


def _open_file(path: Path) -> IO[bytes]:
    """The file's bytes; only a regular file (after links) is opened, so that a link
    to a device or a pipe is refused instead of read until memory runs out."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"{path}: not a regular file (devices, pipes and sockets are not read)")
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from exc


def _read_bytes(source: _Source, text: bool = False) -> bytes:
    """All bytes of ``source``, refused past :data:`MAX_FILE_BYTES` (read no further)
    and, for a ``text`` file, past :data:`MAX_LINES` lines (counted before splitting)."""
    with source.open() as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{source.name}: larger than {MAX_FILE_BYTES // 2**20} MiB, the limit per file "
                         "(split it, or read a folder of smaller files)")
    if text and data.count(b"\n") > MAX_LINES:
        raise InputError(f"{source.name}: more than {MAX_LINES} lines, the limit per text file (split it)")
    return data


def _check_record_count(source: _Source | str, n_records: int) -> None:
    """Refuse a file or read past :data:`MAX_RECORDS` records (before building more)."""
    if n_records > MAX_RECORDS:
        name = source if isinstance(source, str) else source.name
        raise InputError(f"{name}: more than {MAX_RECORDS} molecules, the limit per read (split the input)")


def _disk_source(path: Path) -> _Source:
    def sibling(file_name: str) -> _Source | None:
        other = path.with_name(file_name)
        return _disk_source(other) if other.is_file() else None

    return _Source(str(path), _stem(path.name), partial(_open_file, path), sibling)


def _member_source(archive: _Source, tar: tarfile.TarFile, member: tarfile.TarInfo) -> _Source:
    folder = posixpath.dirname(member.name)

    def sibling(file_name: str) -> _Source | None:
        try:
            other = tar.getmember(posixpath.join(folder, file_name))
        except KeyError:
            return None
        return _member_source(archive, tar, other) if other.isfile() else None

    name = f"{archive.name}/{member.name}"
    return _Source(name, _stem(posixpath.basename(member.name)), partial(tar.extractfile, member), sibling)


def _folder_sources(folder: Path) -> list[_Source]:
    """The folder's supported files sorted by name, less GEOM atom-counts files."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and _suffix(p.name))
    return [source for source in map(_disk_source, files) if not _is_geom_counts(source)]


def _member_sources(archive: _Source, tar: tarfile.TarFile) -> Iterator[_Source]:
    """The archive's supported files in archive order, less GEOM atom-counts files."""
    members = (member for member in tar if member.isfile() and _suffix(member.name))
    sources = (_member_source(archive, tar, member) for member in members)
    return (source for source in sources if not _is_geom_counts(source))


def _read_source(source: _Source, on_error: str) -> Iterator[Molecule]:
    if _suffix(source.name) in ARCHIVE_SUFFIXES:
        yield from _read_archive(source, on_error)
    else:
        yield from _collect(source, _READERS[_suffix(source.name)](source), on_error)


def _read_member(source: _Source, on_error: str) -> Iterator[Molecule]:
    """Molecules of one file of a folder or archive; with ``"skip"``, a file that
    cannot be read (empty, damaged) is left out with a warning like a bad record,
    so that one bad file does not stop the read of a thousand good ones."""
    try:
        yield from _read_source(source, on_error)
    except InputError as exc:
        _fail(exc, on_error)


def _read_archive(archive: _Source, on_error: str) -> Iterator[Molecule]:
    """Molecules of every supported member, read in place in archive order.

    Archive order makes one forward pass over the compressed stream (QM9's
    ``dsgdb9nsd.xyz.tar.bz2`` holds 133,885 files); sorting would seek back.
    """
    n_files = 0
    try:
        with archive.open() as stream, tarfile.open(fileobj=stream, mode="r:*") as tar:
            for source in _member_sources(archive, tar):
                n_files += 1
                yield from _read_member(source, on_error)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{archive.name}: cannot read the tar archive ({exc})") from exc
    if not n_files:
        raise InputError(f"{archive.name}: no supported file in this archive (supported: {', '.join(_SUPPORTED)})")


def _collect(source: _Source, records: Iterable[_Record], on_error: str) -> Iterator[Molecule]:
    """Build and check each record of one file; a bad one is raised or skipped."""
    n_records = 0
    for record in records:
        n_records += 1
        try:
            molecule = _build(record)
        except InputError as exc:
            _fail(exc, on_error)
            continue
        yield molecule
    if not n_records:
        raise InputError(f"{source.name}: no molecules in this file (empty file?)")


def _build(record: _Record) -> Molecule:
    """The record's molecule, checked; every error names the record."""
    try:
        molecule = record.build()
    except InputError as exc:
        raise InputError(f"{record.label}: {exc}") from exc
    check_molecule(record.label, molecule.numbers, molecule.positions, molecule.charge, molecule.multiplicity)
    return molecule


def _unique_ids(molecules: Iterable[Molecule], on_error: str) -> Iterator[Molecule]:
    """The molecules, without any whose id was already read: results are keyed by id."""
    first_source: dict[str, str] = {}
    for molecule in molecules:
        _check_record_count("this read", len(first_source) + 1)
        if molecule.id in first_source:
            also = first_source[molecule.id]
            _fail(InputError(f"{molecule.source}: duplicate id {molecule.id!r} (also {also})"), on_error)
            continue
        first_source[molecule.id] = molecule.source
        yield molecule


def _fail(error: InputError, on_error: str) -> None:
    """Raise ``error``, or with ``on_error="skip"`` warn that its record is left out."""
    if on_error == "raise":
        raise error
    warnings.warn(f"skipped {error}", stacklevel=2)


def _raise(error: InputError) -> Molecule:
    """Build function of a record known to be bad when its file was split."""
    raise error


def _label(source: _Source, index: int, title: str = "") -> str:
    """``"file (record k)"``, with the record's own name when the file gives one."""
    return f"{source.name} (record {index + 1}, {title!r})" if title else f"{source.name} (record {index + 1})"


# --------------------------------------------------------------------------
# xyz: plain, extended and QM9


def _xyz_records(source: _Source) -> Iterator[_Record]:
    """Records of an xyz file: one per frame, or the one QM9 molecule.

    QM9 is recognised by content (line 2 starts with ``gdb ``), not by file
    name, so renamed or re-archived QM9 files keep their properties.
    """
    lines = _text_lines(source)
    if len(lines) > 1 and lines[1].startswith("gdb "):
        label = _label(source, 0)
        return iter([_Record(label, partial(_qm9_molecule, lines, source.stem, label))])
    return _plain_xyz_records(source, lines)


def _text_lines(source: _Source) -> list[str]:
    data = _read_bytes(source, text=True)
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{source.name}: not UTF-8 text (bad byte at offset {exc.start})") from exc


def _plain_xyz_records(source: _Source, lines: list[str]) -> Iterator[_Record]:
    """One record per frame; ids ``<stem>`` for one frame, ``<stem>:<k>`` for several."""
    frames, error = _xyz_frames(lines)
    _check_record_count(source, len(frames))
    several = len(frames) + (error is not None) > 1
    for index, (start, n_atoms) in enumerate(frames):
        label = _label(source, index)
        molecule_id = f"{source.stem}:{index}" if several else source.stem
        yield _Record(label, partial(_plain_xyz_molecule, lines, start, n_atoms, molecule_id, label))
    if error is not None:
        yield _Record(_label(source, len(frames)), partial(_raise, error))


def _xyz_frames(lines: list[str]) -> tuple[list[tuple[int, int]], InputError | None]:
    """The (first line index, atom count) of each frame, and the error that ended the search.

    A frame whose count line is unusable ends the search, since no later frame
    can be found without it; the frames before it are returned with the error,
    so that ``on_error="skip"`` can keep them. Trailing blank lines are ignored.
    """
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    frames: list[tuple[int, int]] = []
    start = 0
    while start < end:
        try:
            n_atoms = _atom_count(lines, start)
        except InputError as exc:
            if frames and len(lines[start].split()) >= 4:  # one more atom line: the previous count is short
                previous, n_previous = frames.pop()
                return frames, InputError(
                    f"line {previous + 1} declares {n_previous} atoms, but line {start + 1} is one more atom line"
                )
            return frames, exc
        if start + 2 + n_atoms > end:
            return frames, InputError(
                f"line {start + 1} declares {n_atoms} atoms, but only {max(end - start - 2, 0)} atom lines "
                f"follow (truncated file?)"
            )
        frames.append((start, n_atoms))
        start += n_atoms + 2
    return frames, None


def _atom_count(lines: list[str], index: int) -> int:
    if not _INTEGER.fullmatch(lines[index].strip()):
        raise InputError(f"line {index + 1}: atom-count line {lines[index]!r} is not an integer")
    n_atoms = int(lines[index])
    if n_atoms < 1:
        raise InputError(f"line {index + 1}: atom count must be positive, got {n_atoms}")
    return n_atoms


def _plain_xyz_molecule(lines: list[str], start: int, n_atoms: int, molecule_id: str, label: str) -> Molecule:
    numbers, positions, _ = _atom_block(lines, start + 2, n_atoms)
    keys = _comment_keys(lines[start + 1], start + 2)
    charge = keys.get("charge", 0)
    multiplicity = keys.get("multiplicity", default_multiplicity(numbers, charge))
    return Molecule(molecule_id, numbers, positions, charge, multiplicity, source=label)


def _atom_block(
    lines: list[str], first: int, n_atoms: int, n_extra: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atomic numbers, positions and ``n_extra`` further numeric columns of the
    atom lines ``element x y z ...`` starting at index ``first``."""
    numbers = np.empty(n_atoms, dtype=int)
    values = np.empty((n_atoms, 3 + n_extra))
    for i, index in enumerate(range(first, first + n_atoms)):
        fields = lines[index].split()
        if len(fields) < 4 + n_extra:
            raise InputError(
                f"line {index + 1}: expected an atom line 'element x y z{' ...' * (n_extra > 0)}', got {lines[index]!r}"
            )
        numbers[i] = _element(fields[0], index + 1)
        values[i] = [_number(field, index + 1) for field in fields[1 : 4 + n_extra]]
    return numbers, values[:, :3], values[:, 3:]


def _element(token: str, line_number: int) -> int:
    """Atomic number of an element symbol (any case, ``CL`` = ``Cl``) or of an atomic number."""
    number = int(token) if _INTEGER.fullmatch(token) else atomic_numbers.get(token.capitalize(), 0)
    if not 1 <= number < len(chemical_symbols):
        raise InputError(f"line {line_number}: unknown element {token!r}")
    return number


def _number(token: str, line_number: int) -> float:
    """A float in decimal notation, also in the Mathematica notation ``7.9254*^-6``
    that QM9 uses; ``nan`` and ``inf`` pass, for :func:`check_molecule` to name the atoms.

    Stricter than ``float``, which also reads ``1_0`` as 10 and non-ASCII
    digits: in a damaged file those are damage, not numbers.
    """
    if not _DECIMAL.fullmatch(token):
        raise InputError(f"line {line_number}: cannot parse {token!r} as a number")
    return float(token.replace("*^", "e"))


def _comment_keys(comment: str, line_number: int) -> dict[str, int]:
    """``charge`` and ``multiplicity`` of an extended-xyz comment line, where it gives them.

    A free-text comment (not ``key=value`` pairs ASE can read) gives neither.
    """
    if "=" not in comment:
        return {}
    try:
        info = key_val_str_to_dict(comment)
    except (ValueError, IndexError):
        return {}
    return {key: _integer(info[key], f"line {line_number}: {key}") for key in ("charge", "multiplicity") if key in info}


def _integer(value: Any, what: str) -> int:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not is_number or not float(value).is_integer():
        raise InputError(f"{what}={value} is not an integer")
    return int(value)


def _qm9_molecule(lines: list[str], molecule_id: str, label: str) -> Molecule:
    """A QM9 ``dsgdb9nsd_*.xyz`` file (Ramakrishnan et al. 2014), tab separated:

    atom count; ``gdb N`` and the 15 scalars of :data:`QM9_SCALARS`; atom lines
    ``El x y z q_Mulliken``; harmonic frequencies; GDB and relaxed SMILES; GDB
    and relaxed InChI. The charge is that of the relaxed SMILES.
    """
    n_atoms = _atom_count(lines, 0)
    if len(lines) != n_atoms + 5:
        raise InputError(
            f"line 1 declares {n_atoms} atoms, so the QM9 file should have {n_atoms + 5} lines; it has {len(lines)}"
        )
    header = lines[1].split()
    if len(header) != 2 + len(QM9_SCALARS):
        raise InputError(f"line 2: expected 'gdb <index>' and {len(QM9_SCALARS)} properties, got {lines[1]!r}")
    index = _integer(_number(header[1], 2), "line 2: gdb index")
    scalars = {key: _number(token, 2) for key, token in zip(QM9_SCALARS, header[2:])}
    numbers, positions, mulliken = _atom_block(lines, 2, n_atoms, n_extra=1)
    # Not checked against 3N-6: real archive files (001265, 003899, 130666) list them twice.
    frequencies = [_number(token, n_atoms + 3) for token in lines[n_atoms + 2].split()]
    smiles_gdb, smiles_relaxed = _pair(lines, n_atoms + 3, "GDB and relaxed SMILES")
    inchi_gdb, inchi_relaxed = _pair(lines, n_atoms + 4, "GDB and relaxed InChI")
    charge = _smiles_charge(smiles_relaxed)
    properties = {
        **scalars,
        "index": index,
        "mulliken_charges": mulliken[:, 0].tolist(),
        "frequencies": frequencies,
        "smiles_gdb": smiles_gdb,
        "smiles_relaxed": smiles_relaxed,
        "inchi_gdb": inchi_gdb,
        "inchi_relaxed": inchi_relaxed,
    }
    multiplicity = default_multiplicity(numbers, charge)
    return Molecule(molecule_id, numbers, positions, charge, multiplicity, smiles_relaxed, properties, label)


def _pair(lines: list[str], index: int, what: str) -> tuple[str, str]:
    fields = lines[index].split()
    if len(fields) != 2:
        raise InputError(f"line {index + 1}: expected the {what}, tab separated, got {lines[index]!r}")
    return fields[0], fields[1]


def _smiles_charge(smiles: str) -> int:
    """Net formal charge written in a SMILES; 0 when RDKit cannot parse it.

    Unsanitised, so that QM9's zwitterions (``[NH3+]CC#CC([O-])=O``: 0) and
    the odd valences of its relaxed SMILES still give their written charges.
    """
    with rdBase.BlockLogs():
        molecule = Chem.MolFromSmiles(smiles, sanitize=False)
    return 0 if molecule is None else Chem.GetFormalCharge(molecule)


# --------------------------------------------------------------------------
# SDF / MOL


def _sdf_records(source: _Source) -> Iterator[_Record]:
    """Records of an SDF or MOL file, parsed by RDKit's fixed-column reader.

    Fixed columns matter: real files have touching coordinate fields
    (``0.4083-1013.1176``) and fused count lines (`` 99101``) that a whitespace
    split misreads. The id is the title line where it is non-empty and unique
    in the file, else ``<stem>:<k>``.
    """
    parsed = _rdkit_records(source)
    titles = Counter(item[1] for item in parsed if isinstance(item, tuple))
    for index, item in enumerate(parsed):
        if isinstance(item, InputError):
            yield _Record(_label(source, index), partial(_raise, item))
            continue
        molecule, title = item
        molecule_id = title if title and titles[title] == 1 else f"{source.stem}:{index}"
        label = _label(source, index, title)
        yield _Record(label, partial(_rdkit_molecule, molecule, molecule_id, label))


def _rdkit_records(source: _Source) -> list[tuple[Chem.Mol, str] | InputError]:
    """Every record as RDKit reads it, with its title, or the reason it cannot be read.

    Unsanitised and with hydrogens kept: the geometry and formal charges as
    written are wanted, not RDKit's opinion of the valences.
    """
    data = _read_bytes(source, text=True)
    records: list[tuple[Chem.Mol, str] | InputError] = []
    supplier = Chem.ForwardSDMolSupplier(io.BytesIO(data), removeHs=False, sanitize=False)
    with rdBase.BlockLogs():
        while True:
            with rdBase.CaptureErrorLog() as log:  # one log per record: reading stays linear in the records
                molecule = next(supplier, _END)
                if molecule is _END:
                    break
                records.append(_titled(molecule) if molecule is not None else InputError(_rdkit_reason(_log_text(log))))
            _check_record_count(source, len(records))
    blocks = _sdf_blocks(data)
    if len(blocks) == len(records):  # else the split is not RDKit's: leave RDKit's reading alone
        records = [_coordinates_checked(item, *block) for item, block in zip(records, blocks)]
    return records


def _sdf_blocks(data: bytes) -> list[tuple[int, list[str]]]:
    """The (first line index, lines) of each record, split at ``$$$$`` as RDKit does.

    Latin-1 keeps one character per byte, so fixed columns stay where they are
    whatever the encoding of titles and data fields.
    """
    lines = data.decode("latin-1").splitlines()
    blocks: list[tuple[int, list[str]]] = []
    start = 0
    for index, line in enumerate(lines):
        if line.strip() == "$$$$":
            blocks.append((start, lines[start:index]))
            start = index + 1
    if any(line.strip() for line in lines[start:]):
        blocks.append((start, lines[start:]))
    return blocks


def _coordinates_checked(
    item: tuple[Chem.Mol, str] | InputError, first: int, block: list[str]
) -> tuple[Chem.Mol, str] | InputError:
    """``item``, or the error of a V2000 coordinate field that is not a number.

    RDKit reads each fixed 10-character field by its longest numeric prefix
    (``1.2.3.4`` is 1.2): a damaged field must be an error, not another number.
    """
    if isinstance(item, InputError) or len(block) < 4 or "V2000" not in block[3]:
        return item
    count = block[3][:3].strip()
    n_atoms = int(count) if _INTEGER.fullmatch(count) else 0
    for index in range(4, min(4 + n_atoms, len(block))):
        for column in (0, 10, 20):
            field = block[index][column : column + 10].strip()
            if not _DECIMAL.fullmatch(field):
                return InputError(f"line {first + index + 1}: cannot parse coordinate field {field!r} as a number")
    return item


def _log_text(log: rdBase.CaptureErrorLog) -> str:
    """The captured log; RDKit quotes bad input, which need not be UTF-8."""
    try:
        return log.messages
    except UnicodeDecodeError as exc:
        return exc.object.decode("utf-8", "replace")


def _rdkit_reason(log: str) -> str:
    lines = (_RDKIT_LOG_PREFIX.sub("", line).strip() for line in log.splitlines())
    reasons = [line for line in lines if line and not line.startswith("moving to the beginning of the next molecule")]
    return "RDKit cannot read the record" + (f": {'; '.join(reasons)}" if reasons else "")


def _titled(molecule: Chem.Mol) -> tuple[Chem.Mol, str] | InputError:
    """The molecule with its title line (stripped), or why the title cannot be read."""
    try:
        return molecule, molecule.GetProp("_Name").strip() if molecule.HasProp("_Name") else ""
    except UnicodeDecodeError as exc:
        return InputError(f"the title line {exc.object!r} is not UTF-8 text")


def _rdkit_molecule(molecule: Chem.Mol, molecule_id: str, label: str) -> Molecule:
    """Geometry, net formal charge (``M  CHG`` or the atom block) and ``> <tag>`` data fields as strings."""
    if molecule.GetNumConformers() == 0:
        raise InputError("the record has no coordinates")
    numbers = np.array([atom.GetAtomicNum() for atom in molecule.GetAtoms()], dtype=int)
    charge = Chem.GetFormalCharge(molecule)
    try:
        properties = {key: molecule.GetProp(key) for key in molecule.GetPropNames()}
    except UnicodeDecodeError as exc:
        raise InputError(f"a data field ({exc.object!r}) is not UTF-8 text") from exc
    positions = molecule.GetConformer().GetPositions()
    multiplicity = default_multiplicity(numbers, charge)
    return Molecule(molecule_id, numbers, positions, charge, multiplicity, properties=properties, source=label)


# --------------------------------------------------------------------------
# numpy: EDM's processed QM9 (npz) and GEOM (npy)


def _load_numpy(source: _Source) -> np.ndarray | dict[str, np.ndarray]:
    """The array of an npy file, or the arrays of an npz file by name; pickles refused.

    Loaded from memory: numpy reads an npy from a file object through its file
    descriptor, which an archive member does not have.
    """
    data = _read_bytes(source)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            expanded = sum(info.file_size for info in loaded.zip.infolist())
            if expanded <= MAX_FILE_BYTES:  # a compressed npz may expand a thousandfold
                return {key: loaded[key] for key in loaded.files}
    except _DAMAGED_NUMPY_FILE as exc:
        raise InputError(f"{source.name}: not a readable numpy file ({exc!r})") from exc
    raise InputError(f"{source.name}: its arrays expand to {expanded / 2**20:.0f} MiB, more than "
                     f"the limit of {MAX_FILE_BYTES // 2**20} MiB per file")


def _npz_records(source: _Source) -> Iterator[_Record]:
    """One record per row of an EDM processed QM9 npz (``qm9/data/prepare``).

    Rows are zero-padded to the largest molecule; ``num_atoms`` says where
    each ends. Ids are ``qm9:<index>`` (the gdb number) where there is an
    ``index`` key, so that they match the QM9 xyz files.
    """
    arrays = _load_numpy(source)
    if not isinstance(arrays, dict):
        raise InputError(f"{source.name}: expected an npz archive of arrays, got a single array")
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise InputError(f"{source.name}: missing key(s) {missing}; an EDM QM9 npz has {list(NPZ_KEYS)} and properties")
    num_atoms, charges, positions = (arrays[key] for key in NPZ_KEYS)
    if not _padded_layout(num_atoms, charges, positions):
        raise InputError(
            f"{source.name}: num_atoms {num_atoms.dtype} {num_atoms.shape}, charges {charges.dtype} {charges.shape}, "
            f"positions {positions.dtype} {positions.shape}; expected integer (N,), integer (N, M), numeric (N, M, 3)"
        )
    n_molecules = len(num_atoms)
    _check_record_count(source, n_molecules)
    columns = {
        key: array.tolist() for key, array in arrays.items() if key not in NPZ_KEYS and array.shape == (n_molecules,)
    }
    for index in range(n_molecules):
        properties = {key: column[index] for key, column in columns.items()}
        molecule_id = f"qm9:{properties['index']}" if "index" in properties else f"{source.stem}:{index}"
        label = _label(source, index, molecule_id if "index" in properties else "")
        build = partial(
            _padded_molecule, int(num_atoms[index]), charges[index], positions[index], molecule_id, properties, label
        )
        yield _Record(label, build)


def _padded_layout(num_atoms: np.ndarray, charges: np.ndarray, positions: np.ndarray) -> bool:
    """Whether the arrays have EDM's layout: integer (N,), integer (N, M) and numeric (N, M, 3)."""
    n_molecules, n_max = charges.shape if charges.ndim == 2 else (-1, -1)
    return (
        num_atoms.dtype.kind in "iu"
        and charges.dtype.kind in "iu"
        and positions.dtype.kind in "iuf"
        and num_atoms.shape == (n_molecules,)
        and positions.shape == (n_molecules, n_max, 3)
    )


def _padded_molecule(
    n_atoms: int, charges: np.ndarray, positions: np.ndarray, molecule_id: str, properties: dict[str, Any], label: str
) -> Molecule:
    """The first ``n_atoms`` atoms of a zero-padded row; atoms past them mean a wrong ``num_atoms``."""
    if not 1 <= n_atoms <= len(charges):
        raise InputError(f"num_atoms = {n_atoms} is outside 1..{len(charges)}")
    if np.any(charges[n_atoms:]):
        raise InputError(f"num_atoms = {n_atoms}, but the row has {np.count_nonzero(charges)} atoms")
    numbers = charges[:n_atoms].astype(int)
    return Molecule(
        molecule_id,
        numbers,
        positions[:n_atoms].astype(float),
        0,
        default_multiplicity(numbers, 0),
        properties=properties,
        source=label,
    )


def _npy_records(source: _Source) -> Iterator[_Record]:
    """One record per conformer of an EDM GEOM npy (``build_geom_dataset.py``).

    Rows are ``[conformer_id, atomic_number, x, y, z]``, each conformer's rows
    together; a conformer ends where column 0 changes.
    """
    table = _load_numpy(source)
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] != 5 or table.dtype.kind not in "iuf":
        got = f"{table.dtype} array of shape {table.shape}" if isinstance(table, np.ndarray) else "an npz archive"
        raise InputError(
            f"{source.name}: expected rows [conformer_id, atomic_number, x, y, z] (a numeric (N, 5) array), got {got}"
        )
    if not len(table):
        return
    conformer_ids = table[:, 0]
    bad = np.flatnonzero(~np.isfinite(conformer_ids) | (conformer_ids != np.round(conformer_ids)))
    if bad.size:
        raise InputError(f"{source.name}: row {bad[0]}: conformer id {conformer_ids[bad[0]]} is not an integer")
    bounds = _conformer_bounds(source, conformer_ids)
    _check_record_count(source, len(bounds) - 1)
    for index, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        label = _label(source, index)
        yield _Record(label, partial(_geom_molecule, table[begin:end], f"{source.stem}:{index}", label))


def _counts_file_name(stem: str) -> str | None:
    """Name of the atom counts that EDM writes beside a GEOM conformer file.

    ``geom_drugs_30`` -> ``geom_drugs_n_30.npy`` and ``geom_drugs_no_h_30`` ->
    ``geom_drugs_n_no_h_30.npy``; None for a stem not ending in a number.
    :data:`_COUNTS_STEM` is the inverse.
    """
    name, n_subs = re.subn(r"((?:no_h_)?\d+)$", r"n_\1", stem)
    return f"{name}.npy" if n_subs else None


def _is_geom_counts(source: _Source) -> bool:
    """Whether ``source`` is the atom counts of a GEOM conformer file beside it.

    Such a file is read with its conformer file, so a folder or archive does
    not read it as a file of its own.
    """
    match = _COUNTS_STEM.match(source.stem) if _suffix(source.name) == ".npy" else None
    return match is not None and source.sibling(f"{match['prefix']}{match['tail']}.npy") is not None


def _conformer_bounds(source: _Source, conformer_ids: np.ndarray) -> np.ndarray:
    """Row boundaries of the conformers, checked against EDM's counts file where there is one.

    The two must agree: a disagreement means the files do not belong together.
    """
    changes = np.flatnonzero(np.diff(conformer_ids)) + 1
    bounds = np.concatenate(([0], changes, [len(conformer_ids)]))
    counts_name = _counts_file_name(source.stem)
    counts_source = source.sibling(counts_name) if counts_name else None
    if counts_source is None:
        return bounds
    counts = _load_numpy(counts_source)
    if not isinstance(counts, np.ndarray) or counts.ndim != 1 or counts.dtype.kind not in "iu" or np.any(counts < 1):
        raise InputError(f"{counts_source.name}: expected a 1-D array of positive atom counts, one per conformer")
    if counts.sum() != len(conformer_ids):
        raise InputError(
            f"{source.name}: {counts_source.name} counts {counts.sum()} atoms in all, "
            f"but there are {len(conformer_ids)} rows"
        )
    sizes = np.diff(bounds)
    if not np.array_equal(sizes, counts):
        shared = min(len(sizes), len(counts))
        index = int(np.flatnonzero(sizes[:shared] != counts[:shared])[0])
        raise InputError(
            f"{source.name}: conformer {index} has {sizes[index]} rows by its conformer id, "
            f"but {counts_source.name} gives {counts[index]} atoms"
        )
    return bounds


def _geom_molecule(rows: np.ndarray, molecule_id: str, label: str) -> Molecule:
    atomic = rows[:, 1]
    if not np.array_equal(atomic, np.round(atomic)):
        raise InputError(f"atomic numbers {atomic.tolist()} are not all integers")
    numbers = atomic.astype(int)
    return Molecule(
        molecule_id,
        numbers,
        rows[:, 2:5].astype(float),
        0,
        default_multiplicity(numbers, 0),
        properties={"conformer_id": int(rows[0, 0])},
        source=label,
    )


#: Reader of each supported (non-archive) suffix: source -> records.
_READERS: dict[str, Callable[[_Source], Iterator[_Record]]] = {
    ".xyz": _xyz_records,
    ".sdf": _sdf_records,
    ".mol": _sdf_records,
    ".npz": _npz_records,
    ".npy": _npy_records,
}

_SUPPORTED = (*_READERS, *ARCHIVE_SUFFIXES)
