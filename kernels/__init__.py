"""Compiled inference core: C++ (OpenMP) and Triton kernels for the EGNN.

The C++ module ``kernels._egnn_cpp`` is built by the top-level ``CMakeLists.txt``
through scikit-build-core when the project is pip-installed. A machine without a
compiler still installs the project; :func:`cpp_available` then returns ``False``
and :func:`cpp_unavailable_reason` says why, so callers fall back to the torch
reference with a clear message instead of an ``ImportError``.

This package is a leaf: it imports numpy and its own compiled module only
(``edm_core.backends`` is the one place that dispatches to it).
"""

from __future__ import annotations

import numpy as np

try:
    from kernels import _egnn_cpp
except ImportError as exc:  # no compiler at install time, or a stale build
    _egnn_cpp = None
    _IMPORT_ERROR = (
        f"the C++ extension kernels._egnn_cpp is not built ({exc}); reinstall with a C++17 "
        "compiler and CMake >= 3.18 available (`make setup`), or use backend='torch'"
    )
else:
    _IMPORT_ERROR = ""

__all__ = ["cpp_available", "cpp_unavailable_reason", "pairwise_sq_dist"]


def cpp_available() -> bool:
    """Return whether the compiled C++ extension can be used."""
    return _egnn_cpp is not None


def cpp_unavailable_reason() -> str:
    """Return why the C++ extension is unavailable ('' when it is available)."""
    return _IMPORT_ERROR


def pairwise_sq_dist(positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Squared distances of every ordered atom pair inside each molecule.

    Parameters
    ----------
    positions : (n_atoms, 3) array, Angstrom
        Atoms of all molecules, packed without padding.
    offsets : (n_molecules + 1,) int array
        Molecule ``m`` owns atoms ``offsets[m]:offsets[m + 1]``.

    Returns
    -------
    (sum_m n_m**2,) float32 array
        The row-major ``n_m x n_m`` blocks of ``|x_i - x_j|^2``, molecule after molecule.

    Raises
    ------
    RuntimeError
        If the extension is not built (message says how to build it).
    ValueError
        If ``offsets`` does not partition ``positions``.
    """
    if _egnn_cpp is None:
        raise RuntimeError(_IMPORT_ERROR)
    x = np.ascontiguousarray(positions, dtype=np.float32)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"positions must have shape (n_atoms, 3), got {x.shape}")
    return _egnn_cpp.pairwise_sq_dist(x, off)
