"""The C++ build path: the extension is built by `pip install`, agrees with numpy,
checks its inputs, and a machine without a compiler still installs."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kernels

ROOT = Path(__file__).resolve().parents[2]


def test_extension_is_built_and_matches_numpy_on_ragged_batches(rng):
    assert kernels.cpp_available(), kernels.cpp_unavailable_reason()
    sizes = [1, 2, 7, 29, 0, 3]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    x = rng.normal(size=(offsets[-1], 3)).astype(np.float32)
    out = kernels.pairwise_sq_dist(x, offsets)
    assert out.shape == (sum(n * n for n in sizes),)
    pos = 0
    for m, n in enumerate(sizes):
        xm = x[offsets[m]:offsets[m + 1]].astype(np.float64)
        ref = ((xm[:, None] - xm[None]) ** 2).sum(-1)
        np.testing.assert_allclose(out[pos:pos + n * n].reshape(n, n), ref, rtol=1e-5, atol=1e-6)
        pos += n * n


@pytest.mark.parametrize(
    ("offsets", "message"),
    [([1, 3], "offsets\\[0\\] must be 0"), ([0, 2, 1, 3], "non-decreasing"), ([0, 2], "hold 3 atoms")],
)
def test_bad_offsets_are_refused(offsets, message):
    with pytest.raises(ValueError, match=message):
        kernels.pairwise_sq_dist(np.zeros((3, 3), np.float32), np.array(offsets))


def test_wrong_position_shape_is_refused():
    with pytest.raises(ValueError, match="shape \\(n_atoms, 3\\)"):
        kernels.pairwise_sq_dist(np.zeros((3, 2), np.float32), np.array([0, 3]))


def test_missing_extension_gives_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "kernels._egnn_cpp", None)  # import now fails
    monkeypatch.delattr(kernels, "_egnn_cpp")
    try:
        reloaded = importlib.reload(kernels)
        assert not reloaded.cpp_available()
        assert "make setup" in reloaded.cpp_unavailable_reason()
        with pytest.raises(RuntimeError, match="not built"):
            reloaded.pairwise_sq_dist(np.zeros((1, 3), np.float32), np.array([0, 1]))
    finally:
        monkeypatch.undo()
        importlib.reload(kernels)
    assert kernels.cpp_available()


@pytest.mark.slow
def test_wheel_without_a_compiler_installs_without_the_extension(tmp_path):
    """A broken compiler makes CMake fail; scikit-build-core's `if.failed` override
    then builds a pure-Python wheel instead of failing the install."""
    env = {"PATH": "/usr/bin:/bin", "CXX": "/bin/false", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         "--config-settings=build-dir=" + str(tmp_path / "build"), str(ROOT)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("edm_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kernels/__init__.py" in names and "bench/cli.py" in names
    assert not any(n.startswith("kernels/_egnn_cpp") for n in names)
