"""``edm-bench gpu-check``: the GPU path measured in one prepared run.

Four parts, each ``ok``, ``skipped`` (with the reason) or ``failed`` (with the error):

* ``triton-accuracy`` - the Triton EGNN kernels against the float64 torch
  reference on fresh random weights and ragged batches up to DRUGS sizes, with
  poisoned (NaN-filled) memory under the outputs so that an unwritten element shows;
* ``network-timing`` - one network evaluation of the study's network (nf 256,
  9 layers) on a ragged batch of 1,024 QM9 molecules and on 64 DRUGS-sized ones:
  Triton, torch eager, ``torch.compile`` of the torch backend and ONNX Runtime's
  CUDA provider, each timed with CUDA events (median of many runs after a
  warm-up), with the fraction of the bf16 and tf32 matrix-unit rates reached by
  the useful flops (counted as in ``bench/NOTES.md``; the rates measured on the
  device with one large GEMM each);
* ``dft`` - one B3LYP/6-31G(2df,p) energy and gradient of an 18-atom QM9 molecule
  with gpu4pyscf and with pyscf on 2 CPU threads, which must agree to 1e-6 Ha;
* ``environment`` - versions and devices.

It runs anywhere: on a host without CUDA the GPU parts are skipped with the
reason, and ``--dry-run`` runs the same code paths at toy sizes on the CPU (Triton
through its interpreter, pyscf in a minimal basis) so that CI and a rehearsal
before the short GPU lease exercise it. Molecules are read from the shipped
shards with numpy alone (the GPU image has no RDKit). Writes ``gpu_check.json``
and ``gpu_check.md`` into the output folder and prints the table last.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The repository (bench/ -> root), where the shipped shards are.
REPO = Path(__file__).resolve().parents[1]
#: QM9's element types; DRUGS elements outside them are timed as carbon (speed
#: depends on the atom count only), as ``edm-bench perf`` does.
QM9_TYPES = (1, 6, 7, 8, 9)
#: Agreement required of gpu4pyscf and pyscf, Hartree.
DFT_AGREEMENT_HA = 1e-6


@dataclass(frozen=True)
class Sizes:
    """How big each part runs: the GPU sizes, or toy ones for a CPU rehearsal."""

    nf: int = 256
    n_layers: int = 9
    qm9_batch: int = 1024
    drugs_batch: int = 64
    accuracy_sizes: tuple[tuple[int, ...], ...] = ((1, 2, 7, 29, 18, 13), (181, 3, 64), (25,) * 40)
    accuracy_seeds: int = 3
    timing_runs: int = 50
    warm_up: int = 5
    dft_basis: str = "6-31g(2df,p)"
    dft_grid_level: int = 3


#: The rehearsal's sizes (about a minute on two CPU cores, most of it Triton's interpreter).
DRY_RUN = Sizes(nf=16, n_layers=2, qm9_batch=4, drugs_batch=1, accuracy_sizes=((1, 2, 7), (20, 3)),
                accuracy_seeds=1, timing_runs=1, warm_up=0, dft_basis="sto-3g", dft_grid_level=0)


@dataclass
class Part:
    name: str
    status: str = "ok"
    reason: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def shipped_molecules(dataset: str, n: int | None, seed: int = 0, which: str = "start_positions"
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` molecules (numbers, positions in Angstrom) drawn with replacement from a
    shipped test split's shards (all of them, in order, for None), read with numpy only."""
    shards = sorted((REPO / "datasets" / dataset).glob("test-*.npz"))
    if not shards:
        raise FileNotFoundError(f"no test shards of {dataset} under {REPO / 'datasets'}")
    molecules = []
    for shard in shards:
        with np.load(shard) as data:
            ends = np.cumsum(data["n_atoms"])
            for begin, end in zip(ends - data["n_atoms"], ends):
                molecules.append((data["numbers"][begin:end].astype(int), data[which][begin:end].astype(float)))
    picks = np.arange(len(molecules)) if n is None else np.random.default_rng(seed).integers(len(molecules), size=n)
    return [(np.where(np.isin(molecules[i][0], QM9_TYPES), molecules[i][0], 6), molecules[i][1]) for i in picks]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def environment() -> Part:
    import torch

    part = Part("environment")
    part.results = {"python": platform.python_version(), "torch": torch.__version__,
                    "cuda_available": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})",
                    "triton_interpret": os.environ.get("TRITON_INTERPRET", "")}
    for module in ("triton", "onnxruntime", "pyscf", "gpu4pyscf", "cupy"):
        try:
            part.results[module] = __import__(module).__version__
        except Exception as exc:  # not installed, or installed without its CUDA libraries
            part.results[module] = f"unavailable ({type(exc).__name__}: {exc})"[:160]
    try:
        import onnxruntime

        part.results["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:
        pass
    return part


def _model(sizes: Sizes, seed: int, device: str) -> Any:
    import torch

    from edm_core import EDMConfig, EDMDenoiser

    torch.manual_seed(seed)
    model = EDMDenoiser(EDMConfig(nf=sizes.nf, n_layers=sizes.n_layers)).eval()
    with torch.no_grad():  # larger coordinate weights than the init, so that x really moves
        for name, p in model.model.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if "coord_mlp.4" in name else 0.05))
    return model.to(device)


def _inputs(model: Any, mols: list, t: float, device: str, dtype: Any = None) -> tuple[Any, Any, Any]:
    import torch

    x, one_hot, charges, mask = model.pack(mols, device=device)
    z = model.normalize(x, one_hot, charges, mask)
    if dtype is not None:
        z, mask = z.to(dtype), mask.to(dtype)
    return z, torch.full((len(mols), 1), t, dtype=z.dtype, device=device), mask


def triton_accuracy(sizes: Sizes, device: str) -> Part:
    """Max relative error of Triton against float64 torch, and whether any output
    element is left unwritten (NaN from the poisoned allocator) or padding is nonzero."""
    import copy

    import torch

    from edm_core.backends import make_network

    part = Part("triton-accuracy")
    rng = np.random.default_rng(0)
    worst, cases = 0.0, []
    for seed in range(sizes.accuracy_seeds):
        for atom_counts in sizes.accuracy_sizes:
            model = _model(sizes, seed, device)
            mols = [(rng.choice(list(QM9_TYPES), size=n), rng.normal(scale=1.4, size=(n, 3))) for n in atom_counts]
            reference = copy.deepcopy(model).to(torch.float64)
            z64, t64, mask64 = _inputs(reference, mols, 0.05, device, torch.float64)
            with torch.no_grad():
                ref = reference.model.dynamics(z64, t64, mask64)
                z, t, mask = _inputs(model, mols, 0.05, device)
                if device == "cuda":  # freed NaN memory is what the kernels' outputs are allocated from
                    torch.full((64 * 2**20,), float("nan"), device=device)  # allocated and freed at once
                got = make_network(model, "triton")(z, t, mask).double()
            real = mask64[..., 0] > 0
            error = float((got - ref).abs().max() / ref.abs().max())
            worst = max(worst, error)
            cases.append({"seed": seed, "atoms": list(atom_counts), "max_rel_error": error,
                          "all_finite": bool(torch.isfinite(got).all()),
                          "padding_zero": bool((got[~real] == 0).all())})
    part.results = {"max_rel_error": worst, "cases": cases, "device": device}
    bad = [c for c in cases if not (c["all_finite"] and c["padding_zero"] and c["max_rel_error"] < 1e-4)]
    if bad:
        part.status, part.reason = "failed", f"{len(bad)} case(s) off: {bad[0]}"
    return part


def _median_ms(fn: Callable[[], object], runs: int, warm_up: int, cuda: bool) -> float:
    """Median milliseconds of ``fn`` after ``warm_up`` calls: CUDA events on a GPU,
    the wall clock in a CPU dry run."""
    import torch

    for _ in range(warm_up):
        fn()
    times = []
    for _ in range(runs):
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def matrix_rates_tflops(device: str, n: int) -> dict[str, float]:
    """The device's measured bf16 and tf32 GEMM rates (n^3, median of 10), TFLOP/s."""
    import torch

    rates = {}
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        rates[name] = 2 * n**3 / (_median_ms(lambda: a @ b, 10, 3, device == "cuda") * 1e-3) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return rates


def network_timing(sizes: Sizes, device: str) -> Part:
    """Per-evaluation times of each backend on the two batches (a GPU's, or a dry run's)."""
    import torch

    from bench.perf import useful_flops
    from edm_core.backends import make_network
    from edm_core.onnx_backend import OnnxNetwork, export_onnx

    part = Part("network-timing")
    if device == "cpu" and sizes != DRY_RUN:
        part.status, part.reason = "skipped", "no CUDA device (absolute times come from a GPU only)"
        return part
    model = _model(sizes, 0, "cpu")
    onnx_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_network_{os.getpid()}.onnx"
    export_onnx(model, onnx_path)
    model = model.to(device)
    backends: dict[str, Callable[[], Any]] = {
        "triton": lambda: make_network(model, "triton"),
        "torch-eager": lambda: model.model.dynamics,
        "torch-compile": lambda: torch.compile(model.model.dynamics),
        "onnx": lambda: OnnxNetwork(onnx_path, source="gpu_check"),
    }
    rates = matrix_rates_tflops(device, 8192 if device == "cuda" else 256)
    part.results = {"matrix_rates_tflops": rates, "cases": [], "device": device}
    for case, dataset, n in (("qm9", "qm9-xtb", sizes.qm9_batch), ("drugs", "drugs-xtb", sizes.drugs_batch)):
        mols = shipped_molecules(dataset, n)
        atom_counts = np.array([len(m[0]) for m in mols])
        flops = useful_flops(atom_counts, sizes.nf, sizes.n_layers)
        z, t, mask = _inputs(model, mols, 0.05, device)
        row: dict[str, Any] = {"case": f"{case}x{n}", "molecules": n, "atoms": int(atom_counts.sum()),
                               "useful_gflop": flops / 1e9}
        for name, build in backends.items():
            try:
                network = build()
                if name == "onnx":
                    row["onnx_providers"] = network.session.get_providers()
                    if device == "cuda" and "CUDAExecutionProvider" not in row["onnx_providers"]:
                        row[name] = "skipped: onnxruntime has no CUDAExecutionProvider here (onnxruntime-gpu)"
                        continue
                with torch.no_grad():
                    ms = _median_ms(lambda: network(z, t, mask), sizes.timing_runs, sizes.warm_up, device == "cuda")
                row[name] = {"ms": ms, **{f"fraction_of_{k}": flops / (ms * 1e-3) / (v * 1e12)
                                         for k, v in rates.items()}}
            except Exception as exc:  # one backend failing must not hide the others' numbers
                row[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        for other in ("torch-eager", "torch-compile"):
            if isinstance(row.get("triton"), dict) and isinstance(row.get(other), dict):
                row[f"triton_speedup_over_{other}"] = row[other]["ms"] / row["triton"]["ms"]
        part.results["cases"].append(row)
    onnx_path.unlink(missing_ok=True)
    return part


def _dft_molecule(dry_run: bool) -> tuple[np.ndarray, np.ndarray]:
    """An 18-atom QM9 test molecule at its ground state (the smallest drawn, for a dry run)."""
    mols = shipped_molecules("qm9-xtb", None, which="ground_positions")
    return min(mols, key=lambda m: len(m[0])) if dry_run else next(m for m in mols if len(m[0]) == 18)


def _pyscf_energy_gradient(numbers: np.ndarray, positions: np.ndarray, sizes: Sizes, gpu: bool
                           ) -> tuple[float, np.ndarray, float]:
    """B3LYP (pyscf's b3lypg, as the dft oracle) energy (Ha), gradient (Ha/Bohr) and seconds."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(numbers, positions)], unit="Angstrom",
                basis=sizes.dft_basis, verbose=0)
    if gpu:
        from gpu4pyscf.dft import rks

        mf = rks.RKS(mol, xc="b3lypg")
    else:
        mf = dft.RKS(mol)
        mf.xc = "b3lypg"
    mf.grids.level, mf.conv_tol = sizes.dft_grid_level, 1e-10
    t0 = time.perf_counter()
    energy = mf.kernel()
    gradient = mf.nuc_grad_method().kernel()
    seconds = time.perf_counter() - t0
    gradient = gradient.get() if hasattr(gradient, "get") else gradient
    if not mf.converged:
        raise RuntimeError("SCF did not converge")
    return float(energy), np.asarray(gradient), seconds


def dft_check(sizes: Sizes) -> Part:
    part = Part("dft")
    try:
        from pyscf import lib
    except ImportError as exc:
        part.status, part.reason = "skipped", f"pyscf is not installed ({exc})"
        return part
    numbers, positions = _dft_molecule(sizes == DRY_RUN)
    lib.num_threads(2)  # the development machine's 2 cores
    energy, gradient, seconds = _pyscf_energy_gradient(numbers, positions, sizes, gpu=False)
    part.results = {"basis": sizes.dft_basis, "grid_level": sizes.dft_grid_level, "xc": "b3lypg",
                    "atoms": len(numbers), "pyscf_2_threads_s": seconds, "pyscf_energy_ha": energy}
    try:
        import gpu4pyscf  # noqa: F401
    except Exception as exc:
        part.status, part.reason = "skipped", f"gpu4pyscf unavailable ({type(exc).__name__}: {exc})"[:200]
        return part
    if not _cuda():
        part.status, part.reason = "skipped", "no CUDA device for gpu4pyscf"
        return part
    energy_gpu, gradient_gpu, seconds_gpu = _pyscf_energy_gradient(numbers, positions, sizes, gpu=True)
    difference = abs(energy_gpu - energy)
    part.results.update(gpu4pyscf_s=seconds_gpu, gpu4pyscf_energy_ha=energy_gpu, energy_difference_ha=difference,
                        max_gradient_difference_ha_bohr=float(np.abs(gradient_gpu - gradient).max()),
                        speedup=seconds / seconds_gpu)
    if difference > DFT_AGREEMENT_HA:
        part.status, part.reason = "failed", f"energies differ by {difference:.2e} Ha (> {DFT_AGREEMENT_HA})"
    return part


def _guarded(name: str, fn: Callable[[], Part]) -> Part:
    """Run one part; an exception becomes that part's failure, with its traceback's last line."""
    try:
        return fn()
    except Exception as exc:
        return Part(name, "failed", f"{type(exc).__name__}: {exc}"[:300],
                    {"traceback": traceback.format_exc().splitlines()[-3:]})


def markdown(parts: list[Part], dry_run: bool) -> str:
    """One table: each part's status and its headline numbers."""
    lines = [f"# GPU check{' (dry run on the CPU: toy sizes, numbers not meaningful)' if dry_run else ''}", "",
             "| part | status | result |", "|---|---|---|"]
    for part in parts:
        r = part.results
        if part.name == "environment":
            text = f"{r.get('device')}; torch {r.get('torch')}; triton {r.get('triton', '')[:20]}"
        elif part.name == "triton-accuracy" and r:
            text = f"max relative error {r['max_rel_error']:.2e} over {len(r['cases'])} ragged batches"
        elif part.name == "network-timing" and r:
            cells = []
            for row in r["cases"]:
                times = ", ".join(f"{k} {v['ms']:.2f} ms" for k, v in row.items() if isinstance(v, dict))
                fraction = row.get("triton", {}).get("fraction_of_bf16") if isinstance(row.get("triton"), dict) else None
                cells.append(f"{row['case']}: {times}" + (f" (Triton {fraction:.1%} of bf16)" if fraction else ""))
            text = "; ".join(cells)
        elif part.name == "dft" and r:
            text = f"pyscf (2 threads) {r['pyscf_2_threads_s']:.1f} s" + (
                f", gpu4pyscf {r['gpu4pyscf_s']:.1f} s (x{r['speedup']:.1f}), dE {r['energy_difference_ha']:.1e} Ha"
                if "gpu4pyscf_s" in r else "")
        else:
            text = ""
        lines.append(f"| {part.name} | {part.status}{': ' + part.reason if part.reason else ''} | {text} |")
    return "\n".join(lines) + "\n"


def run_gpu_check(out_dir: Path, dry_run: bool = False) -> list[Part]:
    """Run every part (toy sizes on the CPU for ``dry_run``) and write
    ``gpu_check.json`` and ``gpu_check.md`` into ``out_dir``."""
    sizes = DRY_RUN if dry_run else Sizes()
    device = "cuda" if _cuda() else "cpu"
    if device == "cpu":  # Triton's interpreter, chosen before any kernel is defined
        os.environ.setdefault("TRITON_INTERPRET", "1")
    parts = [_guarded("environment", environment)]
    if device == "cpu" and not dry_run:
        parts.append(Part("triton-accuracy", "skipped", "no CUDA device (the interpreter is for --dry-run and tests)"))
    else:
        parts.append(_guarded("triton-accuracy", lambda: triton_accuracy(sizes, device)))
    parts.append(_guarded("network-timing", lambda: network_timing(sizes, device)))
    parts.append(_guarded("dft", lambda: dft_check(sizes)))
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"dry_run": dry_run, "sizes": asdict(sizes), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "parts": [asdict(p) for p in parts]}
    (out_dir / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out_dir / "gpu_check.md").write_text(markdown(parts, dry_run))
    return parts


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.gpu_check --out DIR [--dry-run]``: the entry point on a GPU
    image that has torch and Triton but not the project's other dependencies."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for gpu_check.json and gpu_check.md.")
    parser.add_argument("--dry-run", action="store_true", help="Toy sizes on the CPU (a rehearsal).")
    args = parser.parse_args(argv)
    parts = run_gpu_check(args.out, dry_run=args.dry_run)
    print((args.out / "gpu_check.md").read_text())
    return 1 if any(p.status == "failed" for p in parts) else 0


if __name__ == "__main__":
    raise SystemExit(main())
