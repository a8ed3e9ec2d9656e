"""Malformed files, generated: every one is read back exactly, or refused
with an :class:`InputError` that names the file, the record and the reason;
with ``on_error="skip"`` the good records of the same read survive.

Each damage is one a real file can have (a truncated copy, a wrong atom-count
line, a coordinate that is not a number, QM9's ``*^`` exponent, a non-finite or
coincident atom, an unknown element, an empty file, the same id twice, a
damaged npz). "Read back exactly" is what rules out a silent wrong number: a
file either gives the molecules that were written or an error.
"""

from __future__ import annotations

import io
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import read_molecules
from bench.errors import InputError
from tests.reliability import MALFORMED, tally

ELEMENTS = ["H", "C", "N", "O", "F", "S", "Cl"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def molecules(draw: st.DrawFn) -> tuple[list[str], np.ndarray]:
    """1-12 atoms on distinct points of a 3x3x3 grid (1.5 A apart), jittered by up to 0.3 A."""
    n = draw(st.integers(1, 12))
    cells = draw(st.lists(st.integers(0, 26), min_size=n, max_size=n, unique=True))
    jitter = np.reshape(draw(st.lists(st.floats(-0.3, 0.3), min_size=3 * n, max_size=3 * n)), (n, 3))
    grid = np.array([np.unravel_index(c, (3, 3, 3)) for c in cells], dtype=float) * 1.5
    symbols = draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n))
    return symbols, np.round(grid + jitter, 6)


def mathematica(value: float) -> str:
    """``value`` as QM9 writes small numbers: ``1.2345*^-6``."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa}*^{int(exponent)}"


def qm9_value(value: float) -> float:
    """What a QM9-notation file holds for ``value``."""
    return float(mathematica(value).replace("*^", "e"))


def xyz_lines(symbols: list[str], positions: np.ndarray, qm9_exponents: bool) -> list[str]:
    fmt = mathematica if qm9_exponents else repr
    atoms = [f"{s} {fmt(x)} {fmt(y)} {fmt(z)}" for s, (x, y, z) in zip(symbols, positions.tolist())]
    return [str(len(symbols)), "", *atoms]


def assert_refused(path: Path, reason: str) -> None:
    """``read_molecules`` raises an InputError naming the file, a record and ``reason``."""
    tally(MALFORMED)
    with pytest.raises(InputError) as info:
        read_molecules(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "(record " in message, message
    assert re.search(reason, message), message


def assert_same_molecules(read: list, written: list[tuple[list[str], np.ndarray]], atol: float = 1e-9) -> None:
    assert len(read) == len(written)
    for molecule, (symbols, positions) in zip(read, written):
        assert molecule.numbers.tolist() == [atomic_numbers[s] for s in symbols]
        np.testing.assert_allclose(molecule.positions, positions, rtol=0, atol=atol)


# --------------------------------------------------------------------------
# xyz

#: What an error about a damaged atom-count line may say: the frame it opens, or the
#: frame whose lines it swallows, cannot be read.
_COUNT = (r"declares \d+ atoms, but (line \d+ is one more atom line|only \d+ atom lines follow)"
          r"|atom-count line .* is not an integer|atom count must be positive|expected an atom line"
          r"|cannot parse|unknown element")

#: Damage to the middle frame of an xyz file -> what its error must say.
XYZ_DAMAGE = {
    "count too small": _COUNT,
    "count too large": _COUNT,
    "count not a number": _COUNT,
    "truncated": _COUNT,  # the lines of the next frame follow: no "(truncated file?)" here
    "coordinate not a number": r"line \d+: cannot parse .* as a number",
    "non-finite coordinate": r"non-finite \(NaN or inf\) coordinates for atom\(s\)",
    "coincident atoms": r"atoms \d+ and \d+ are 0\.\d+ A apart \(coincident",
    "unknown element": r"line \d+: unknown element",
}

NOT_NUMBERS = st.sampled_from(["x1", "1.2.3", "1_0", "\u0661\u0662", "0x1F", "1e", "--1", "1,5", "*^5", "1.0*^"])


@st.composite
def damaged_xyz(draw: st.DrawFn) -> tuple[str, list[str], list[tuple[list[str], np.ndarray]]]:
    """Three molecules and the lines of the middle one, damaged as drawn (QM9 exponents or not)."""
    frames = [draw(molecules()) for _ in range(3)]
    damage = draw(st.sampled_from(sorted(XYZ_DAMAGE)))
    symbols, positions = frames[1]
    n = len(symbols)
    if damage == "coincident atoms" and n == 1:
        symbols, positions = symbols * 2, np.vstack([positions, positions])
        n = 2
    lines = xyz_lines(symbols, positions, draw(st.booleans()))
    atom = draw(st.integers(0, n - 1))
    fields = lines[2 + atom].split()
    if damage == "count too small":
        lines[0] = str(draw(st.integers(0, n - 1)))
    elif damage == "count too large":
        lines[0] = str(n + draw(st.integers(1, 40)))
    elif damage == "count not a number":
        lines[0] = draw(st.sampled_from(["three", "3.0", "1_0", "\u0663", "", "3 atoms", "9" * 5000]))
    elif damage == "truncated":
        lines = lines[: 2 + draw(st.integers(0, n - 1))]
    elif damage == "coordinate not a number":
        fields[1 + draw(st.integers(0, 2))] = draw(NOT_NUMBERS)
    elif damage == "non-finite coordinate":
        fields[1 + draw(st.integers(0, 2))] = draw(st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999"]))
    elif damage == "coincident atoms":
        other = (atom + 1) % n
        lines[2 + other] = " ".join([lines[2 + other].split()[0], *fields[1:]])
    elif damage == "unknown element":
        fields[0] = draw(st.sampled_from(["Xx", "D", "X", "0", "119", "\u0668", "C1"]))
    if damage in ("coordinate not a number", "non-finite coordinate", "unknown element"):
        lines[2 + atom] = " ".join(fields)
    return damage, lines, frames


def xyz_text(frames_lines: list[list[str]]) -> str:
    return "".join("\n".join(lines) + "\n" for lines in frames_lines)


def assert_each_written(read: list, written: list[tuple[list[str], np.ndarray]], atol: float) -> None:
    """Every molecule read is one that was written, in order: nothing silently changed."""
    remaining = list(written)
    for molecule in read:
        while remaining:
            symbols, positions = remaining.pop(0)
            same = molecule.numbers.tolist() == [atomic_numbers[s] for s in symbols] and np.allclose(
                molecule.positions, positions, rtol=0, atol=atol)
            if same:
                break
        else:
            raise AssertionError(f"{molecule.source} was read but never written")


@FUZZ
@given(case=damaged_xyz())
def test_damaged_xyz_frames_are_refused_and_the_others_kept(tmp_path, case):
    damage, lines, (first, _, last) = case
    path = tmp_path / "damaged.xyz"
    path.write_text(xyz_text([xyz_lines(*first, qm9_exponents=False), lines, xyz_lines(*last, qm9_exponents=True)]))
    assert_refused(path, r"\(record 2\): (?:line \d+:? )?" + f"(?:{XYZ_DAMAGE[damage]})")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        kept = read_molecules(path, on_error="skip")
    assert_same_molecules(kept[:1], [first], atol=1e-12)
    assert_each_written(kept, [first, (last[0], np.vectorize(qm9_value)(last[1]))], atol=1e-12)
    if damage not in ("count too small", "count too large", "count not a number", "truncated"):
        assert len(kept) == 2  # a bad atom line costs only its own frame


@FUZZ
@given(molecule=molecules(), qm9=st.booleans())
def test_qm9_exponents_and_plain_notation_read_back_exactly(tmp_path, molecule, qm9):
    path = tmp_path / "m.xyz"
    path.write_text(xyz_text([xyz_lines(*molecule, qm9_exponents=qm9)]))
    (read,) = read_molecules(path)
    written = np.vectorize(qm9_value)(molecule[1]) if qm9 else molecule[1]
    assert_same_molecules([read], [(molecule[0], written)], atol=0)


@FUZZ
@given(token=st.text(min_size=1, max_size=8).filter(lambda t: not any(c.isspace() for c in t)))
def test_a_coordinate_reads_as_its_decimal_value_or_is_refused(tmp_path, token):
    """Any token in a coordinate field: the number it spells in decimal notation, or an error."""
    path = tmp_path / "t.xyz"
    path.write_text(f"2\n\nH 0 0 0\nH {token} 0 5\n", encoding="utf-8")
    tally(MALFORMED)
    strict = re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)((e|\*\^)[+-]?\d+)?", token, re.IGNORECASE | re.ASCII)
    try:
        (read,) = read_molecules(path)
    except InputError as exc:
        assert str(exc).startswith(f"{path} (record 1): "), exc
        return
    assert strict is not None, f"{token!r} read as {read.positions[1, 0]}"
    assert read.positions[1, 0] == float(token.replace("*^", "e"))


# --------------------------------------------------------------------------
# SDF


def mol_block(title: str, symbols: list[str], positions: np.ndarray, count: str | None = None) -> list[str]:
    """A V2000 record (CTfile specification, no bonds) as lines, ``$$$$`` included."""
    atoms = [f"{x:10.4f}{y:10.4f}{z:10.4f} {s:<3} 0  0  0  0  0  0  0  0  0  0  0  0"
             for s, (x, y, z) in zip(symbols, positions.tolist())]
    counts = f"{count if count is not None else len(symbols):>3}  0  0  0  0  0  0  0  0  0999 V2000"
    return [title, "  fuzz", "", counts, *atoms, "M  END", "$$$$"]


def sdf_values(positions: np.ndarray) -> np.ndarray:
    """What the 10.4f coordinate columns hold for ``positions``."""
    return np.vectorize(lambda v: float(f"{v:.4f}"))(positions)


SDF_DAMAGE = ("count too small", "count too large", "count not a number", "truncated", "coordinate not a number",
              "unknown element", "no M  END", "coincident atoms")


@st.composite
def damaged_sdf(draw: st.DrawFn) -> tuple[str, list[str], list[tuple[list[str], np.ndarray]]]:
    frames = [draw(molecules()) for _ in range(3)]
    damage = draw(st.sampled_from(SDF_DAMAGE))
    symbols, positions = frames[1]
    n = len(symbols)
    atom = 4 + draw(st.integers(0, n - 1))
    block = mol_block("bad", symbols, positions)
    if damage == "count too small":
        block[3] = mol_block("bad", symbols, positions, count=str(draw(st.integers(0, n - 1))))[3]
    elif damage == "count too large":
        block[3] = mol_block("bad", symbols, positions, count=str(n + draw(st.integers(1, 50))))[3]
    elif damage == "count not a number":
        block[3] = mol_block("bad", symbols, positions, count=draw(st.sampled_from(["  x", "1.5", " -3"])))[3]
    elif damage == "truncated":
        block = block[: draw(st.integers(1, len(block) - 2))] + ["$$$$"]
    elif damage == "coordinate not a number":
        column = draw(st.sampled_from([0, 10, 20]))
        garbage = draw(st.sampled_from(["    x.1234", "   1.2.3.4", "  nan     ", "          "]))
        block[atom] = block[atom][:column] + garbage + block[atom][column + 10:]
    elif damage == "unknown element":
        block[atom] = block[atom][:31] + draw(st.sampled_from(["Xx ", "Qq ", "?? "])) + block[atom][34:]
    elif damage == "no M  END":
        block.remove("M  END")
    elif damage == "coincident atoms":
        if n == 1:
            block = mol_block("bad", symbols * 2, np.vstack([positions, positions]))
        else:
            other = 4 + (atom - 4 + 1) % n
            block[other] = block[atom][:30] + block[other][30:]
    return damage, block, frames


@FUZZ
@given(case=damaged_sdf())
def test_damaged_sdf_records_are_refused_or_read_exactly(tmp_path, case):
    """A damaged record is refused, or (where the damage leaves a valid record) every
    molecule read is one that was written; with ``skip`` the records around it survive."""
    damage, block, frames = case
    first, middle, last = frames
    lines = [*mol_block("first", *first), *block, *mol_block("last", *last)]
    path = tmp_path / "damaged.sdf"
    path.write_text("\n".join(lines) + "\n")
    tally(MALFORMED)
    try:
        read = read_molecules(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "(record " in str(exc), exc
    else:
        assert damage != "coordinate not a number", "a damaged coordinate field was read as a number"
        # accepted: every record is one that was written (up to the 4-decimal columns)
        written = [(s, sdf_values(p)) for s, p in (first, middle, last)]
        assert_same_molecules(read, written, atol=1e-9)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        kept = read_molecules(path, on_error="skip")
    assert kept and kept[0].id == "first"
    assert_each_written(kept, [(s, sdf_values(p)) for s, p in (first, middle, last)], atol=1e-9)


# --------------------------------------------------------------------------
# EDM npz


def padded(frames: list[tuple[list[str], np.ndarray]]) -> dict[str, np.ndarray]:
    n_max = max(len(s) for s, _ in frames)
    charges = np.zeros((len(frames), n_max), dtype=np.int64)
    positions = np.zeros((len(frames), n_max, 3))
    for i, (symbols, pos) in enumerate(frames):
        charges[i, : len(symbols)] = [atomic_numbers[s] for s in symbols]
        positions[i, : len(symbols)] = pos
    return {"num_atoms": np.array([len(s) for s, _ in frames]), "charges": charges, "positions": positions,
            "index": np.arange(1, len(frames) + 1)}


NPZ_ROW_DAMAGE = ("num_atoms too small", "num_atoms too large", "num_atoms zero", "non-finite position",
                  "coincident atoms", "unknown element", "duplicate index")
NPZ_FILE_DAMAGE = ("truncated bytes", "missing key", "float charges", "ragged positions", "single array", "empty")


@st.composite
def damaged_npz(draw: st.DrawFn) -> tuple[str, bytes, list, int]:
    frames = [draw(molecules()) for _ in range(3)]
    damage = draw(st.sampled_from(NPZ_ROW_DAMAGE + NPZ_FILE_DAMAGE))
    arrays = padded(frames)
    row = 1
    n = len(frames[row][0])
    if damage == "num_atoms too small":
        arrays["num_atoms"][row] = draw(st.integers(1, n)) - 1 if n > 1 else 0
        damage = damage if n > 1 else "num_atoms zero"
    elif damage == "num_atoms too large":
        arrays["num_atoms"][row] = n + draw(st.integers(1, 40))
    elif damage == "num_atoms zero":
        arrays["num_atoms"][row] = draw(st.sampled_from([0, -1, -100]))
    elif damage == "non-finite position":
        arrays["positions"][row, draw(st.integers(0, n - 1)), draw(st.integers(0, 2))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    elif damage == "coincident atoms":
        if n == 1:
            damage = "num_atoms too large"
            arrays["num_atoms"][row] = 2
        else:
            arrays["positions"][row, 1] = arrays["positions"][row, 0]
    elif damage == "unknown element":
        arrays["charges"][row, draw(st.integers(0, n - 1))] = draw(st.sampled_from([119, 200, -6]))
    elif damage == "duplicate index":
        arrays["index"][2] = arrays["index"][0]
    elif damage == "missing key":
        del arrays[draw(st.sampled_from(["num_atoms", "charges", "positions"]))]
    elif damage == "float charges":
        arrays["charges"] = arrays["charges"].astype(float)
    elif damage == "ragged positions":
        arrays["positions"] = arrays["positions"][:, :, :2]
    buffer = io.BytesIO()
    if damage == "single array":
        np.save(buffer, arrays["positions"])
    elif damage != "empty":
        np.savez(buffer, **arrays)
    data = buffer.getvalue()
    if damage == "truncated bytes":
        data = data[: draw(st.integers(0, len(data) - 1))]
    return damage, data, frames, row


@FUZZ
@given(case=damaged_npz())
def test_damaged_npz_rows_and_files_are_refused_and_good_rows_kept(tmp_path, case):
    damage, data, frames, row = case
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    tally(MALFORMED)
    with pytest.raises(InputError) as info:
        read_molecules(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    if damage in NPZ_FILE_DAMAGE:  # nothing in the file can be located: refused whatever on_error says
        with pytest.raises(InputError):
            read_molecules(path, on_error="skip")
        return
    culprit = "qm9:1" if damage == "duplicate index" else f"qm9:{row + 1}"
    assert f"'{culprit}'" in message or "duplicate id 'qm9:1'" in message, message
    with pytest.warns(UserWarning, match="skipped"):
        kept = read_molecules(path, on_error="skip")
    good = [0, 1] if damage == "duplicate index" else [0, 2]
    assert [m.id for m in kept] == [f"qm9:{i + 1}" for i in good]
    assert_same_molecules(kept, [frames[i] for i in good])


# --------------------------------------------------------------------------
# folders: empty files and duplicate ids next to good files


@FUZZ
@given(molecule=molecules(), empty=st.sampled_from(["", "\n\n", "\ufeff", "  \n"]),
       duplicate=st.sampled_from(["sdf title", "tar member"]))
def test_a_folder_with_an_empty_file_and_a_duplicate_id(tmp_path_factory, molecule, empty, duplicate):
    """Raised one by one; with ``skip`` both are left out with a warning and the good file is read."""
    folder = tmp_path_factory.mktemp("folder")
    (folder / "a.xyz").write_text(xyz_text([xyz_lines(*molecule, qm9_exponents=False)]))
    if duplicate == "sdf title":
        (folder / "c.sdf").write_text("\n".join(mol_block("a", *molecule)) + "\n")  # title 'a': the id of a.xyz
    else:
        with tarfile.open(folder / "c.tar", "w") as tar:
            tar.add(folder / "a.xyz", arcname="a.xyz")
    tally(MALFORMED, 2)
    with pytest.raises(InputError, match=r"duplicate id 'a' \(also .*a\.xyz \(record 1\)\)"):
        read_molecules(folder)
    (folder / "b.xyz").write_text(empty)
    with pytest.raises(InputError, match=r"b\.xyz: no molecules in this file \(empty file\?\)"):
        read_molecules(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (kept,) = read_molecules(folder, on_error="skip")
    assert kept.id == "a" and kept.source.endswith("a.xyz (record 1)")
    reasons = " | ".join(str(w.message) for w in caught)
    assert len(caught) == 2 and "duplicate id 'a'" in reasons, reasons
    assert re.search(r"skipped \S*b\.xyz: no molecules in this file", reasons), reasons
