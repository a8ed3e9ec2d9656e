"""``edm-bench phases`` and ``edm-bench generation``: what de novo generation
from noise does (the study's section 4.1, figure 2) and how good its samples are
(EDM's atom and molecule stability, RDKit validity, uniqueness, novelty).

Both run every denoiser of a checkpoint series on the same seeds. A denoiser
trained only on low noise (card ``t_max`` < 1) is run but flagged: it never saw
the pure noise that generation starts from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analyses.common import ANALYSIS_UNITS, card_t_max, low_noise_warnings
from bench.cards import load_denoisers
from bench.data.dataset import load_dataset
from bench.errors import InputError
from bench.runner import check_backend, write_run_folder
from bench.tasks.phases import aggregate_phases, chain_frames, exploration_end, phase_metrics
from bench.tasks.stability import bond_rule_for, canonical_smiles, generation_table, metrics_from_table


@dataclass(frozen=True)
class GenerationSettings:
    """What a phases or generation run computes (defaults: the study's 100
    molecules); recorded whole in its manifest."""

    n_molecules: int = 100
    seed: int = 0
    #: Molecules per generate() call: a kept chain holds T + 1 latents per molecule.
    batch_size: int = 25
    #: The training set whose ``train`` split defines novelty (generation only).
    dataset: str = "qm9-xtb"
    denoisers: tuple[str, ...] = ()
    #: Allow entry-point cards, which import and run Python code.
    trust_code: bool = False
    #: How EDM checkpoints' networks run (``--backend``).
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_backend(self.backend)
        if self.n_molecules < 1 or self.batch_size < 1:
            raise InputError(f"n_molecules and batch_size must be >= 1, got {self.n_molecules}, {self.batch_size}")
        if not self.denoisers:
            raise InputError("generation needs at least one denoiser: pass --denoiser CARD (repeatable)")


#: ``--quick`` sizes (CI and the README); the study's phases use 100 molecules.
QUICK_MOLECULES = {"phases": 4, "generation": 8}


def _batches(settings: GenerationSettings) -> Iterator[tuple[int, int]]:
    """(seed, size) of each generate() call: seeds differ per batch, so the samples
    do not depend on the batch size beyond the seed layout."""
    for k, start in enumerate(range(0, settings.n_molecules, settings.batch_size)):
        yield settings.seed + k, min(settings.batch_size, settings.n_molecules - start)


def _card_columns(denoiser: Any) -> dict[str, Any]:
    return {"epoch": denoiser.card["training"].get("epochs"), "t_max": card_t_max(denoiser.card)}


def run_phases(settings: GenerationSettings, out_dir: Path) -> dict[str, Any]:
    """Generate molecules keeping every step, measure the phase metrics per step
    and molecule, average them, and write the run folder; return the summary."""
    t0 = time.perf_counter()
    denoisers = load_denoisers(settings.denoisers, trust_code=settings.trust_code, backend=settings.backend)
    for d in denoisers.values():
        d.require("generate", "phases")
    messages = low_noise_warnings(denoisers, "phases")
    per_frame, summaries, ends, methods = [], [], [], {}
    for key, denoiser in denoisers.items():
        frames = []
        for seed, size in _batches(settings):
            out = denoiser.model.generate(size, keep_chain=True, seed=seed)
            chains = chain_frames(out["chain"], out["node_mask"], out["atomic_numbers"], out["position_scale"])
            rule = bond_rule_for(denoiser.model.config.atomic_numbers)
            frames += [phase_metrics(nums, pos, f"seed {seed} sample {k}", rule) for k, (nums, pos) in enumerate(chains)]
        df = pd.concat(frames, ignore_index=True).assign(method=key)
        end = exploration_end(df)
        summary = aggregate_phases(df).assign(method=key)
        last = summary[summary["steps_left"] == 0].iloc[0]
        methods[key] = {**_card_columns(denoiser), "exploration_end_step": end,
                        "final_frac_atoms_valid_valence": round(float(last["frac_atoms_valid_valence_mean"]), 4)}
        per_frame.append(df)
        summaries.append(summary)
        ends.append({"method": key, "exploration_end_step": end})
    tables = {"phases": pd.concat(per_frame, ignore_index=True),
              "phases_summary": pd.concat(summaries, ignore_index=True), "exploration_end": pd.DataFrame(ends)}
    summary = {"task": "phases", "label": f"phases/{settings.n_molecules} generated", "n_molecules":
               settings.n_molecules, "wall_s": round(time.perf_counter() - t0, 1), "methods": methods,
               "warnings": messages}
    write_run_folder(out_dir, "phases", _manifest_settings(settings, denoisers), tables, summary,
                     [("exploration_end", "End of exploration (steps left after which every molecule keeps its "
                                          "elements)")],
                     "Phases of generation (the study's section 4.1): per reverse step, mean and std over molecules.")
    return summary


def run_generation(settings: GenerationSettings, out_dir: Path) -> dict[str, Any]:
    """Generate molecules and compute EDM's quality metrics (novelty against the
    training split of ``settings.dataset``); write the run folder; return the summary."""
    t0 = time.perf_counter()
    denoisers = load_denoisers(settings.denoisers, trust_code=settings.trust_code, backend=settings.backend)
    for d in denoisers.values():
        d.require("generate", "generation")
    messages = low_noise_warnings(denoisers, "generation")
    training = canonical_smiles(r.smiles for r in load_dataset(settings.dataset, "train"))
    samples, rows, methods = [], [], {}
    for key, denoiser in denoisers.items():
        molecules = []
        for seed, size in _batches(settings):
            out = denoiser.model.generate(size, seed=seed)
            molecules += list(zip(out["numbers"], out["positions"]))
        rule = bond_rule_for(denoiser.model.config.atomic_numbers)
        table = generation_table(molecules, rule).assign(method=key, bond_rule=rule)
        metrics = {k: round(v, 4) for k, v in metrics_from_table(table, training).items()}
        methods[key] = {**_card_columns(denoiser), **metrics, "bond_rule": rule}
        samples.append(table)
        rows.append({"method": key, **methods[key]})
    tables = {"samples": pd.concat(samples, ignore_index=True), "generation_summary": pd.DataFrame(rows)}
    summary = {"task": "generation", "label": f"generation/{settings.n_molecules} generated/{settings.dataset}",
               "n_molecules": settings.n_molecules, "wall_s": round(time.perf_counter() - t0, 1),
               "methods": methods, "warnings": messages}
    write_run_folder(out_dir, "generation", _manifest_settings(settings, denoisers), tables, summary,
                     [("generation_summary", "EDM's metrics per denoiser")],
                     f"Generation quality: stability by EDM's bond tables, RDKit validity of the largest fragment, "
                     f"uniqueness among valid, novelty against {settings.dataset}/train ({len(training)} SMILES).")
    return summary


def _manifest_settings(settings: GenerationSettings, denoisers: dict[str, Any]) -> dict[str, Any]:
    return {"run": asdict(settings), "units": ANALYSIS_UNITS,
            "denoisers": {k: {"card": d.card, "backend": d.backend} for k, d in denoisers.items()},
            "seeds": {"generation": "seed + batch index, one generate() call per batch"},
            "generation": "ancestral sampling from pure noise, all T steps, sizes from the training histogram"}
