"""Peak memory of reading hostile molecule files of at most 1 MB (asv ``peakmem_*``).

Each input is built to cost as much as the readers' limits allow: a zip bomb
npz, a gzip'd tar whose one member expands to the byte limit, many tiny xyz
frames, an SDF of empty records, one molecule of the most atoms allowed. The
number to watch is the peak less the ``clean`` case's (the interpreter and the
imports), which shows what a file itself can cost.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np

#: Largest input file, bytes.
ONE_MB = 10**6


def _xyz_member_bytes(limit: int) -> bytes:
    frame = b"2\n\nH 0 0 0\nH 0.74 0 0\n"
    return frame * (limit // len(frame))


def build(kind: str, folder: Path) -> Path:
    """Write the hostile input ``kind`` into ``folder``; every one is <= 1 MB on disk."""
    from bench.data.readers import MAX_FILE_BYTES
    from bench.data.validate import MAX_ATOMS

    path = folder / {"npz-bomb": "bomb.npz", "tar-bomb": "bomb.tar.gz", "sdf-empty": "empty.sdf",
                     "largest-molecule": "big.xyz"}.get(kind, "frames.xyz")
    if kind == "npz-bomb":  # declared sizes just under the byte limit: accepted and decompressed
        n, m = 200_000, 50
        np.savez_compressed(path, num_atoms=np.zeros(n, dtype=np.int64), charges=np.zeros((n, m), dtype=np.int64),
                            positions=np.zeros((n, m, 3), dtype=np.float32))
    elif kind == "tar-bomb":  # one member of the most bytes allowed (gzip's ratio is about 1000:1)
        data = _xyz_member_bytes(min(MAX_FILE_BYTES, 900 * ONE_MB))
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("frames.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    elif kind == "sdf-empty":
        path.write_bytes(b"\n\n\nbad\n$$$$\n" * (ONE_MB // 12))
    elif kind == "largest-molecule":
        path.write_text(f"{MAX_ATOMS}\n\n" + "".join(f"C {1.5 * (i % 10)} {1.5 * (i // 10 % 10)} {1.5 * (i // 100)}\n"
                                                      for i in range(MAX_ATOMS)))
    elif kind == "xyz-frames":
        path.write_bytes(_xyz_member_bytes(ONE_MB))
    else:
        path.write_bytes(_xyz_member_bytes(1000))
    assert path.stat().st_size <= ONE_MB, (kind, path.stat().st_size)
    return path


class HostileInputs:
    params = (["clean", "npz-bomb", "tar-bomb", "xyz-frames", "sdf-empty", "largest-molecule"],)
    param_names = ["input"]
    timeout = 600

    def setup(self, kind: str) -> None:
        self.folder = tempfile.TemporaryDirectory()
        self.path = build(kind, Path(self.folder.name))

    def teardown(self, kind: str) -> None:
        self.folder.cleanup()

    def peakmem_read(self, kind: str) -> None:
        import warnings

        from bench.data import read_molecules
        from bench.errors import InputError

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                read_molecules(self.path, on_error="skip")
            except InputError:
                pass
