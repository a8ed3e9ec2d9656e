"""The model side of edm-bench: the EDM denoiser (EGNN + E(3) equivariant diffusion).

Written from the EDM paper and its checkpoint format (Hoogeboom et al., ICML 2022); loads the original
checkpoints with no key left over or missing and gives the same numbers.

Public names: :func:`load_checkpoint`, :func:`save_checkpoint`, :class:`EDMDenoiser`
(``gamma``, ``normalize``, ``predict_noise``, ``generate``, ``relax``,
``repeat_step``), :class:`EDMConfig`. They are imported on first use (PEP 562),
so that :mod:`edm_core.geometry`, the one module ``bench.data`` and
``bench.oracles`` use, does not import torch into their worker processes.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "load_checkpoint": "edm_core.checkpoint",
    "save_checkpoint": "edm_core.checkpoint",
    "CheckpointError": "edm_core.checkpoint",
    "EDMConfig": "edm_core.model",
    "EDMDenoiser": "edm_core.model",
    "ModelInputError": "edm_core.model",
    "RelaxOutput": "edm_core.model",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edm_core' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
