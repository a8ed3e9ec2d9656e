"""Dataset loading (asv ``time_*``): reading a shipped test split from its npz shards."""

from __future__ import annotations

from ._inputs import shipped


class DatasetLoading:
    params = (["qm9-xtb", "drugs-xtb"],)
    param_names = ["dataset"]

    def time_load_dataset(self, dataset: str) -> None:
        from bench.data import load_dataset

        load_dataset(shipped(dataset), "test")
