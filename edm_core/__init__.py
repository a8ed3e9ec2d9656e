"""The model side of edm-bench: the EDM denoiser (EGNN + E(3) diffusion).

Filled by the edm_core issue: reference EGNN bit-compatible with the original EDM
checkpoints, the noise schedule, sampling and relaxation, training, checkpoint I/O
and backend dispatch (``edm_core.backends``). Nothing in ``bench.data`` or
``bench.oracles`` imports this package.
"""
