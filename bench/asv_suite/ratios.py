"""The kernels' speed relative to the torch reference (asv ``track_*``).

Ratios, not times: every backend is timed in one process right after the torch
reference on the same inputs (``setup_cache``, once per asv run), so the ratio
survives a noisy machine where absolute times do not.
"""

from __future__ import annotations

from ._inputs import SIZES, best_seconds, evaluate, molecules, network, network_inputs

KERNEL_BACKENDS = ["cpp", "onnx", "triton"]


def _seconds(backend: str, size: str) -> float:
    model = network(backend)
    args = network_inputs(model, molecules(size))
    return best_seconds(lambda: evaluate(model, *args), min_time_s=1.0)


class KernelSpeedRatios:
    """torch time / backend time of the whole network (> 1: the kernel is faster)."""

    params = (KERNEL_BACKENDS, SIZES)
    param_names = ["backend", "size"]
    timeout = 600

    def setup_cache(self) -> dict[str, float]:
        ratios = {}
        for size in SIZES:
            reference = _seconds("torch", size)
            for backend in KERNEL_BACKENDS:
                try:
                    ratios[f"{backend}/{size}"] = reference / _seconds(backend, size)
                except NotImplementedError:  # not built, not installed or no CUDA here: skipped below
                    continue
        return ratios

    setup_cache.timeout = 600

    def setup(self, ratios: dict[str, float], backend: str, size: str) -> None:
        if f"{backend}/{size}" not in ratios:
            raise NotImplementedError(f"backend {backend!r} cannot run here")

    def track_speed_ratio_to_torch(self, ratios: dict[str, float], backend: str, size: str) -> float:
        return ratios[f"{backend}/{size}"]

    track_speed_ratio_to_torch.unit = "x torch"
