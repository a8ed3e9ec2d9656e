"""The ``edm-bench`` command line: thin wrappers over the library (every command
is a function callable from Python)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    import pandas as pd

    from edm_core.model import EDMConfig

app = typer.Typer(help="Benchmarks of molecular diffusion denoisers on the potential energy surface.",
                  no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Build, inspect and read datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    name: Annotated[str, typer.Argument(help="Recipe: qm9-xtb, drugs-xtb or zinc-xtb.")],
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N SMILES.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: datasets/NAME).")] = None,
    smiles: Annotated[Optional[Path], typer.Option(help="SMILES file (default: the recipe's shared file).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    dask: Annotated[Optional[str], typer.Option(help="'local' for a Dask LocalCluster, or a scheduler address.")] = None,
) -> None:
    """Build a dataset from SMILES: ETKDG + MMFF94 start, GFN2-xTB ground state. Resumable."""
    from bench.build import build_dataset

    manifest = build_dataset(name, out_dir=out, smiles_path=smiles, limit=limit, workers=workers, dask=dask)
    typer.echo(json.dumps({k: manifest[k] for k in ("name", "n_molecules", "rejects", "start_minus_ground_kcal_mol")}
                          | {"splits": {s: v["n_molecules"] for s, v in manifest["splits"].items()}}, indent=2))


@data_app.command("info")
def data_info(
    name: Annotated[str, typer.Argument(help="A shipped set's name or a built folder.")],
    verify: Annotated[bool, typer.Option(help="Recompute the content hashes.")] = False,
    markdown: Annotated[bool, typer.Option(help="Print the datasets/README.md section instead of JSON.")] = False,
) -> None:
    """Print a dataset's sizes, settings and content hashes."""
    from bench.data import load_dataset, read_manifest
    from bench.data.dataset import describe_markdown

    manifest = read_manifest(name)
    if verify:
        for split in manifest["splits"]:
            load_dataset(name, split, verify=True)
    typer.echo(describe_markdown(name) if markdown else json.dumps(manifest, indent=2))
    if verify:
        typer.echo("content hashes verified")


@data_app.command("read")
def data_read(
    path: Annotated[Path, typer.Argument(help="A molecule file or folder (xyz, QM9 xyz, sdf, EDM npz, GEOM npy).")],
    skip_bad: Annotated[bool, typer.Option(help="Skip bad records (reported) instead of failing.")] = False,
) -> None:
    """Read molecules from a file and print one line per molecule."""
    from ase import Atoms

    from bench.data import read_molecules

    for mol in read_molecules(path, on_error="skip" if skip_bad else "raise"):
        formula = Atoms(numbers=mol.numbers).get_chemical_formula()
        typer.echo(f"{mol.id}\t{formula}\t{len(mol.numbers)} atoms\tcharge {mol.charge}\t{mol.smiles}")


card_app = typer.Typer(help="Denoiser cards.", no_args_is_help=True)
_TRUST_HELP = ("Allow entry-point cards: they import a Python module, which runs with your rights "
               "(checkpoints and ONNX files never run code).")
app.add_typer(card_app, name="card")


@card_app.command("validate")
def card_validate(
    paths: Annotated[list[Path], typer.Argument(help="Card files (YAML).")],
    load: Annotated[bool, typer.Option(help="Also load each denoiser (checks paths, sha256, signature).")] = False,
    trust_code: Annotated[bool, typer.Option(help=_TRUST_HELP)] = False,
) -> None:
    """Check cards against the schema (unknown keys rejected); exit 1 on the first bad one."""
    from bench.cards import load_denoiser, read_card

    for path in paths:
        card = read_card(path)
        if load:
            load_denoiser(path, trust_code=trust_code)
        typer.echo(f"ok  {path}  ({card['key']})")


@app.command("run")
def run_cmd(
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: runs/<dataset>-<split>-<oracle>).")] = None,
    dataset: Annotated[str, typer.Option(help="Shipped set or built folder.")] = "qm9-xtb",
    split: Annotated[str, typer.Option(help="train, valid, test, or all (every split: for a set nothing trains on, drugs-xtb).")] = "test",
    n_molecules: Annotated[int, typer.Option("--n-molecules", "-n", help="Seeded random subset size.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the molecule choice.")] = 0,
    max_atoms: Annotated[Optional[int], typer.Option(help="Choose only among molecules with at most this many "
                                                          "atoms (DFT runs).")] = None,
    tasks: Annotated[Optional[str], typer.Option(
        help="Comma-separated tasks (`edm-bench tasks` lists the registry; default: every task of `run`).")] = None,
    oracle: Annotated[str, typer.Option(help="xtb, dft, mmff or uff.")] = "xtb",
    oracle_option: Annotated[Optional[list[str]], typer.Option(
        "--oracle-option", help="Oracle setting KEY=VALUE (repeatable; the value is read as YAML), e.g. "
                                "density_fit=true for dft.")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated baselines: mmff (the reference), uff, etkdg, ceiling "
                                              "(the oracle ground state, slightly perturbed), xtb (a GFN2-xTB "
                                              "pre-relaxation; not under the xtb oracle).")
                       ] = "mmff,uff,etkdg,ceiling",
    denoiser: Annotated[Optional[list[Path]], typer.Option(help="Denoiser card (repeatable).")] = None,
    shipped_denoiser: Annotated[Optional[bool], typer.Option(
        "--shipped-denoiser/--no-shipped-denoiser",
        help="The shipped denoisers for the dataset: on QM9 the shipped checkpoint with the study's sampler "
             "(bench.cards.DEFAULT_CARD), the deterministic one and the other families; on drugs-xtb the DRUGS "
             "family (bench.cards.SHIPPED_CARDS_BY_DATASET). Default: included unless --denoiser cards are given.")
    ] = None,
    n_steps: Annotated[Optional[str], typer.Option(
        help="Comma-separated start steps n for every denoiser, or auto (a time-step predictor's n per molecule, "
             "MoreRed's ITP and AS modes; auto-itp or auto-as for one). Default: each card's relaxation.n_steps.")
    ] = None,
    evaluations: Annotated[Optional[str], typer.Option(
        help="Comma-separated k: also run each start step n in k strided network steps (DDIM's stride; k >= n is "
             "every step). Default: each card's relaxation.evaluations, else every step.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated denoiser seeds (metrics pool them).")] = "0,1,2",
    fmax: Annotated[float, typer.Option(help="Relaxation threshold, eV/A.")] = 0.03,
    store: Annotated[Optional[Path], typer.Option(help="Results store (default: runs/store.sqlite).")] = None,
    workers: Annotated[int, typer.Option(help="Oracle worker processes (0: all cores).")] = 0,
    dask: Annotated[Optional[str], typer.Option(help="'local' for a Dask LocalCluster, or a scheduler address.")] = None,
    progress: Annotated[Optional[bool], typer.Option(
        "--progress/--no-progress", help="Progress bars (default: on a terminal only).")] = None,
    trust_code: Annotated[bool, typer.Option(help=_TRUST_HELP)] = False,
    backend: BackendOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole summary as JSON (every metric and "
                                                         "interval) instead of the table that fits the terminal.")
                       ] = False,
) -> None:
    """Run the relaxation tasks on a dataset split and write tables, summary and report."""
    import os

    if progress is not None:
        os.environ["EDM_BENCH_PROGRESS"] = "1" if progress else "0"

    from bench.cards import shipped_cards
    from bench.runner import RunSettings, print_summary, run

    with_shipped = not denoiser if shipped_denoiser is None else shipped_denoiser
    cards = [*(denoiser or ()), *(shipped_cards(Path(dataset).name) if with_shipped else [])]
    settings = RunSettings(dataset=dataset, split=split, n_molecules=n_molecules, seed=seed, oracle=oracle,
                           oracle_settings=_key_values(oracle_option or ()), max_atoms=max_atoms,
                           **({} if tasks is None else {"tasks": _names(tasks)}),
                           methods=_names(methods), fmax_ev_ang=fmax,
                           denoisers=tuple(str(p) for p in cards),
                           n_steps=_start_steps(n_steps), evaluations=_ints(evaluations, "--evaluations"),
                           workers=workers or os.cpu_count() or 1, dask=dask,
                           denoiser_seeds=_ints(seeds, "--seeds") or (), trust_code=trust_code, backend=backend)
    out = out or Path("runs") / f"{Path(dataset).name}-{split}-{oracle}"
    summary = run(settings, out, store_path=store or Path("runs") / "store.sqlite")
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    print_summary(summary)
    typer.echo(f"wrote {out}/ (summary.json, report.md, tables, manifest.json)")


@app.command("tasks")
def tasks_cmd() -> None:
    """The task registry: each task, the command that runs it, what it needs, its tables and metrics."""
    from bench.registry import registry

    for task in registry().values():
        typer.echo(f"{task.name:<16} edm-bench {task.command:<11} {task.description}")


@app.command("report")
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `edm-bench run`.")],
) -> None:
    """Recompute metrics, summary.json, figures and the report of finished runs from
    their per-molecule tables (sha256-checked); no oracle work is redone."""
    from bench.runner import print_summary, rederive

    for run_dir in runs:
        print_summary(rederive(run_dir))
        typer.echo(f"rewrote {run_dir}/ (metrics, summary.json, report, figures)")


@app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Option(help="Run folder (resumed if it holds train_state.pt).")],
    dataset: Annotated[str, typer.Option(help="Shipped set or built folder (ground states are the data).")] = "qm9-xtb",
    epochs: Annotated[int, typer.Option(help="Total epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Molecules per step (original: 64).")] = 64,
    nf: Annotated[int, typer.Option(help="Hidden size (original: 256).")] = 256,
    n_layers: Annotated[int, typer.Option(help="Equivariant blocks (original QM9: 9).")] = 9,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (original: 1e-4).")] = 1e-4,
    lr_final: Annotated[Optional[float], typer.Option(
        help="Cosine-decay the learning rate to this by the last epoch (our extension; off = constant).")] = None,
    bucket: Annotated[bool, typer.Option(help="Batch molecules of similar size (less padding, same loss).")] = True,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: torch's choice).")] = None,
    ema_decay: Annotated[float, typer.Option(help="EMA beta (original: 0.9999).")] = 0.9999,
    t_max: Annotated[float, typer.Option(help="Train only on t <= t_max (our extension; 1 = original).")] = 1.0,
    checkpoint_every: Annotated[int, typer.Option(help="Write an epoch checkpoint every N epochs.")] = 1,
    max_molecules: Annotated[Optional[int], typer.Option(help="Use only the first N training molecules.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of weights, batches and noise.")] = 0,
    position_only: Annotated[bool, typer.Option(
        help="Diffuse positions only, atom types given (the MoreRed kind; our extension).")] = False,
    start_fraction: Annotated[float, typer.Option(
        help="Corrupt this fraction of the molecules by their MMFF94 start instead of Gaussian noise alone "
             "(a labelled reference family, not the study's objective).")] = 0.0,
    max_start_rmsd: Annotated[float, typer.Option(
        help="With --start-fraction: leave out starts further than this from their ground state "
             "(aligned RMSD, A).")] = 0.25,
    init: Annotated[Optional[Path], typer.Option(
        help="Start a new run from this checkpoint's weights and configuration (fine-tuning).")] = None,
    pack: Annotated[str, typer.Option(
        help="Probabilities of 1, 2, ... molecules per training sample, side by side at contact distance "
             "(size augmentation, e.g. 0.5,0.35,0.15; our extension; default one molecule).")] = "",
    atom_types: Annotated[str, typer.Option(
        help="EDM's atom decoder: qm9 (H C N O F, with charges), geom (16 elements, no charges, the DRUGS "
             "model's), or auto: qm9 if the training set fits it, else geom.")] = "auto",
) -> None:
    """Train an EDM denoiser on a dataset's ground states (original defaults; resumable)."""
    from bench.cards import card_for_checkpoint, write_card
    from bench.data import load_dataset, read_manifest
    from edm_core.dataset_info import DATASET_INFO
    from edm_core.model import EDMConfig
    from edm_core.train import Trainer, TrainSettings

    try:  # edm_core's settings say what is wrong in a ValueError: a bad option here
        settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, lr_final=lr_final, bucket=bucket,
                                 ema_decay=ema_decay, t_max=t_max, checkpoint_every=checkpoint_every, device=device,
                                 seed=seed, start_fraction=start_fraction, max_start_rmsd=max_start_rmsd,
                                 pack=_floats(pack, "--pack"))
        EDMConfig(nf=nf, n_layers=n_layers)  # the size options, checked before any data is read
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if atom_types not in ("auto", *DATASET_INFO):
        raise typer.BadParameter(f"{atom_types!r}: choose from auto, {', '.join(DATASET_INFO)}",
                                 param_hint="--atom-types")
    if init is not None and not (init / "config.json").is_file() and not (init / "args.pickle").is_file():
        raise typer.BadParameter(f"{init}: not a checkpoint folder (no config.json or args.pickle)", param_hint="--init")
    train = load_dataset(dataset, "train")
    valid = load_dataset(dataset, "valid")
    n = len(train) if max_molecules is None else min(max_molecules, len(train))
    pairs = [(r.numbers, r.ground_positions) for r in train[:n]]
    config = _training_config(pairs, atom_types, max_per_sample=len(settings.pack) or 1, nf=nf, n_layers=n_layers,
                              position_only=position_only)
    valid_pairs = [(r.numbers, r.ground_positions) for r in valid]
    manifest = read_manifest(dataset)
    data = {"dataset": str(dataset), "split": "train", "positions": "ground state (GFN2-xTB)",
            "content_sha256": manifest["splits"]["train"]["content_sha256"], "n_used": n}
    if start_fraction > 0:
        data["starts"] = "MMFF94 starts of the same molecules"
    data["overlap"] = _evaluation_overlap(dataset, [r.smiles for r in train[:n]])
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    train_starts = [r.start_positions for r in train[:n]] if start_fraction > 0 else None
    trainer = Trainer(config, settings, pairs, valid_pairs, out, data, train_starts=train_starts,
                      valid_starts=[r.start_positions for r in valid], init=init)

    def on_epoch(record: dict) -> None:
        typer.echo(json.dumps(record))
        ckpt = out / f"epoch_{record['epoch']:04d}"
        if ckpt.is_dir():  # a card beside every checkpoint: `edm-bench run --denoiser <ckpt>/card.yml`
            write_card(card_for_checkpoint(ckpt, f"{out.name}-e{record['epoch']:04d}"), ckpt / "card.yml")

    trainer.fit(on_epoch=on_epoch)
    typer.echo(f"checkpoints and cards in {out}/epoch_*")


#: The shipped evaluation splits a card states its training set's overlap with.
EVALUATION_SPLITS = (("qm9-xtb", "test"), ("drugs-xtb", "all"))


def _evaluation_overlap(dataset: str, smiles: list[str]) -> dict[str, int]:
    """Training molecules per shipped evaluation split that share its canonical SMILES
    (``{"drugs-xtb/all": 0, ...}``); a split of the training set's own dataset is
    disjoint by construction and counted all the same."""
    from bench.data.dataset import smiles_overlap

    return {f"{name}/{split}": smiles_overlap(smiles, name, split) for name, split in EVALUATION_SPLITS}


def _training_config(molecules: list, atom_types: str, max_per_sample: int = 1, **options: object) -> EDMConfig:
    """The EDM config of a new run: ``atom_types``' decoder (``auto``: the first of
    qm9, geom that holds every element of ``molecules``), the training set's own
    size histogram (what generation samples sizes from), and as the largest molecule
    the model takes, the largest training sample (``max_per_sample`` molecules packed),
    and as the widest, the widest training molecule (largest interatomic distance,
    rounded up to 0.01 A; no limit when packing): EDM's EGNN breaks on molecules much
    larger or wider than it was trained on, and refusing them (a failed output,
    counted by the failure rule) is the honest answer."""
    import math

    import numpy as np
    from ase.data import chemical_symbols

    from edm_core.dataset_info import DATASET_INFO, atomic_numbers_of
    from edm_core.geometry import diameter
    from edm_core.model import EDMConfig

    elements = {int(z) for numbers, _ in molecules for z in numbers}
    fits = [name for name, info in DATASET_INFO.items() if elements <= set(atomic_numbers_of(info["atom_decoder"]))]
    chosen = (fits[0] if fits else "geom") if atom_types == "auto" else atom_types
    outside = sorted(elements - set(atomic_numbers_of(DATASET_INFO[chosen]["atom_decoder"])))
    if outside:
        raise typer.BadParameter(f"the training set holds {[chemical_symbols[z] for z in outside]}, not among "
                                 f"EDM's {chosen} atom types", param_hint="--atom-types")
    sizes, counts = np.unique([len(numbers) for numbers, _ in molecules], return_counts=True)
    largest = int(sizes.max()) * max_per_sample  # what the network is trained on is what it takes
    # packed samples are wider than any one molecule: no width limit is known then
    widest = None if max_per_sample > 1 else math.ceil(100 * max(diameter(p) for _, p in molecules)) / 100
    try:
        return EDMConfig.for_dataset(chosen, max_n_nodes=largest, max_diameter=widest,
                                     n_nodes_histogram={int(k): int(v) for k, v in zip(sizes, counts)}, **options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("train-time-predictor")
def train_time_predictor_cmd(
    out: Annotated[Path, typer.Option(help="Output file (.onnx, the 'time' signature); a .json record beside it.")],
    dataset: Annotated[str, typer.Option(help="Shipped set or built folder (its ground states are noised).")] = "qm9-xtb",
    schedule: Annotated[str, typer.Option(help="The denoiser's noise schedule (polynomial_<p> or cosine).")]
    = "polynomial_2",
    timesteps: Annotated[int, typer.Option(help="The denoiser's T.")] = 1000,
    precision: Annotated[float, typer.Option(help="The schedule's precision s.")] = 1e-5,
    t_range: Annotated[float, typer.Option(help="Largest t trained on (t_range T is the largest start step).")] = 0.1,
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 10,
    hidden: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    n_layers: Annotated[int, typer.Option(help="Interaction layers.")] = 3,
    max_molecules: Annotated[Optional[int], typer.Option(help="Use only the first N training molecules.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: torch's choice).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, batches and noise.")] = 0,
) -> None:
    """Train a time-step predictor (how noisy a structure looks, for `--n-steps auto`)
    on a dataset's ground states noised with a denoiser's schedule."""
    import torch

    from bench.data import load_dataset, read_manifest
    from bench.data.dataset import write_json_atomic
    from edm_core.schedule import alpha2_table
    from edm_core.time_predictor import PredictorConfig, PredictorTraining, export_onnx, train_time_predictor

    try:
        alpha2 = alpha2_table(timesteps, precision, schedule)
        config = PredictorConfig(hidden=hidden, n_layers=n_layers, t_range=t_range)
        settings = PredictorTraining(epochs=epochs, seed=seed)
        if not 0 < t_range <= 1 or epochs < 1:
            raise ValueError("need 0 < t_range <= 1 and epochs >= 1")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if threads is not None:
        torch.set_num_threads(threads)
    train = [(r.numbers, r.ground_positions) for r in load_dataset(dataset, "train")[:max_molecules]]
    valid = [(r.numbers, r.ground_positions) for r in load_dataset(dataset, "valid")]
    if not train or not valid:
        raise typer.BadParameter(f"{dataset}: needs train and valid molecules (got {len(train)}, {len(valid)})")
    predictor, record = train_time_predictor(train, valid, alpha2, config, settings)
    record |= {"dataset": str(dataset), "content_sha256": read_manifest(dataset)["splits"]["train"]["content_sha256"],
               "schedule": {"name": schedule, "timesteps": timesteps, "precision": precision},
               "threads": torch.get_num_threads()}
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(predictor, out, record)
    write_json_atomic(out.with_suffix(".json"), record)
    typer.echo(json.dumps({k: v for k, v in record.items() if k != "history"}))


@app.command("export-onnx")
def export_onnx_cmd(
    card: Annotated[Path, typer.Argument(help="The card of an EDM checkpoint (edm-checkpoint kind).")],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx and its card.")],
    time_predictor: Annotated[Optional[Path], typer.Option(
        help="An ONNX time-step predictor to ship beside it (copied; named in the card).")] = None,
    key: Annotated[Optional[str], typer.Option(help="The new card's key (default: the checkpoint's + '-onnx').")] = None,
) -> None:
    """Export a checkpoint's network to ONNX (the positions signature for a position-only
    model, else the edm one) with a card that enters it as an ONNX file."""
    import shutil

    from bench.cards import load_denoiser, model_sha256, read_card, write_card
    from edm_core.onnx_backend import export_onnx

    source = read_card(card)
    if source["model"]["kind"] != "edm-checkpoint":
        raise typer.BadParameter(f"{card}: model.kind is {source['model']['kind']!r}, not an EDM checkpoint")
    model = load_denoiser(card, backend="torch").model
    signature = "positions" if model.config.position_only else "edm"
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / "model.onnx", signature=signature)
    doc = {**source, "key": key or f"{source['key']}-onnx",
           "model": {"kind": "onnx", "path": "model.onnx", "sha256": model_sha256(out / "model.onnx"),
                     "size_bytes": (out / "model.onnx").stat().st_size}}
    if time_predictor is not None:
        shutil.copyfile(time_predictor, out / "time_predictor.onnx")
        doc["model"]["time_predictor"] = {"path": "time_predictor.onnx",
                                          "sha256": model_sha256(out / "time_predictor.onnx")}
    doc["notes"] = (f"{source.get('notes', '')} Exported to ONNX ({signature} signature) from the checkpoint of "
                    f"card {source['key']}.").strip()
    doc.pop("measured", None)
    write_card(doc, out / "card.yml")
    typer.echo(f"{out / 'model.onnx'} ({signature} signature) and {out / 'card.yml'}")


@app.command("leaderboard")
def leaderboard_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (written by `edm-bench run` or an analysis).")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("leaderboard"),
) -> None:
    """Rank the methods of finished runs, one table per benchmark, recomputed from
    their per-molecule tables (Markdown, CSV, HTML)."""
    from bench.leaderboard import collect, shown_columns, write_leaderboard

    from bench.terminal import print_fitted

    boards = collect(runs)
    write_leaderboard(boards, out)
    for board in boards:
        columns = [c for c in shown_columns(board) if c != "method"]
        rows = {row["method"]: [_cell(row[c]) for c in columns] for row in board.rows.to_dict(orient="records")}
        print_fitted(f"{board.task}: {board.label}", "method", rows, columns, board.rule,
                     where=f"{out}/leaderboard.csv")
    typer.echo(f"wrote {out}/leaderboard.md, .csv, .html")


def _cell(value: object) -> str:
    """A leaderboard value as the terminal shows it: 3 significant digits, '-' for none."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command("check")
def check_cmd(
    results: Annotated[Path, typer.Argument(help="A run folder (summary.json) or `perf --json` output.")],
    baseline: Annotated[Path, typer.Option(help="Baseline file with values, tolerances and directions.")],
) -> None:
    """Compare headline metrics and speed ratios with a baseline; exit 1 on a regression."""
    from bench.check import check

    _report_check(check(results, baseline))


def _report_check(table: pd.DataFrame) -> None:
    """Print a check table; exit 1 when a metric regressed or is missing."""
    typer.echo(table.to_markdown(index=False, floatfmt=".4g"))
    bad = table[table["status"] != "ok"]
    if len(bad):
        typer.echo(f"{len(bad)} metric(s) regressed or missing: {', '.join(bad['metric'])}", err=True)
        raise typer.Exit(1)
    typer.echo(f"all {len(table)} metrics within tolerance")


@app.command("perf")
def perf_cmd(
    backends: Annotated[str, typer.Option(help="Comma-separated: torch, cpp, onnx, triton, triton-tf32 (GPU, "
                                                "opt-in TF32), or 'auto' for all available here.")] = "auto",
    quick: Annotated[bool, typer.Option(help="Smaller cases (for CI).")] = False,
    cases: Annotated[str, typer.Option(help="Comma-separated subset of single, qm9x64, drugs, relax50 "
                                            "(relax50 also times the xTB relaxation).")] = "single,qm9x64,relax50,drugs",
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
) -> None:
    """Network evaluations per second per backend, with ratios to the original-style network."""
    from edm_core.backends import BACKENDS

    from bench.perf import format_table, records_as_dicts, run_perf

    names = [n for n, info in BACKENDS.items() if info().available] if backends == "auto" else \
        [b.strip() for b in backends.split(",") if b.strip()]
    try:
        records = run_perf(names, quick=quick, progress=not as_json, only=[c.strip() for c in cases.split(",")])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cases") from exc
    typer.echo(json.dumps(records_as_dicts(records), indent=1) if as_json else format_table(records))


@app.command("gpu-check")
def gpu_check_cmd(
    out: Annotated[Path, typer.Option(help="Folder for gpu_check.json and gpu_check.md.")] = Path("runs/gpu-check"),
    dry_run: Annotated[bool, typer.Option(help="Toy sizes on the CPU: rehearse the script before a GPU lease.")
                       ] = False,
) -> None:
    """Triton accuracy and speed, ONNX Runtime CUDA and gpu4pyscf on a GPU, in one run
    (GPU parts skipped with the reason where there is no CUDA device)."""
    from bench.gpu_check import main

    raise typer.Exit(main(["--out", str(out), *(["--dry-run"] if dry_run else [])]))


def _key_values(items: Sequence[str]) -> dict[str, object]:
    """``["a=1", "b=true"]`` as ``{"a": 1, "b": True}`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--oracle-option")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _values(text: Optional[str], convert: type, option: str) -> Optional[tuple]:
    """A comma-separated option as a tuple of ``convert`` values (None when not given)."""
    if text is None:
        return None
    try:
        return tuple(convert(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        kind = "integers" if convert is int else "numbers"
        raise typer.BadParameter(f"expected comma-separated {kind}, got {text!r}", param_hint=option) from exc


def _floats(text: Optional[str], option: str = "") -> Optional[tuple[float, ...]]:
    return _values(text, float, option)


def _ints(text: Optional[str], option: str = "") -> Optional[tuple[int, ...]]:
    return _values(text, int, option)


def _start_steps(text: Optional[str]) -> Optional[tuple[int | str, ...]]:
    """``--n-steps``: integers and ``auto`` / ``auto-itp`` / ``auto-as``."""
    if text is None:
        return None
    from bench.cards import AUTO_MODES

    words = [v.strip() for v in text.split(",") if v.strip()]
    try:
        return tuple(v if v in ("auto", *AUTO_MODES) else int(v) for v in words)
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated integers or auto, auto-itp, auto-as, got {text!r}",
                                 param_hint="--n-steps") from exc


#: ``--backend`` of every command that runs denoisers.
BackendOption = Annotated[str, typer.Option(help="How EDM checkpoints' networks run: auto (the fastest here), torch, "
                                                 "cpp, triton or onnx; recorded in the manifest.")]

_THREADS_HELP = "CPU threads for the denoiser (default: torch's choice; 1 on a machine shared with other jobs)."


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _given(**options: object) -> dict[str, object]:
    """The options the user gave (not None): they override the profile."""
    return {k: v for k, v in options.items() if v is not None}


@app.command("boltzmann")
def boltzmann_cmd(
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/boltzmann"),
    quick: Annotated[bool, typer.Option(help="The CI profile: 2 molecules, 3 T, 3 n, chains of a few hundred "
                                              "states (default: the study's profile, hours).")] = False,
    denoiser: Annotated[Optional[list[Path]], typer.Option(help="Denoiser card (repeatable: a checkpoint series).")
                        ] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Shipped set or built folder (default qm9-xtb).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split to choose from (default valid, as the study).")] = None,
    n_molecules: Annotated[Optional[int], typer.Option("--n-molecules", "-n",
                                                       help="Flexible molecules to choose (study: 10).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the choice and the chains.")] = None,
    max_atoms: Annotated[Optional[int], typer.Option(help="Choose only among molecules this small.")] = None,
    oracle: Annotated[Optional[str], typer.Option(help="xtb (the study), dft, mmff or uff.")] = None,
    temperatures: Annotated[Optional[str], typer.Option(help="Comma-separated MCMC temperatures, K.")] = None,
    mcmc_steps: Annotated[Optional[int], typer.Option(help="MCMC proposals per chain (study: 24000).")] = None,
    mcmc_burn_in: Annotated[Optional[int], typer.Option(help="Leading MCMC states dropped (study: 5000).")] = None,
    step: Annotated[Optional[float], typer.Option(help="MCMC proposal step, Angstrom (default: tuned per chain "
                                                       "to ~40% acceptance).")] = None,
    n_values: Annotated[Optional[str], typer.Option(help="Comma-separated diffusion steps n.")] = None,
    repeats: Annotated[Optional[int], typer.Option(help="Repeats of the diffusion step (study: 20000).")] = None,
    repeat_burn_in: Annotated[Optional[int], typer.Option(help="Leading repeats dropped (study: 1000).")] = None,
    store: Annotated[Path, typer.Option(help="Results store (chains are cached).")] = Path("runs/store.sqlite"),
    workers: Annotated[int, typer.Option(help="Oracle worker processes (0: all cores).")] = 0,
    dask: Annotated[Optional[str], typer.Option(help="'local' for a Dask LocalCluster, or a scheduler address.")] = None,
    threads: Annotated[Optional[int], typer.Option(help=_THREADS_HELP)] = None,
    trust_code: Annotated[bool, typer.Option(help=_TRUST_HELP)] = False,
    backend: BackendOption = "auto",
) -> None:
    """Boltzmann sampling: oracle MCMC vs the repeated diffusion step, the map T = u n^2, and the control."""
    import dataclasses
    import os

    from bench.analyses import PROFILES, run_boltzmann

    _set_threads(threads)
    settings = dataclasses.replace(
        PROFILES["quick" if quick else "study"], workers=workers or os.cpu_count() or 1, dask=dask,
        denoisers=tuple(str(p) for p in denoiser or ()), trust_code=trust_code, backend=backend,
        **_given(dataset=dataset, split=split, n_molecules=n_molecules, seed=seed, max_atoms=max_atoms, oracle=oracle,
                 temperatures_k=_floats(temperatures, "--temperatures"), mcmc_steps=mcmc_steps,
                 mcmc_burn_in=mcmc_burn_in,
                 step_ang=step, n_values=_ints(n_values), repeats=repeats, repeat_burn_in=repeat_burn_in))
    summary = run_boltzmann(settings, out, store_path=store)
    typer.echo(json.dumps({k: summary[k] for k in ("methods", "mcmc", "control", "cost")}, indent=1))
    typer.echo(f"wrote {out}/ (summary.json, report.md, tables, manifest.json)")


def _generation_settings(task: str, quick: bool, denoiser: Optional[list[Path]], n_molecules: Optional[int],
                         seed: int, dataset: str, trust_code: bool, backend: str):
    from bench.analyses import QUICK_MOLECULES, GenerationSettings

    n = n_molecules or (QUICK_MOLECULES[task] if quick else 100)
    return GenerationSettings(n_molecules=n, seed=seed, dataset=dataset, denoisers=tuple(str(p) for p in denoiser or ()),
                              trust_code=trust_code, backend=backend)


_DENOISERS_HELP = "Denoiser card (repeatable: a checkpoint series); needs a model trained on all noise levels."


@app.command("phases")
def phases_cmd(
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/phases"),
    quick: Annotated[bool, typer.Option(help="4 molecules (CI); default 100, as the study.")] = False,
    denoiser: Annotated[Optional[list[Path]], typer.Option(help=_DENOISERS_HELP)] = None,
    n_molecules: Annotated[Optional[int], typer.Option("--n-molecules", "-n", help="Molecules to generate.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of sizes and noise.")] = 0,
    threads: Annotated[Optional[int], typer.Option(help=_THREADS_HELP)] = None,
    trust_code: Annotated[bool, typer.Option(help=_TRUST_HELP)] = False,
    backend: BackendOption = "auto",
) -> None:
    """Phases of generation: per reverse step, step size, bond-length error and what is final (figure 2)."""
    from bench.analyses import run_phases

    _set_threads(threads)
    summary = run_phases(_generation_settings("phases", quick, denoiser, n_molecules, seed, "qm9-xtb", trust_code,
                                              backend), out)
    typer.echo(json.dumps(summary["methods"], indent=1))
    typer.echo(f"wrote {out}/ (summary.json, report.md, tables, manifest.json)")


@app.command("generation")
def generation_cmd(
    out: Annotated[Path, typer.Option(help="Run folder.")] = Path("runs/generation"),
    quick: Annotated[bool, typer.Option(help="8 molecules (CI); default 100.")] = False,
    denoiser: Annotated[Optional[list[Path]], typer.Option(help=_DENOISERS_HELP)] = None,
    n_molecules: Annotated[Optional[int], typer.Option("--n-molecules", "-n", help="Molecules to generate.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of sizes and noise.")] = 0,
    dataset: Annotated[str, typer.Option(help="Set whose train split defines novelty.")] = "qm9-xtb",
    threads: Annotated[Optional[int], typer.Option(help=_THREADS_HELP)] = None,
    trust_code: Annotated[bool, typer.Option(help=_TRUST_HELP)] = False,
    backend: BackendOption = "auto",
) -> None:
    """Generation quality: atom and molecule stability, RDKit validity, uniqueness, novelty."""
    from bench.analyses import run_generation

    _set_threads(threads)
    summary = run_generation(_generation_settings("generation", quick, denoiser, n_molecules, seed, dataset,
                                                  trust_code, backend), out)
    typer.echo(json.dumps(summary["methods"], indent=1))
    typer.echo(f"wrote {out}/ (summary.json, report.md, tables, manifest.json)")


_CARD_HELP = "The denoiser card (default: the shipped checkpoint, bench.cards.DEFAULT_CARD; skipped while missing)."


@app.command("gate")
def gate_cmd(
    out: Annotated[Path, typer.Option(help="Results folder (summary.json, perf.json, the run's tables).")
                   ] = Path("runs/gate"),
    baseline: Annotated[Path, typer.Option(help="Baseline file.")] = Path("bench/baseline.yml"),
    card: Annotated[Optional[Path], typer.Option(help=_CARD_HELP)] = None,
    n_molecules: Annotated[int, typer.Option("--n-molecules", "-n", help="Seeded qm9-xtb test molecules.")] = 20,
    workers: Annotated[int, typer.Option(help="Oracle worker processes (0: all cores).")] = 0,
) -> None:
    """The CI regression gate: the quick suite (a seeded run with the shipped
    checkpoint, n = 50, and `perf --quick`), then `check` against the baseline; exit 1 on a regression."""
    import os

    from bench.cards import DEFAULT_CARD
    from bench.gate import QuickSuite, confirm_speed_regressions, run_quick_suite

    suite = QuickSuite(card=card or DEFAULT_CARD, n_molecules=n_molecules, workers=workers or os.cpu_count() or 1)
    run_quick_suite(out, suite)
    _report_check(confirm_speed_regressions(out, baseline))


@app.command("baseline")
def baseline_cmd(
    part: Annotated[str, typer.Option(help="perf (speed ratios) or science (the shipped checkpoint's metrics); "
                                           "the other part of the file is kept.")],
    repeats: Annotated[int, typer.Option(help="K: science runs with denoiser seeds 0..K-1, or K perf processes.")
                       ] = 5,
    baseline: Annotated[Path, typer.Option(help="Baseline file to (re)write.")] = Path("bench/baseline.yml"),
    card: Annotated[Optional[Path], typer.Option(help=_CARD_HELP)] = None,
    n_molecules: Annotated[int, typer.Option("--n-molecules", "-n", help="As the gate's.")] = 20,
    work: Annotated[Path, typer.Option(help="Folder for the repeats' results.")] = Path("runs/baseline"),
    workers: Annotated[int, typer.Option(help="Oracle worker processes (0: all cores).")] = 0,
) -> None:
    """Measure the gate's noise: run the quick suite K times and write value = median,
    tolerance = a multiple of the sample std (bench/gate.py states the rule)."""
    import os

    from bench.cards import DEFAULT_CARD
    from bench.gate import QuickSuite, measure_baseline

    suite = QuickSuite(card=card or DEFAULT_CARD, n_molecules=n_molecules, workers=workers or os.cpu_count() or 1)
    path = measure_baseline(baseline, repeats, part, work, suite)
    typer.echo(f"wrote the {part} part of {path}")


def main() -> None:
    """Console entry point: errors about the user's input end in one clear line
    (exit status 2) instead of a traceback."""
    from edm_core.checkpoint import CheckpointError

    from bench.errors import EdmBenchError

    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError, as typer (which vendors click) has it
    try:
        code = app(standalone_mode=False)  # usage errors come here, not as click's multi-line box
    except usage_error as exc:  # a bad option value, an unknown option, a missing argument
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # a bare group: its help
            typer.echo(exc.ctx.get_help())
            raise SystemExit(0) from None
        typer.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(2) from None
    except (EdmBenchError, CheckpointError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    raise SystemExit(code or 0)


if __name__ == "__main__":  # python -m bench.cli
    main()
