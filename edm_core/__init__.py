"""The model side of edm-bench: the EDM denoiser (EGNN + E(3) equivariant diffusion).

Written from EDM_SPEC.md (Hoogeboom et al., ICML 2022); loads the original
checkpoints with no key left over or missing and gives the same numbers.

Public names: :func:`load_checkpoint`, :func:`save_checkpoint`, :class:`EDMDenoiser`
(``gamma``, ``normalize``, ``predict_noise``, ``generate``, ``relax``,
``repeat_step``), :class:`EDMConfig`. Nothing in ``bench.data`` or
``bench.oracles`` imports this package.
"""

from edm_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from edm_core.model import EDMConfig, EDMDenoiser, ModelInputError, RelaxOutput

__all__ = ["load_checkpoint", "save_checkpoint", "CheckpointError", "EDMConfig", "EDMDenoiser", "ModelInputError",
           "RelaxOutput"]
